"""The exact paths against the code before issue 27 (commit fde93b2), in the same run.

Cases (TFIM chain L = 16, h = J = 1, PBC, full space: 2^16 = 65536 states; real
RBM alpha = 1, 288 parameters; sgd(0.05)):

- `exact`: `[sampler] name = "exact"` (1024 samples, 16 chains), dense SR
  (diag_shift 0.01): seconds per VMC step.
- `full_sum_sr`: `[sampler] name = "full_sum"` (every state, exact energy and
  gradient), dense SR: seconds per VMC step.
- `full_sum_gd`: the same full sum with the plain gradient (`identity`
  preconditioner): seconds per VMC step.
- `measure`: `nqs measure RUN --exact` on the 4x4 Heisenberg antiferromagnet at
  S^z = 0 (12870 states; S(q) over the zone, C(r) of S.S, staggered
  magnetisation: 32 operators), the whole command: wall and CPU seconds.

Each (case, code) runs in a fresh subprocess with `PYTHONPATH` naming either this
checkout or the old one (`git worktree add --detach /tmp/nqs-old fde93b2`,
made here when missing); the two alternate within every round (the order flips
from round to round), and the figures are medians over rounds. A step's time is
the median over `--steps` steps after two untimed ones (compilation); CPU
seconds (`time.process_time`, both threads) are reported next to wall seconds,
as they are less sensitive to other work on the machine.

    python benchmarks/exact_paths.py [--rounds 3] [--steps 5] [--json results_exact_paths.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics as pystats
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OLD_COMMIT = "fde93b2"
CASES = ("exact", "full_sum_sr", "full_sum_gd", "measure")


def _config(case: str) -> dict:
    cfg = {
        "run": {"n_steps": 100, "seed": 1},
        "lattice": {"name": "chain", "length": 16, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "J": 1.0, "h": 1.0},
        "ansatz": {"name": "rbm", "alpha": 1, "param_dtype": "float64"},
        "preconditioner": {"name": "sr", "diag_shift": 0.01},
        "optimizer": {"name": "sgd", "learning_rate": 0.05},
    }
    if case == "exact":
        cfg["sampler"] = {"name": "exact", "n_samples": 1024, "n_chains": 16}
    else:
        cfg["sampler"] = {"name": "full_sum"}
    if case == "full_sum_gd":
        cfg["preconditioner"] = {"name": "identity"}
    return cfg


def _worker_step(case: str, steps: int) -> dict:
    import jax

    import nqs_core

    driver = nqs_core.build(_config(case), exact=False).driver
    state = driver.init(jax.random.PRNGKey(1))
    for _ in range(2):  # compilation
        state, record = driver.step(state)
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        state, record = driver.step(state)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": pystats.median(wall), "cpu": pystats.median(cpu), "energy": record["energy"]}


MEASURE_RUN = """
[run]
n_steps = 2
seed = 1
n_eval_batches = 1
[lattice]
name = "square"
length = 4
[space]
name = "spin_half"
total_sz = 0.0
[system]
name = "heisenberg"
marshall_sign = true
[ansatz]
name = "rbm"
alpha = 2
[sampler]
name = "metropolis_exchange"
n_samples = 256
n_chains = 16
[preconditioner]
name = "sr"
diag_shift = 0.01
[optimizer]
name = "sgd"
learning_rate = 0.05
[observables.sq]
name = "structure_factor"
[observables.css]
name = "correlation"
component = "ss"
[observables.ms]
name = "staggered_magnetization"
"""


def _measure_run_dir(work: pathlib.Path) -> pathlib.Path:
    run = work / "heisenberg4x4"
    if not (run / "config.toml").exists():
        config = work / "heisenberg4x4.toml"
        config.write_text(MEASURE_RUN)
        subprocess.run([sys.executable, "-m", "nqs_cli", "run", str(config), "-q", "-o", str(run)], check=True,
                       env=_env(ROOT), stdout=subprocess.DEVNULL, cwd=work)
    return run


def _env(checkout: pathlib.Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(checkout / p) for p in ("", "plugins", "cli"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # every round compiles, as a first run does
    return env


def _time_measure(checkout: pathlib.Path, run: pathlib.Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nqs_cli", "measure", str(run), "--exact", "--json"],
                         env=_env(checkout), check=True, capture_output=True, text=True, cwd=run.parent)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "energy": json.loads(out.stdout)["energy"]["mean"]}


def _time_step(checkout: pathlib.Path, case: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", case, "--steps", str(steps)],
                         env=_env(checkout), check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _old_checkout(path: pathlib.Path) -> pathlib.Path:
    if not (path / "nqs_core").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), OLD_COMMIT], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--old", type=pathlib.Path, default=pathlib.Path("/tmp/nqs-old"))
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--worker", choices=CASES[:3], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker_step(args.worker, args.steps)))
        return
    old = _old_checkout(args.old)
    codes = {"old": old, "new": ROOT}
    work = pathlib.Path(tempfile.mkdtemp(prefix="nqs-exact-bench-"))
    imported = {}
    for which, checkout in codes.items():  # the code each side runs (`python -m` would put the cwd first)
        out = subprocess.run([sys.executable, "-c", "import nqs_core; print(nqs_core.__file__)"], env=_env(checkout),
                             check=True, capture_output=True, text=True, cwd=work)
        imported[which] = out.stdout.strip()
        print(f"{which}: {imported[which]}")
        assert imported[which].startswith(str(checkout.resolve())), imported
    run = _measure_run_dir(work) if "measure" in args.cases else None
    rounds: dict = {c: {"old": [], "new": []} for c in args.cases}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for case in args.cases:
            for which in order:
                res = _time_measure(codes[which], run) if case == "measure" else _time_step(codes[which], case, args.steps)
                rounds[case][which].append(res)
                print(f"round {r} {case:12s} {which}: wall {res['wall']:.4f} s, cpu {res['cpu']:.4f} s, E = {res['energy']:.10f}", flush=True)
    summary = {}
    print(f"\n{'case':12s} {'old wall':>10s} {'new wall':>10s} {'ratio':>7s} {'old cpu':>10s} {'new cpu':>10s} {'ratio':>7s}")
    for case, by in rounds.items():
        med = {w: {k: pystats.median(x[k] for x in by[w]) for k in ("wall", "cpu")} for w in by}
        ratio = {k: med["old"][k] / med["new"][k] for k in ("wall", "cpu")}
        summary[case] = {"old": med["old"], "new": med["new"], "speedup": ratio, "rounds": by}
        print(f"{case:12s} {med['old']['wall']:10.4f} {med['new']['wall']:10.4f} {ratio['wall']:7.1f} "
              f"{med['old']['cpu']:10.4f} {med['new']['cpu']:10.4f} {ratio['cpu']:7.1f}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    if args.json:
        info = {"machine": platform.platform(), "cpus": os.cpu_count(), "load_at_end": load, "old": OLD_COMMIT, "imported": imported,
                "rounds": args.rounds, "steps": args.steps, "date": time.strftime("%Y-%m-%d")}
        args.json.write_text(json.dumps({"info": info, "results": summary}, indent=1))


if __name__ == "__main__":
    main()
