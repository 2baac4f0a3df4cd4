"""Seconds per VMC step and local-energy throughput, nqs vs NetKet, same problem.

Problems (`--system`):

- `tfim` (default): TFIM chain L=16, h=J=1, PBC; real RBM alpha=1; Metropolis
  local moves, 16 chains, 1024 samples, sweep = L proposals, the same number of
  discarded sweeps per chain; SR with a dense S (Cholesky) and diag_shift 0.01;
  sgd(0.05).
- `j1j2`: J1-J2 on the 4x4 square lattice (PBC, J2 = 0.5, Pauli units as
  NetKet's `Heisenberg`, no Marshall sign on either side), S^z = 0; complex
  RBM alpha=16; Metropolis exchange on nearest-neighbour bonds, 16 chains, 1024
  samples, sweep = 16 proposals, the same discarded sweeps; SRt vs NetKet
  `VMC_SR(use_ntk=True)` with diag_shift 1e-3; sgd(0.01). NetKet's RBM gets the
  nqs parameters, and the script checks that both give the same log psi and
  local energies before timing.

Both libraries run in this process, float64, on the same CPU, in rounds that
alternate between them (medians over `--repeats` rounds of `--steps` steps).

    python benchmarks/vmc_step.py [--steps 50] [--repeats 3] [--json out.json]
    python benchmarks/vmc_step.py --alpha 32 --preconditioner srt   # P >> M: SRt vs NetKet VMC_SR(use_ntk=True)
    python benchmarks/vmc_step.py --system j1j2                     # alpha 16, SRt

NetKet is optional (`pip install -e ".[bench]"`); without it only nqs is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics as pystats
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

N_SAMPLES, N_CHAINS = 1024, 16
# set from the command line
SYSTEM, L, ALPHA, PRECOND, DIAG_SHIFT, LR = "tfim", 16, 1, "sr", 0.01, 0.05
N_DISCARD = (N_SAMPLES // N_CHAINS) // 10
J1J2_SIDE, J2 = 4, 0.5


def nqs_problem():
    """`(system, model, sampler)` of the chosen problem in nqs."""
    from nqs_networks import RBM
    from nqs_spins import J1J2, Chain, Ising, MetropolisExchange, MetropolisLocal, SpinHalf, Square

    if SYSTEM == "tfim":
        space = SpinHalf(n_sites=L)
        system = Ising(space=space, lattice=Chain(L), J=1.0, h=1.0)
        model = RBM(space, alpha=ALPHA, param_dtype="float64", key=jax.random.PRNGKey(0))
        sampler = MetropolisLocal(space, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_discard_per_chain=N_DISCARD)
    else:
        lattice = Square(J1J2_SIDE)
        space = SpinHalf(n_sites=L, total_sz=0.0)
        system = J1J2(space, lattice, J1=1.0, J2=J2, units="pauli", marshall_sign=False)
        model = RBM(space, alpha=ALPHA, param_dtype="complex128", key=jax.random.PRNGKey(0))
        sampler = MetropolisExchange(space, lattice, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_discard_per_chain=N_DISCARD)
    return system, model, sampler


def prepare_nqs():
    """The nqs side, compiled and warmed up: `{"compile_s", "steps", "eloc", "energy"}`."""
    import equinox as eqx
    import optax

    import nqs_core
    from nqs_optim import SR, SRt

    system, model, sampler = nqs_problem()
    pre = SR(diag_shift=DIAG_SHIFT) if PRECOND == "sr" else SRt(diag_shift=DIAG_SHIFT)
    driver = nqs_core.VMC(system, model, sampler, optax.sgd(LR), pre)
    state = driver.init(jax.random.PRNGKey(1))
    box = {"state": state}

    def steps(n):
        s = box["state"]
        for _ in range(n):
            s, _ = driver.step(s)
        jax.block_until_ready(s.params)
        box["state"] = s

    t0 = time.perf_counter()
    steps(1)
    compile_s = time.perf_counter() - t0
    steps(10)  # warm-up

    samples, _, _ = driver.sampler.sample(nqs_core.BornDistribution(driver.model(box["state"])), box["state"].sampler_state)
    est = eqx.filter_jit(lambda m, x: driver.estimator(m, system, x).local_values)
    m = driver.model(box["state"])
    est(m, samples)
    return {
        "compile_s": compile_s,
        "steps": steps,
        "eloc": lambda: est(m, samples),
        "energy": lambda: float(driver.evaluate(box["state"], 5)[0].mean.real),
    }


def netket_problem():
    """`(hamiltonian, sampler, model)` of the chosen problem in NetKet."""
    import netket as nk

    if SYSTEM == "tfim":
        g = nk.graph.Chain(L, pbc=True)
        hi = nk.hilbert.Spin(s=0.5, N=L)
        # NetKet's Ising is H = -h sum sigma^x + J sum sigma^z sigma^z: J = -1 is our J = +1.
        ham = nk.operator.Ising(hi, g, h=1.0, J=-1.0)
        sampler = nk.sampler.MetropolisLocal(hi, n_chains=N_CHAINS, sweep_size=L)
        return ham, sampler, nk.models.RBM(alpha=ALPHA, param_dtype=jnp.float64)
    hi = nk.hilbert.Spin(0.5, N=L, total_sz=0)
    # bonds of order 1 (J1) and 2 (J2); sign_rule off, as nqs without marshall_sign
    g2 = nk.graph.Square(J1J2_SIDE, max_neighbor_order=2)
    ham = nk.operator.Heisenberg(hi, g2, J=[1.0, J2], sign_rule=[False, False])
    sampler = nk.sampler.MetropolisExchange(hi, graph=nk.graph.Square(J1J2_SIDE), n_chains=N_CHAINS, sweep_size=L)
    return ham, sampler, nk.models.RBM(alpha=ALPHA, param_dtype=jnp.complex128)


def netket_rbm_parameters(model):
    """The parameters of an nqs `RBM` in the layout of NetKet's `RBM`."""
    return {
        "Dense": {"kernel": jnp.asarray(model.weights.T), "bias": jnp.asarray(model.hidden_bias)},
        "visible_bias": jnp.asarray(model.visible_bias),
    }


def check_same_j1j2():
    """NetKet's RBM with the nqs parameters gives the same log psi and local
    energies (NetKet's from its padded connected elements) as nqs on random
    S^z = 0 configurations: the two Hamiltonians and networks agree. Exits if not."""
    import netket as nk

    system, model, _ = nqs_problem()
    ham, sampler, nk_model = netket_problem()
    vs = nk.vqs.MCState(sampler, nk_model, n_samples=N_SAMPLES, seed=0, sampler_seed=1)
    # a less trivial state than the near-uniform initialisation
    model = jax.tree.map(lambda a: 20.0 * a, model)
    vs.parameters = netket_rbm_parameters(model)
    xs = system.space.random_state(jax.random.PRNGKey(3), 64)
    lp_nqs = jax.vmap(model)(xs)
    lp_nk = vs.log_value(xs)
    diff = lp_nqs - lp_nk  # the phase is defined modulo 2 pi
    diff = jax.lax.complex(jnp.real(diff), jnp.angle(jnp.exp(1j * jnp.imag(diff))))
    xp, mels = ham.get_conn_padded(np.asarray(xs))
    lxp = vs.log_value(xp.reshape(-1, L)).reshape(mels.shape)
    eloc_nk = jnp.sum(mels * jnp.exp(lxp - lp_nk[:, None]), axis=1)
    eloc_nqs = system.local_energies(model, xs)
    out = {
        "log_psi_max_diff_mod_2pi": float(jnp.max(jnp.abs(diff))),
        "eloc_max_diff_vs_netket": float(jnp.max(jnp.abs(eloc_nqs - eloc_nk))),
        "eloc_max_abs": float(jnp.max(jnp.abs(eloc_nqs))),
    }
    if not (out["log_psi_max_diff_mod_2pi"] < 1e-10 and out["eloc_max_diff_vs_netket"] < 1e-10 * max(1.0, out["eloc_max_abs"])):
        raise SystemExit(f"nqs and NetKet disagree on the same parameters: {out}")
    return out


def prepare_netket():
    """The NetKet side, compiled and warmed up (same keys as `prepare_nqs`)."""
    import netket as nk
    import optax

    ham, sampler, model = netket_problem()
    vs = nk.vqs.MCState(sampler, model, n_samples=N_SAMPLES, n_discard_per_chain=N_DISCARD, seed=0, sampler_seed=1)
    if SYSTEM == "j1j2":  # start from the nqs parameters
        vs.parameters = netket_rbm_parameters(nqs_problem()[1])
    if PRECOND == "sr":
        sr = nk.optimizer.SR(qgt=nk.optimizer.qgt.QGTJacobianDense, solver=nk.optimizer.solver.cholesky, diag_shift=DIAG_SHIFT)
        driver = nk.driver.VMC(ham, optax.sgd(LR), variational_state=vs, preconditioner=sr)
    else:  # NetKet's sample-space SR (the same push-through identity)
        driver = nk.driver.VMC_SR(ham, optax.sgd(LR), diag_shift=DIAG_SHIFT, variational_state=vs, use_ntk=True)

    def steps(n):
        driver.run(n, out=(), show_progress=False)
        jax.block_until_ready(vs.parameters)

    t0 = time.perf_counter()
    steps(1)
    compile_s = time.perf_counter() - t0
    steps(10)

    vs.sample()

    def eloc():
        return vs.local_estimators(ham)

    eloc()
    return {"compile_s": compile_s, "steps": steps, "eloc": eloc, "energy": lambda: float(vs.expect(ham).mean.real)}


def alternate(sides, n_steps, repeats):
    """Rounds that alternate between the libraries (so a change of load hits
    both): per round, the mean s/step over `n_steps` steps and the mean time of
    10 local-energy calls; medians over `repeats` rounds."""
    times = {lib: {"step": [], "eloc": []} for lib in sides}
    for side in sides.values():  # untimed: importing NetKet changes a JAX setting, so nqs compiles once more
        side["steps"](1)
        jax.block_until_ready(side["eloc"]())
    for r in range(repeats):
        for lib, side in sides.items():
            t0 = time.perf_counter()
            side["steps"](n_steps)
            times[lib]["step"].append((time.perf_counter() - t0) / n_steps)
            t0 = time.perf_counter()
            for _ in range(10):
                jax.block_until_ready(side["eloc"]())
            times[lib]["eloc"].append((time.perf_counter() - t0) / 10)
        print(f"round {r + 1}/{repeats}: " + ", ".join(f"{lib} {t['step'][-1]:.4f} s/step" for lib, t in times.items()), flush=True)
    out = {}
    for lib, side in sides.items():
        t = times[lib]
        out[lib] = {"compile_s": side["compile_s"], "step_s": pystats.median(t["step"]), "eloc_per_s": N_SAMPLES / pystats.median(t["eloc"]),
                    "energy_after": side["energy"](), "rounds_step_s": t["step"]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", choices=("tfim", "j1j2"), default="tfim")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--alpha", type=int, default=None, help="default 1 (tfim), 16 (j1j2)")
    ap.add_argument("--preconditioner", choices=("sr", "srt"), default=None, help="default sr (tfim), srt (j1j2)")
    ap.add_argument("--diag-shift", type=float, default=None)
    args = ap.parse_args()
    global SYSTEM, L, ALPHA, PRECOND, DIAG_SHIFT, LR
    SYSTEM = args.system
    j1j2 = SYSTEM == "j1j2"
    L = J1J2_SIDE**2 if j1j2 else 16
    LR = 0.01 if j1j2 else 0.05
    ALPHA = args.alpha if args.alpha is not None else (16 if j1j2 else 1)
    PRECOND = args.preconditioner or ("srt" if j1j2 else "sr")
    default_shift = 1e-3 if j1j2 else (0.01 if PRECOND == "sr" else 1e-4)
    DIAG_SHIFT = args.diag_shift if args.diag_shift is not None else default_shift
    what = "SR (dense, cholesky)" if PRECOND == "sr" else "SRt (sample space) vs NetKet VMC_SR(use_ntk=True)"
    if j1j2:
        n_params = 2 * (ALPHA * L * L + ALPHA * L + L)  # complex: two real parameters each
        problem = f"J1-J2 {J1J2_SIDE}x{J1J2_SIDE} J2={J2} Sz=0, complex RBM alpha={ALPHA} ({n_params} real params)"
    else:
        n_params = ALPHA * L * L + ALPHA * L + L
        problem = f"TFIM chain L={L}, RBM alpha={ALPHA} ({n_params} real params)"
    results = {"problem": f"{problem}, {N_SAMPLES} samples, {N_CHAINS} chains, {what}, diag_shift {DIAG_SHIFT}, sgd({LR})",
               "machine": f"{platform.processor() or platform.machine()}, jax {jax.__version__}, devices {jax.devices()}"}
    have_netket = importlib.util.find_spec("netket") is not None  # imported only after nqs is set up, as before
    if have_netket and j1j2:  # before timing: both sides compute the same thing
        results["check"] = check_same_j1j2()
        print(f"same log psi and local energies from the same parameters: {results['check']}", flush=True)
    sides = {"nqs": prepare_nqs()}
    results["netket"] = None
    if have_netket:
        import netket

        results["netket_version"] = netket.__version__
        sides["netket"] = prepare_netket()
    results.update(alternate(sides, args.steps, args.repeats))
    print(f"{results['problem']}\n{results['machine']}")
    print(f"{'':8s} {'s/step':>10s} {'E_loc/s':>12s} {'compile s':>10s} {'E after':>10s}")
    for lib in ("nqs", "netket"):
        r = results[lib]
        if r:
            print(f"{lib:8s} {r['step_s']:10.4f} {r['eloc_per_s']:12.0f} {r['compile_s']:10.2f} {r['energy_after']:10.4f}")
    if results["netket"]:
        results["ratio_step_netket_over_nqs"] = results["netket"]["step_s"] / results["nqs"]["step_s"]
        results["ratio_eloc_nqs_over_netket"] = results["nqs"]["eloc_per_s"] / results["netket"]["eloc_per_s"]
        print(f"per-step speed-up of nqs over NetKet: x{results['ratio_step_netket_over_nqs']:.2f}")
        print(f"local-energy throughput nqs / NetKet: x{results['ratio_eloc_nqs_over_netket']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
