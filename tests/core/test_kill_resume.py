"""kill -9 at random moments (before the first checkpoint, between steps,
during checkpoint writes) and `nqs resume`: the trajectory equals that of an
uninterrupted run to 1e-12 (issue 15)."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import nqs_core
from nqs_core import read_log

ROOT = pathlib.Path(__file__).parents[2]
N_STEPS = 40


def _env():
    # the persistent compilation cache of the test suite: restarts compile once
    return dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(ROOT / ".jax_cache"),
    )


def _start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", *map(str, args)], cwd=cwd, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _n_records(run_dir):
    p = run_dir / "log.jsonl"
    return p.read_text().count("\n") if p.exists() else 0


def _kill_when(proc, ready, rng, timeout=300.0):
    """SIGKILL `proc` a random 0-20 ms after `ready()` holds; False if it ended first."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            return False
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("the run made no progress")
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.02))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path, small_config):
    cfg = nqs_core.apply_overrides(small_config, [f"run.n_steps={N_STEPS}", "run.checkpoint_every=1", "run.n_eval_batches=0"])
    import tomli_w

    (tmp_path / "cfg.toml").write_text(tomli_w.dumps(cfg))
    reference = nqs_core.run(cfg, run_dir=tmp_path / "ref", progress=False)
    ref_log = read_log(tmp_path / "ref")

    rng = np.random.default_rng(7)
    run_dir = tmp_path / "run"
    kills, in_write = 0, 0
    # 1: killed before the first checkpoint (config.toml written, still compiling)
    proc = _start("run", "cfg.toml", "-q", "-o", run_dir, cwd=tmp_path)
    assert _kill_when(proc, lambda: (run_dir / "config.toml").exists(), rng)
    kills += 1
    assert not (run_dir / "checkpoint.json").exists()
    # 2..: killed at random steps while resuming
    target = 0
    while kills < 6:
        target = min(N_STEPS - 4, target + int(rng.integers(3, 8)))
        proc = _start("resume", run_dir, "-q", cwd=tmp_path)
        goal = target
        if _kill_when(proc, lambda: _n_records(run_dir) >= goal, rng):
            kills += 1
            in_write += any(run_dir.glob(".checkpoint.*.tmp"))
        else:
            assert proc.returncode == 0, proc.stderr.read()
            break
    assert kills >= 6
    proc = _start("resume", run_dir, "-q", cwd=tmp_path)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()

    log = read_log(run_dir)
    assert [r["step"] for r in log] == list(range(N_STEPS))
    for a, b in zip(log, ref_log):
        for k in ("energy", "variance", "energy_error", "R_hat", "acceptance", "direction_norm"):
            assert abs(a[k] - b[k]) <= 1e-12 * max(1.0, abs(b[k])), (a["step"], k)
    state, meta = nqs_core.load_checkpoint(run_dir, reference.state)
    assert meta["step"] == N_STEPS
    for a, b in zip(_leaves(state), _leaves(reference.state)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert not list(run_dir.glob(".*.tmp"))  # resume clears writes that a kill interrupted
    print(f"{kills} kills, {in_write} during a checkpoint write")


WRITER = """
import sys, numpy as np, jax.numpy as jnp, nqs_core
from nqs_core._io import save_checkpoint
run_dir = sys.argv[1]
print("ready", flush=True)
for step in range(1, 1000000):
    state = {"w": jnp.full(2_000_000, float(step)), "step": jnp.asarray(step)}
    save_checkpoint(run_dir, state, {"step": step})
"""


def test_kill_during_checkpoint_writes(tmp_path):
    """A process that does nothing but write 16 MB checkpoints is killed at
    random moments: the checkpoint on disk is always a whole, verified one."""
    import jax.numpy as jnp

    like = {"w": jnp.zeros(2_000_000), "step": jnp.asarray(0)}
    rng = np.random.default_rng(3)
    interrupted = 0
    for i in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=_env())
        assert proc.stdout.readline().strip() == "ready"
        if i % 2:
            time.sleep(rng.uniform(0.3, 1.5))  # a random moment
        else:  # the moment a temporary file is on disk: a kill inside a write
            t0 = time.monotonic()
            while not any(tmp_path.glob(".checkpoint.eqx.*.tmp")) and time.monotonic() - t0 < 60:
                time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        interrupted += any(tmp_path.glob(".checkpoint.eqx.*.tmp"))
        if not (tmp_path / "checkpoint.json").exists():
            continue  # killed before the first write finished
        state, meta = nqs_core.load_checkpoint(tmp_path, like)
        assert int(state["step"]) == meta["step"] and np.all(np.asarray(state["w"]) == meta["step"])
        for p in tmp_path.glob(".*.tmp"):
            p.unlink()
    assert interrupted >= 1, "no kill landed in a write"
    # and a flipped byte is caught
    p = tmp_path / "checkpoint.eqx"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is damaged"):
        nqs_core.load_checkpoint(tmp_path, like)
