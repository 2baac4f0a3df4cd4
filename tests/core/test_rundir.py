"""Run directories are safe (issue 27): one writer at a time (a lock file), no
writes into a user's directory, run names that stay inside `output`, no
symbolic link followed, no resume or measure of a run whose physics was edited,
and a damaged log or a step count below the checkpoint refused in one line."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import nqs_core
from nqs_cli import app
from nqs_core import read_log
from nqs_core._lock import LOCK_FILE, RunLock

N0 = 3  # steps of the finished run every test copies

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(r, code, message):
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def _snapshot(run_dir):
    return {p.name: (os.readlink(p) if p.is_symlink() else p.read_bytes()) for p in run_dir.iterdir()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run of N0 steps of the small TFIM chain (a checkpoint every step)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
    from conftest import SMALL_TFIM

    base = tmp_path_factory.mktemp("rundir")
    cfg = nqs_core.apply_overrides(
        nqs_core.loads_config(SMALL_TFIM), [f"run.n_steps={N0}", "run.checkpoint_every=1", "run.n_eval_batches=0"]
    )
    nqs_core.run(cfg, run_dir=base / "run", progress=False)
    return base / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


# -- run: only into a new or empty directory, inside `output` -----------------------


def test_run_into_a_users_directory_leaves_it_untouched(tmp_path, small_config_file, monkeypatch):
    """`nqs run config.toml -o .` where the user keeps config.toml and result.json: refused, files byte-identical."""
    user = tmp_path / "work"
    user.mkdir()
    (user / "config.toml").write_bytes(small_config_file.read_bytes() + b"# mine\n")
    (user / "result.json").write_text('{"energy": -1.0}\n')
    before = _snapshot(user)
    monkeypatch.chdir(user)
    one_line(invoke("run", "config.toml", "-q", "-o", "."), 2, "is not empty (it holds config.toml, result.json)")
    assert _snapshot(user) == before


@pytest.mark.parametrize("name", ["../..", "..", "/tmp/elsewhere", "a/b", "a\\b"])
def test_run_names_cannot_escape_output(tmp_path, small_config_file, name):
    out = tmp_path / "out"
    r = invoke("run", small_config_file, "-q", "--set", f"run.output='{out}'", "--set", f"run.name='{name}'")
    one_line(r, 2, f"[run] name {name!r} must be one directory name inside [run] output")
    assert sorted(p.name for p in tmp_path.iterdir()) == [small_config_file.name]


def test_a_fresh_name_per_run_in_one_output(tmp_path, small_config):
    """Two runs with the same `[run] name` in one `output`: the second gets `name-1`."""
    cfg = nqs_core.apply_overrides(small_config, [f"run.output='{tmp_path}'", "run.name='same'", "run.n_steps=0", "run.n_eval_batches=0"])
    a = nqs_core.run(cfg, progress=False)
    b = nqs_core.run(cfg, progress=False)
    assert (a.run_dir.name, b.run_dir.name) == ("same", "same-1")
    assert not (a.run_dir / LOCK_FILE).exists() and not (b.run_dir / LOCK_FILE).exists()


# -- symbolic links ------------------------------------------------------------------


def test_symbolic_links_in_a_run_directory_are_refused(run_copy, tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    (run_copy / "log.jsonl").unlink()
    (run_copy / "log.jsonl").symlink_to(target)  # dangling: a followed link would create it
    before = _snapshot(run_copy)
    one_line(invoke("resume", run_copy, "-q"), 2, "log.jsonl is a symbolic link")
    assert _snapshot(run_copy) == before and not target.exists()
    # measure reads config.toml: a linked one is refused as well
    (run_copy / "log.jsonl").unlink()
    real = tmp_path / "real.toml"
    (run_copy / "config.toml").rename(real)
    (run_copy / "config.toml").symlink_to(real)
    one_line(invoke("measure", run_copy, "-O", "magnetization"), 2, "config.toml is a symbolic link")


# -- the physics fingerprint ---------------------------------------------------------


def _edit(run_dir, old, new):
    p = run_dir / "config.toml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "old, new, named",
    [
        ("pbc = true", "pbc = false", "lattice.pbc = true -> false"),
        ('name = "chain"\nlength = 6', 'name = "square"\nlength = 3\nwidth = 2', 'lattice.length = 6 -> 3, lattice.name = "chain" -> "square"'),
        ("h = 0.8", "h = 0.9", "system.h = 0.8 -> 0.9"),
    ],
    ids=["pbc", "another-lattice-same-size", "field"],
)
def test_resume_and_measure_of_edited_physics_are_refused(run_copy, old, new, named):
    _edit(run_copy, old, new)
    before = _snapshot(run_copy)
    one_line(invoke("resume", run_copy, "-q"), 2, f"config.toml was edited after the run: {named}")
    one_line(invoke("measure", run_copy, "-O", "magnetization"), 2, f"config.toml was edited after the run: {named}")
    assert _snapshot(run_copy) == before


def test_stage_fields_and_old_checkpoints_still_resume(run_copy):
    # a stage field (RESUME_FIELDS) edited in config.toml is not physics
    _edit(run_copy, "learning_rate = 0.05", "learning_rate = 0.04")
    r = invoke("resume", run_copy, "-q", "--steps", N0)
    assert r.exit_code == 0, r.output
    # a checkpoint written before fingerprints (no "physics" in its meta) is not checked
    meta = json.loads((run_copy / "checkpoint.json").read_text())
    assert meta["physics"]["lattice.pbc"] is True and len(meta["fingerprint"]) == 64
    del meta["physics"], meta["fingerprint"]
    (run_copy / "checkpoint.json").write_text(json.dumps(meta))
    _edit(run_copy, "pbc = true", "pbc = false")
    r = invoke("resume", run_copy, "-q", "--steps", N0)  # no step: the checkpoint is written again
    assert r.exit_code == 0, r.output
    assert json.loads((run_copy / "checkpoint.json").read_text())["physics"]["lattice.pbc"] is False


# -- the lock ------------------------------------------------------------------------


def test_a_held_lock_refuses_resume_and_run(run_copy, tmp_path, small_config_file):
    with RunLock(run_copy, "test"):
        before = _snapshot(run_copy)
        one_line(invoke("resume", run_copy, "-q"), 2, f"is in use by process {os.getpid()} (test")
        assert _snapshot(run_copy) == before
        lock_text = (run_copy / LOCK_FILE).read_text()
        assert json.loads(lock_text)["pid"] == os.getpid() and json.loads(lock_text)["host"] == socket.gethostname()
    assert not (run_copy / LOCK_FILE).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with RunLock(empty, "test"):
        one_line(invoke("run", small_config_file, "-q", "-o", empty), 2, f"is in use by process {os.getpid()}")
        assert [p.name for p in empty.iterdir()] == [LOCK_FILE]


def test_a_stale_lock_is_taken_over(run_copy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names no running process
    (run_copy / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "nqs resume"}))
    r = invoke("resume", run_copy, "-q", "--steps", N0)
    assert r.exit_code == 0, r.output
    assert f"took over the lock of process {dead.pid} (nqs resume), which is no longer running" in r.stderr
    assert not (run_copy / LOCK_FILE).exists()


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_two_concurrent_resumes(run_copy):
    """Two `nqs resume` of one directory at once (issue 27: one stage vanished):
    one refuses naming the other; the other's log, checkpoint and config agree."""
    procs = {lr: _start("resume", run_copy, "-q", "--steps", 100000, "--set", f"optimizer.learning_rate={lr}")
             for lr in (0.04, 0.03)}
    t0 = time.monotonic()
    while all(p.poll() is None for p in procs.values()):
        assert time.monotonic() - t0 < 300, "neither resume ended"
        time.sleep(0.01)
    loser = next(lr for lr, p in procs.items() if p.poll() is not None)
    winner = next(lr for lr in procs if lr != loser)
    err = procs[loser].stderr.read()
    assert procs[loser].returncode == 2, err
    assert f"is in use by process {procs[winner].pid} (nqs resume" in err and len(err.strip().splitlines()) == 1
    # the winner runs on until SIGTERM: a checkpoint, exit 143
    while len(read_log(run_copy)) < N0 + 5:
        assert procs[winner].poll() is None, procs[winner].stderr.read()
        time.sleep(0.01)
    procs[winner].send_signal(signal.SIGTERM)
    assert procs[winner].wait(timeout=120) == 143, procs[winner].stderr.read()
    step = json.loads((run_copy / "checkpoint.json").read_text())["step"]
    records = read_log(run_copy, events=True)
    events = [r for r in records if "event" in r]
    assert [r["step"] for r in records if "event" not in r] == list(range(step))
    assert events == [{"step": N0, "event": "resume", "set": {"optimizer.learning_rate": str(winner)}}]
    cfg = nqs_core.load_config(run_copy / "config.toml")
    assert cfg["optimizer"]["learning_rate"] == winner and cfg["run"]["n_steps"] == 100000
    assert not (run_copy / LOCK_FILE).exists()


# -- damaged log, steps below the checkpoint -------------------------------------------


def test_a_damaged_log_line_is_refused_with_the_fix(run_copy):
    p = run_copy / "log.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:20] + "\n"  # a damaged middle line
    p.write_text("".join(lines))
    before = _snapshot(run_copy)
    one_line(invoke("resume", run_copy, "-q", "--steps", N0 + 2), 2,
             f"log.jsonl line 2 is not a JSON record; the log is damaged; the checkpoint (step {N0}) is intact")
    assert _snapshot(run_copy) == before


def test_resume_steps_below_the_checkpoint_are_refused(run_copy):
    before = _snapshot(run_copy)
    one_line(invoke("resume", run_copy, "-q", "--steps", 1), 2, f"resume --steps 1: the run has already completed {N0} steps")
    one_line(invoke("resume", run_copy, "-q", "--set", "run.n_steps=2"), 2, f"resume n_steps = 2: the run has already completed {N0} steps")
    one_line(invoke("resume", run_copy, "-q", "--steps", 5, "--set", "run.n_steps=6"), 2, "--steps 5 and --set run.n_steps=6 both give the total number of steps; give it once")
    assert _snapshot(run_copy) == before
