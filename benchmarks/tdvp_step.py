"""One RK4 step of real-time TDVP: nqs vs NetKet's `TDVP` vs jVMC's `TDVP`, in one run.

Each library runs in its own process and its own virtual environment (jVMC pins an
older jax than NetKet and nqs): `benchmarks/peers/tdvp_nqs.py` with this checkout,
`benchmarks/peers/tdvp_netket.py` and `benchmarks/peers/tdvp_jvmc.py` with the
peers' pythons (`--netket-python`, `--jvmc-python`). The workers start one after
the other (each compiles and takes `--warmup` untimed steps), stay alive, and then
take turns: in every round each worker times `--steps` RK4 steps while the others
wait, the order rotating from round to round. Figures are medians over all timed
steps, wall clock and the worker's CPU time (`time.process_time`, all threads).

The problem (the same for all): TFIM chain `H = -J sum Z_i Z_{i+1} - h sum X_i`
(Pauli units, periodic, J = h = 1, nqs's `ising`), complex RBM with `alpha L`
hidden units, hidden bias, no visible bias (jVMC's `CpxRBM` has none), all three
starting from the same parameters (drawn here, written to an `.npz`), Metropolis
with single-spin flips, `--n-samples` samples in `--n-chains` chains per
right-hand side (fresh samples at every Runge-Kutta stage), `L` flips between
stored samples, `--n-discard` sweeps discarded at every call, dt = `--dt`. The
linear solver: dense S (P x P, complex parameters as two real ones) with the
absolute diagonal shift `--diag-shift` and Cholesky for nqs (`sr`) and NetKet
(`QGTJacobianDense(holomorphic=True)` + `cholesky`); jVMC only has its
eigendecomposition pseudo-inverse (soft relative cutoff `--rcond`, SNR cutoff
off). `--solver pinv` gives NetKet `pinv_smooth(rtol=rcond)` instead.

Before timing, each worker's log psi and local energies at 16 fixed
configurations are compared with a numpy evaluation of the shared parameters, and
the Monte Carlo energies are compared with the exact energy of the initial state
(a full sum over the 2^L states, L <= 24), which real-time evolution conserves.

    python benchmarks/tdvp_step.py [--L 20] [--rounds 5] [--steps 3] [--json benchmarks/results_tdvp_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics as pystats
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "benchmarks", "peers")


def log_cosh(z):
    """log cosh for complex arguments, stable for large |Re z|."""
    s = np.where(np.real(z) < 0, -z, z)
    return s + np.log1p(np.exp(-2.0 * s)) - np.log(2.0)


def rbm_log_psi(w, b, x):
    """log psi of the shared RBM at configurations `x` (+-1, shape `(n, L)`)."""
    return np.sum(log_cosh(x @ w.T + b), axis=-1)


def tfim_local_energies(w, b, x, J, h):
    """Local energies of the periodic TFIM chain, from the numpy RBM."""
    lp = rbm_log_psi(w, b, x)
    e = -J * np.sum(x * np.roll(x, -1, axis=1), axis=1).astype(complex)
    for i in range(x.shape[1]):
        xf = x.copy()
        xf[:, i] *= -1
        e += -h * np.exp(rbm_log_psi(w, b, xf) - lp)
    return e


def exact_energy(w, b, L, J, h, chunk=1 << 16):
    """<psi|H|psi> / <psi|psi> of the RBM by a full sum over the 2^L states."""
    n = 1 << L
    bits = (np.arange(L, dtype=np.int64))
    lp = np.empty(n, dtype=complex)
    for start in range(0, n, chunk):
        idx = np.arange(start, min(start + chunk, n), dtype=np.int64)
        x = 1 - 2 * ((idx[:, None] >> bits) & 1)  # bit 1 -> -1
        lp[start : start + len(idx)] = rbm_log_psi(w, b, x.astype(np.float64))
    psi = np.exp(lp - np.max(np.real(lp)))
    idx = np.arange(n, dtype=np.int64)
    x = lambda i: 1 - 2 * ((idx >> i) & 1)  # noqa: E731
    diag = np.zeros(n)
    for i in range(L):
        diag += x(i) * x((i + 1) % L)
    hpsi = -J * diag * psi
    for i in range(L):
        hpsi += -h * psi[idx ^ (1 << i)]
    return float(np.real(np.vdot(psi, hpsi)) / np.real(np.vdot(psi, psi)))


class Worker:
    """One library's worker process (JSON lines on stdin/stdout)."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log = open(log_path, "w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True, cwd=ROOT)
        self.ready = self.read()
        self.ready["startup_s"] = time.perf_counter() - t0

    def read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"worker {self.name} exited (rc {self.proc.wait()}); see {self.log.name}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=20)
    ap.add_argument("--alpha", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=4096)
    ap.add_argument("--n-chains", type=int, default=16)
    ap.add_argument("--n-discard", type=int, default=25)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--solver", choices=("cholesky", "pinv"), default="cholesky")
    ap.add_argument("--diag-shift", type=float, default=1e-4)
    ap.add_argument("--rcond", type=float, default=1e-8)
    ap.add_argument("--init-std", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--libs", nargs="+", default=["nqs", "netket", "jvmc"], help="nqs, netket, jvmc, nqs-real (nqs with the real P x P form of the solve)")
    ap.add_argument("--nqs-python", default=sys.executable)
    ap.add_argument("--netket-python", default="/work/bench-venvs/netket/bin/python")
    ap.add_argument("--jvmc-python", default="/work/bench-venvs/jvmc/bin/python")
    ap.add_argument("--nqs-proxy", action="store_true", help="time 4 nqs VMC-SR steps instead of the TDVP driver (before it exists)")
    ap.add_argument("--jvmc-skip-snr", action="store_true", help="jVMC variant: skip its signal-to-noise computation (which snrTol = 0 leaves without effect)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    L, H = args.L, args.alpha * args.L
    rng = np.random.default_rng(args.seed)
    w = args.init_std * (rng.normal(size=(H, L)) + 1j * rng.normal(size=(H, L))) / np.sqrt(2)
    b = args.init_std * (rng.normal(size=H) + 1j * rng.normal(size=H)) / np.sqrt(2)
    check_x = rng.choice([-1.0, 1.0], size=(16, L))
    work = args.workdir or tempfile.mkdtemp(prefix="tdvp_step_")
    os.makedirs(work, exist_ok=True)
    np.savez(os.path.join(work, "arrays.npz"), W=w, b=b, check_x=check_x)
    n_timed = args.rounds * args.steps
    problem = dict(
        L=L, alpha=args.alpha, J=1.0, h=1.0, n_samples=args.n_samples, n_chains=args.n_chains, n_discard=args.n_discard,
        sweep_size=L, dt=args.dt, seed=args.seed, warmup=args.warmup, n_timed=n_timed, arrays=os.path.join(work, "arrays.npz"),
        solver=dict(kind=args.solver, diag_shift=args.diag_shift, rcond=args.rcond, jvmc_snr_tol=0.0, jvmc_skip_snr=args.jvmc_skip_snr), proxy=args.nqs_proxy,
    )  # fmt: skip
    with open(os.path.join(work, "problem.json"), "w") as f:
        json.dump(problem, f)
    ref_lp = rbm_log_psi(w, b, check_x)
    ref_el = tfim_local_energies(w, b, check_x, 1.0, 1.0)
    e_exact = exact_energy(w, b, L, 1.0, 1.0) if L <= 24 else None
    print(f"exact energy of the initial state: {e_exact}", flush=True)

    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    base_env.update(JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    nqs_env = dict(base_env, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "plugins"), os.path.join(ROOT, "cli")]))
    spec = {
        "nqs": ([args.nqs_python, os.path.join(PEERS, "tdvp_nqs.py")], nqs_env),
        "netket": ([args.netket_python, os.path.join(PEERS, "tdvp_netket.py")], base_env),
        "jvmc": ([args.jvmc_python, os.path.join(PEERS, "tdvp_jvmc.py")], base_env),
        # nqs with `[driver] holomorphic = false`: the real P x P form (what nqs did before the complex form)
        "nqs-real": ([args.nqs_python, os.path.join(PEERS, "tdvp_nqs.py")], dict(nqs_env, NQS_TDVP_REAL_FORM="1")),
    }
    workers, res = {}, {"problem": problem, "exact_energy_t0": e_exact, "check": {}, "load_avg": []}
    for name in args.libs:
        argv, env = spec[name]
        res["load_avg"].append({"when": f"before starting {name}", "load": os.getloadavg()})
        wk = Worker(name, argv + [os.path.join(work, "problem.json")], env, os.path.join(work, f"{name}.log"))
        workers[name] = wk
        c = wk.ready["check"]
        lp = np.asarray(c["log_psi_re"]) + 1j * np.asarray(c["log_psi_im"])
        el = np.asarray(c["eloc_re"]) + 1j * np.asarray(c["eloc_im"])
        dlp = lp - ref_lp
        dlp = np.real(dlp) + 1j * np.angle(np.exp(1j * np.imag(dlp)))  # the phase modulo 2 pi
        res["check"][name] = {
            "log_psi_max_diff": float(np.max(np.abs(dlp))),
            "eloc_max_diff": float(np.max(np.abs(el - ref_el))),
            "n_real_params": wk.ready.get("n_real_params"),
            "startup_s": wk.ready["startup_s"],
            "versions": wk.ready.get("versions"),
            "setup": wk.ready.get("setup"),
        }
        print(name, "ready:", res["check"][name], flush=True)

    names = list(workers)
    timings = {n: {"wall": [], "cpu": [], "energy": [], "energy_error": [], "t": []} for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        res["load_avg"].append({"when": f"round {r}", "load": os.getloadavg()})
        for n in order:
            ans = workers[n].ask(cmd="time", steps=args.steps)
            timings[n]["wall"] += ans["wall"]
            timings[n]["cpu"] += ans["cpu"]
            for d in ans["diag"]:
                for k in ("energy", "energy_error", "t"):
                    timings[n][k].append(d.get(k))
            if args.json:  # partial results after every turn (a long run may be cut short)
                with open(args.json + ".partial", "w") as f:
                    json.dump(dict(res, timings=timings), f)
            print(f"round {r} {n}: wall {['%.3f' % v for v in ans['wall']]} cpu {['%.3f' % v for v in ans['cpu']]}", flush=True)
    res["load_avg"].append({"when": "after the rounds", "load": os.getloadavg()})
    finals = {}
    for n in names:
        try:
            finals[n] = workers[n].ask(cmd="final")
            workers[n].proc.wait(timeout=60)
        except (SystemExit, Exception) as e:  # keep the timings of the rounds
            finals[n] = {"error": repr(e)}
    med = {n: {"wall": pystats.median(timings[n]["wall"]), "cpu": pystats.median(timings[n]["cpu"])} for n in names}
    res.update(timings=timings, final=finals, median_s=med)
    if "nqs" in med:
        res["ratio_peer_over_nqs"] = {
            n: {k: med[n][k] / med["nqs"][k] for k in ("wall", "cpu")} for n in names if n != "nqs"
        }
        peers = [n for n in names if not n.startswith("nqs")]
        if peers:
            fastest = min(peers, key=lambda n: med[n]["wall"])
            res["ratio_vs_faster_peer"] = {"peer": fastest, **res["ratio_peer_over_nqs"][fastest]}
    res["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps({k: res[k] for k in ("median_s", "ratio_peer_over_nqs", "ratio_vs_faster_peer") if k in res}, indent=1))
    for n in names:
        print(n, "final:", finals[n])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
