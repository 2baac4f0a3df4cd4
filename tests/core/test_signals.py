"""SIGTERM / SIGINT during a run write a checkpoint at the next step boundary and
exit 143 / 130; the resumed run equals an uninterrupted one (issue 27). Under
an MPI launcher without mpi4py the run is refused instead of duplicated."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

import nqs_core
from nqs_core import read_log
from nqs_core import _signals
from nqs_core._distributed import launcher_ranks

N_STEPS = 60


def _start(*args, cwd, env=None):
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", *map(str, args)], cwd=cwd, env=env or dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _signal_after(proc, run_dir, n_records, signum, timeout=300.0):
    """Send `signum` once the log holds `n_records` records; `(exit code, stderr)`."""
    t0 = time.monotonic()
    while not (run_dir / "log.jsonl").exists() or len(read_log(run_dir)) < n_records:
        assert proc.poll() is None, f"the run ended before the signal: {proc.stderr.read()}"
        assert time.monotonic() - t0 < timeout, "the run made no progress"
        time.sleep(0.002)
    proc.send_signal(signum)
    code = proc.wait(timeout=120)
    return code, proc.stderr.read()


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _interrupt_in_process(run_dir, n_records, signum):
    """From a thread: send `signum` to this process once the log holds
    `n_records` records, while the resume in the main thread is stepping."""
    def watch():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            if _signals._STATE["phase"] == "steps" and len(read_log(run_dir)) >= n_records:
                if len(read_log(run_dir)) < N_STEPS - 5:  # the run is well before its end
                    os.kill(os.getpid(), signum)
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sigterm_and_sigint_checkpoint_and_resume_equals_the_uninterrupted_run(tmp_path, small_config):
    """`nqs run` gets SIGTERM (exit 143, a checkpoint at the step it stopped);
    `nqs_core.resume` gets SIGINT (`RunInterrupted`, exit code 130); a last
    resume ends the run: log and parameters equal the uninterrupted run's to 1e-12."""
    import tomli_w

    cfg = nqs_core.apply_overrides(small_config, [f"run.n_steps={N_STEPS}", "run.checkpoint_every=50", "run.n_eval_batches=0"])
    (tmp_path / "cfg.toml").write_text(tomli_w.dumps(cfg))
    run_dir = tmp_path / "run"
    proc = _start("run", "cfg.toml", "-q", "-o", run_dir, cwd=tmp_path)  # compiles while the reference runs
    reference = nqs_core.run(cfg, run_dir=tmp_path / "ref", progress=False)
    ref_log = read_log(tmp_path / "ref")

    def stopped_at():
        step = json.loads((run_dir / "checkpoint.json").read_text())["step"]
        # the checkpoint is the state after the last logged step (not the periodic one at step 50)
        assert len(read_log(run_dir)) == step and step < N_STEPS
        assert not (run_dir / "result.json").exists() and not (run_dir / "nqs.lock").exists()
        return step

    rc, err = _signal_after(proc, run_dir, 6, signal.SIGTERM)
    assert rc == 143, err
    first = stopped_at()
    assert f"stopped by SIGTERM after step {first}; the checkpoint holds step {first}: continue with `nqs resume {run_dir}`" in err
    assert err.count("\n") == 2 and "Traceback" not in err  # the note on receipt, the message at the end

    thread = _interrupt_in_process(run_dir, first + 10, signal.SIGINT)
    with pytest.raises(nqs_core.RunInterrupted) as info:
        nqs_core.resume(run_dir, progress=False)
    thread.join()
    second = stopped_at()
    assert second >= first + 10 and (info.value.exit_code, info.value.step) == (130, second)

    nqs_core.resume(run_dir, progress=False)
    log = read_log(run_dir)
    assert [r["step"] for r in log] == list(range(N_STEPS))
    for a, b in zip(log, ref_log):
        for k in ("energy", "variance", "energy_error", "R_hat", "acceptance", "direction_norm"):
            assert abs(a[k] - b[k]) <= 1e-12 * max(1.0, abs(b[k])), (a["step"], k)
    state, meta = nqs_core.load_checkpoint(run_dir, reference.state)
    assert meta["step"] == N_STEPS
    for a, b in zip(_leaves(state), _leaves(reference.state)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_a_signal_while_a_checkpoint_is_written_waits_for_the_write(tmp_path):
    """A (second) signal during `save_checkpoint` takes effect only after both
    files are written: the checkpoint on disk is whole and verifies."""
    import jax.numpy as jnp

    like = {"w": jnp.zeros(1000), "step": jnp.asarray(0)}
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with _signals.catch_signals(tmp_path):
        _signals.start_steps()
        os.kill(os.getpid(), signal.SIGTERM)  # the first signal while stepping: only a request
        assert _signals.requested() == signal.SIGTERM
        done = []
        with pytest.raises(nqs_core.RunInterrupted) as info:
            with _signals.saving():
                os.kill(os.getpid(), signal.SIGINT)  # the second one, during the write
                time.sleep(0.05)  # the handler has run by now
                nqs_core.save_checkpoint(tmp_path, {"w": jnp.full(1000, 7.0), "step": jnp.asarray(7)}, {"step": 7})
                done.append(True)
        assert done and info.value.exit_code == 130 and info.value.step is None
        assert "the run directory keeps its last checkpoint" in info.value.message()
        # outside a write, a second signal stops at once
        with pytest.raises(nqs_core.RunInterrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    state, meta = nqs_core.load_checkpoint(tmp_path, like)
    assert meta["step"] == 7 and np.all(np.asarray(state["w"]) == 7.0)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers restored


@pytest.mark.parametrize(
    "env, ranks",
    [({"OMPI_COMM_WORLD_SIZE": "4"}, 4), ({"PMI_SIZE": "2", "PMI_RANK": "0"}, 2), ({"MPI_LOCALNRANKS": "3"}, 3),
     ({"PMIX_RANK": "1"}, 2), ({"PMI_SIZE": "1"}, 1), ({}, 1)],
)
def test_launcher_ranks_from_the_environment(monkeypatch, env, ranks):
    for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE",
              "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launcher_ranks() == ranks


def test_mpi_launch_without_mpi4py_is_refused(tmp_path, small_config_file):
    """`mpirun -np 2 nqs run` without mpi4py (made unimportable here) would run
    the same calculation twice: refused in one line, nothing written; and
    NQS_FORCE_MPI=1 is honoured the same way."""
    fake = tmp_path / "nompi" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('mpi4py is not installed (test)')\n")
    base = {k: v for k, v in os.environ.items() if k not in ("NQS_DISABLE_MPI", "NQS_FORCE_MPI")}
    base["PYTHONPATH"] = os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])
    cases = [({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}, "an MPI launcher started 2 processes but mpi4py is not installed"),
             ({"NQS_FORCE_MPI": "1"}, "NQS_FORCE_MPI=1 asks for MPI but mpi4py is not installed")]
    procs = [(_start("run", small_config_file, "-q", "-o", tmp_path / f"out{i}", cwd=tmp_path, env={**base, **env}), message)
             for i, (env, message) in enumerate(cases)]
    for i, (proc, message) in enumerate(procs):
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "NQS_DISABLE_MPI=1" in lines[0], err
        assert not (tmp_path / f"out{i}").exists()
