"""kill -9 in the middle of a Monte Carlo TDVP evolution and `nqs resume`:
the log and the final state equal those of an uninterrupted evolution to
1e-12 (issue 30: the checkpoint carries t, the integrator's step and the
sampler's chains). A fixed step: with Monte Carlo noise an adaptive
controller's error estimate is the noise (see docs/time-evolution.md)."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import tomli_w

import nqs_core
from nqs_core import read_log

ROOT = pathlib.Path(__file__).parents[2]

CONFIG = {
    "run": {"seed": 3, "checkpoint_every": 1, "n_eval_batches": 1, "exact_check": "off"},
    "lattice": {"name": "chain", "length": 6, "pbc": True},
    "space": {"name": "spin_half"},
    "system": {"name": "ising", "h": 1.0},
    "ansatz": {"name": "rbm", "alpha": 1, "param_dtype": "complex128"},
    "sampler": {"name": "metropolis_local", "n_chains": 8, "n_samples": 64},
    "driver": {
        "name": "tdvp", "time": "real", "t_end": 0.4, "t_out": 0.05, "initial_state": "+x",
        "integrator": {"name": "rk4", "dt": 0.025},
        "solver": {"name": "sr", "diag_shift": 1e-3},
    },
    "observables": {"sx": {"name": "operator", "terms": [{"op": "Sx", "sites": "all", "coupling": 1 / 3}]}},
}


def _start(*args, cwd):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(ROOT / ".jax_cache"))
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _n_records(run_dir):
    p = run_dir / "log.jsonl"
    return p.read_text().count("\n") if p.exists() else 0


def test_kill_and_resume_of_an_evolution_equals_the_uninterrupted_one(tmp_path):
    (tmp_path / "cfg.toml").write_text(tomli_w.dumps(CONFIG))
    reference = nqs_core.run(CONFIG, run_dir=tmp_path / "ref", progress=False)
    ref_log = read_log(tmp_path / "ref")
    assert [r["t"] for r in ref_log] == [round(0.05 * k, 12) for k in range(9)]
    assert all(r["n_substeps"] == 2 for r in ref_log[:-1])

    run_dir = tmp_path / "run"
    proc = _start("run", "cfg.toml", "-q", "-o", run_dir, cwd=tmp_path)
    t0 = time.monotonic()
    while _n_records(run_dir) < 4:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < 300, "the evolution made no progress"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _n_records(run_dir) < len(ref_log)
    proc = _start("resume", run_dir, "-q", cwd=tmp_path)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()

    log = read_log(run_dir)
    assert [r["step"] for r in log] == list(range(len(ref_log)))
    for a, b in zip(log, ref_log):
        for k in ("t", "energy", "energy_error", "residual", "dt"):
            if k in b:
                assert abs(a[k] - b[k]) <= 1e-12 * max(1.0, abs(b[k])), (a["step"], k)
        assert abs(a["observables"]["sx"]["mean"] - b["observables"]["sx"]["mean"]) <= 1e-12
    state, meta = nqs_core.load_checkpoint(run_dir, reference.state)
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(reference.state)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-12)
    assert float(state.t) == 0.4
