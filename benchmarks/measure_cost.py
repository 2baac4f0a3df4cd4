"""The cost of measuring observables against the code before issue 29 (commit 9bbae80), in the same run.

Cases:

- `end_of_run`: the end-of-run measurement of a run (`VMC.measure`, what
  `nqs run` does after its last step) on the 4x4 J1-J2 model (J2 = 0.5,
  periodic, S^z = 0, Marshall sign), real RBM alpha = 1, `metropolis_exchange`
  with 1024 samples in 16 chains, 4 batches (4096 samples), with the
  observables `dimer` (32 operators on 4x4 before issue 29, 20 after the
  +-r merge), `correlation` (S.S) and `structure_factor` (16 momenta): the
  first call in a fresh process (compilation included, as at the end of a
  run) and a second call (compiled), wall and CPU seconds. Energy only (no
  observables) is timed in the same process as a reference.
- `measure_exact`: `nqs measure RUN --exact --json` on the 4x4 Heisenberg
  antiferromagnet at S^z = 0 (12870 states; S(q) over the zone, C(r) of S.S,
  staggered magnetisation), the whole command: wall and CPU seconds.

Each (case, code) runs in a fresh subprocess with `PYTHONPATH` naming either
this checkout or the old one (`git archive 9bbae80` unpacked into `--old`,
made here when missing); the two alternate within every round (the order
flips from round to round), and the figures are medians over rounds. The
persistent compilation cache is off, so every process compiles as a first run
does. CPU seconds (`time.process_time` / the children's rusage) are less
sensitive to other work on the machine than wall seconds.

    python benchmarks/measure_cost.py [--rounds 3] [--json results_measure_cost.json]
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
OLD_COMMIT = "9bbae80"
CASES = ("end_of_run", "measure_exact")

J1J2 = """
[run]
n_steps = 0
seed = 1
[lattice]
name = "square"
length = 4
[space]
name = "spin_half"
total_sz = 0.0
[system]
name = "j1j2"
J2 = 0.5
marshall_sign = true
[ansatz]
name = "rbm"
alpha = 1
[sampler]
name = "metropolis_exchange"
n_samples = 1024
n_chains = 16
[preconditioner]
name = "sr"
[optimizer]
name = "sgd"
learning_rate = 0.01
[observables.dimer]
name = "dimer"
[observables.corr]
name = "correlation"
component = "ss"
[observables.sq]
name = "structure_factor"
"""

HEISENBERG = """
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


def _timed(f):
    import jax

    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(f())
    return out, time.perf_counter() - t0, time.process_time() - c0


def _worker_end_of_run() -> dict:
    import jax

    import nqs_core

    calc = nqs_core.build(nqs_core.loads_config(J1J2), exact=False)
    driver = calc.driver
    state = driver.init(jax.random.PRNGKey(0))
    (energy, _, _), e_wall, e_cpu = _timed(lambda: driver.measure(state, {}, 4))
    (_, obs, _), wall, cpu = _timed(lambda: driver.measure(state, calc.observables, 4))
    (_, obs, _), wall2, cpu2 = _timed(lambda: driver.measure(state, calc.observables, 4))
    corr = obs["corr"]
    return {
        "wall": wall, "cpu": cpu, "wall_second": wall2, "cpu_second": cpu2, "energy_only_wall": e_wall, "energy_only_cpu": e_cpu,
        "energy": float(energy.mean.real), "c_nn": float(corr.mean[1].real),
        "n_operators": {k: len(v.operators) for k, v in calc.observables.items()},
    }


def _env(checkout: pathlib.Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(checkout / p) for p in ("", "plugins", "cli"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # every process compiles, as a first run does
    return env


def _time_end_of_run(checkout: pathlib.Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker"], env=_env(checkout), check=True, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure_run_dir(work: pathlib.Path) -> pathlib.Path:
    run = work / "heisenberg4x4"
    if not (run / "config.toml").exists():
        config = work / "heisenberg4x4.toml"
        config.write_text(HEISENBERG)
        subprocess.run([sys.executable, "-m", "nqs_cli", "run", str(config), "-q", "-o", str(run)], check=True,
                       env=_env(ROOT), stdout=subprocess.DEVNULL, cwd=work)
    return run


def _time_measure(checkout: pathlib.Path, run: pathlib.Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nqs_cli", "measure", str(run), "--exact", "--json"],
                         env=_env(checkout), check=True, capture_output=True, text=True, cwd=run.parent)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "energy": json.loads(out.stdout)["energy"]["mean"]}


def _old_checkout(path: pathlib.Path) -> pathlib.Path:
    if not (path / "nqs_core").exists():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--old", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "nqs-9bbae80")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker_end_of_run()))
        return
    codes = {"old": _old_checkout(args.old), "new": ROOT}
    work = pathlib.Path(tempfile.mkdtemp(prefix="nqs-measure-bench-"))
    for which, checkout in codes.items():  # the code each side runs
        out = subprocess.run([sys.executable, "-c", "import nqs_core; print(nqs_core.__file__)"], env=_env(checkout),
                             check=True, capture_output=True, text=True, cwd=work)
        print(f"{which}: {out.stdout.strip()}")
        assert out.stdout.strip().startswith(str(checkout.resolve()))
    run = _measure_run_dir(work) if "measure_exact" in args.cases else None
    rounds: dict = {c: {"old": [], "new": []} for c in args.cases}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for case in args.cases:
            for which in order:
                res = _time_measure(codes[which], run) if case == "measure_exact" else _time_end_of_run(codes[which])
                rounds[case][which].append(res)
                print(f"round {r} {case:13s} {which}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()), flush=True)
    summary = {}
    print(f"\n{'case':13s} {'old wall':>9s} {'new wall':>9s} {'ratio':>6s} {'old cpu':>9s} {'new cpu':>9s} {'ratio':>6s}")
    for case, by in rounds.items():
        keys = [k for k in by["new"][0] if k.startswith(("wall", "cpu", "energy_only")) and isinstance(by["new"][0][k], float)]
        med = {w: {k: pystats.median(x[k] for x in by[w]) for k in keys} for w in by}
        ratio = {k: med["old"][k] / med["new"][k] for k in keys}
        summary[case] = {"old": med["old"], "new": med["new"], "ratio_old_over_new": ratio, "rounds": by}
        for k in keys:
            if k.startswith("wall"):
                c = k.replace("wall", "cpu")
                print(f"{case + ('' if k == 'wall' else ' ' + k[5:]):13s} {med['old'][k]:9.3f} {med['new'][k]:9.3f} {ratio[k]:6.2f} "
                      f"{med['old'][c]:9.3f} {med['new'][c]:9.3f} {ratio[c]:6.2f}")
    if args.json:
        meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg(), "old_commit": OLD_COMMIT}
        args.json.write_text(json.dumps({"meta": meta, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
