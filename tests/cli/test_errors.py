"""The CLI's one error path (issue 15): every case of the fault audit gives its
exit code, one line on stderr, no traceback, and leaves nothing behind."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import nqs_core
from nqs_cli import make_app

runner = CliRunner()
#: the built-in commands and every plugin command (`nqs deuteron` is in the error table)
app = make_app(plugins=True)


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line(r, code, message):
    """Exit `code`, `message` in the only line on stderr, no traceback."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.output and "Traceback" not in r.stderr


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A run of 2 steps of the small TFIM config (checkpoint at every step; one
    per session, shared with test_error_table.py: tests copy it before changing it)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
    from conftest import SMALL_TFIM

    base = tmp_path_factory.mktemp("errors")
    cfg = nqs_core.apply_overrides(nqs_core.loads_config(SMALL_TFIM), ["run.n_steps=2", "run.checkpoint_every=1"])
    nqs_core.run(cfg, run_dir=base / "run", progress=False)
    return base / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(finished_run, target)
    return target


# -- config and command line: nothing is written ---------------------------------

CONFIG_CASES = [
    (["--set", "system.h=nan"], "field 'h' of system 'ising' must be finite, got nan"),
    (["--set", "system.h=inf"], "must be finite, got inf"),
    (["--set", "sampler.name=direct"], "DirectSampler needs a normalised ansatz with exact samples"),
    (["--set", "ansatz.alpha=100000000", "--set", "run.max_memory_gb=8"], "would need about 269 GB, more than the limit of 8 GB"),
    (["--set", "sampler.name=exact", "--set", "sampler.n_chains=256"], "n_chains = 256 is more than n_samples = 128"),
    (["--set", "sampler.name=exact", "--set", "sampler.n_samples=129"], "use n_samples = 128 or 136"),
    (["--set", "optimizer.learning_rate=-0.1"], "learning_rate must be a finite number > 0, got -0.1"),
    (["--set", "run.exact_energy=nan"], "exact_energy must be a finite number"),
    (["--set", "run.max_retries=-1"], "max_retries must be a non-negative integer"),
]


@pytest.mark.parametrize("args, message", CONFIG_CASES, ids=[" ".join(a) for a, _ in CONFIG_CASES])
def test_run_refuses_with_one_line_and_leaves_nothing(tmp_path, small_config_file, args, message):
    out = tmp_path / "out"
    r = invoke("run", small_config_file, "-q", "-o", out, *args)
    one_line(r, 2, message)
    assert not out.exists()


def test_output_that_is_a_file(tmp_path, small_config_file):
    f = tmp_path / "file"
    f.write_text("x")
    one_line(invoke("run", small_config_file, "-q", "-o", f), 2, "is a file, not a directory")
    one_line(invoke("run", small_config_file, "-q", "-o", f / "sub"), 2, "cannot write the run directory")
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "small.toml"]


def test_output_that_is_read_only(tmp_path, small_config_file, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:
        # root writes into read-only directories (CI runs as root): let the
        # file system refuse as it would refuse anyone else
        real_mkdir = pathlib.Path.mkdir

        def mkdir(self, *args, **kwargs):
            if ro in self.parents and not ro.stat().st_mode & 0o200:
                raise PermissionError(13, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    try:
        one_line(invoke("run", small_config_file, "-q", "-o", ro / "run"), 2, "cannot write the run directory")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


HEISENBERG = """
[lattice]
name = "chain"
length = 40
[space]
name = "spin_half"
total_sz = 0.0
[system]
name = "heisenberg"
[ansatz]
name = "rbm"
[sampler]
name = "metropolis_exchange"
"""


@pytest.mark.parametrize(
    "args", [["--set", "lattice.length=40"], ["heisenberg"], ["--set", "lattice.length=28"]],
    ids=["40 spins", "40 spins Sz=0", "28 spins"],
)
def test_exact_refuses_large_systems_quickly(small_config_file, tmp_path, args):
    if args == ["heisenberg"]:
        small_config_file, args = tmp_path / "heisenberg.toml", []
        small_config_file.write_text(HEISENBERG)
    t0 = time.perf_counter()
    r = invoke("exact", small_config_file, *args, env={"NQS_MAX_MEMORY_GB": "8"})
    one_line(r, 2, "states")
    assert "would need about" in r.stderr and "more than the limit of 8 GB" in r.stderr
    assert time.perf_counter() - t0 < 5.0


# -- run directories: refused before anything is rewritten ------------------------


def _snapshot(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def _truncate(run_dir):
    p = run_dir / "checkpoint.eqx"
    p.write_bytes(p.read_bytes()[:100])


def _flip(run_dir):
    p = run_dir / "checkpoint.eqx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _wrong_step(run_dir):
    p = run_dir / "checkpoint.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "step": 52}))


def _edit_config(run_dir):
    p = run_dir / "config.toml"
    p.write_text(p.read_text().replace("alpha = 1", "alpha = 2"))


def _corrupt_meta(run_dir):
    (run_dir / "checkpoint.json").write_text("{not json")


RESUME_CASES = [
    (_truncate, [], "is damaged"),
    (_flip, [], "is damaged"),
    (_wrong_step, [], "checkpoint.json says step 52 but the checkpoint"),
    (_edit_config, [], "config.toml was edited after the run: ansatz.alpha = 1 -> 2"),
    (_corrupt_meta, [], "missing or damaged"),
    (None, ["--steps", "-5"], "n_steps must be an integer >= 0, got -5"),
    (None, ["--set", "ansatz.alpha=2"], "only these fields may change between stages of a run"),
    (None, ["--set", "optimizer.learning_rate=-1"], "learning_rate must be a finite number > 0"),
]


@pytest.mark.parametrize("damage, args, message", RESUME_CASES, ids=[m for _, _, m in RESUME_CASES])
def test_resume_refuses_and_rewrites_nothing(run_copy, damage, args, message):
    if damage:
        damage(run_copy)
    before = _snapshot(run_copy)
    one_line(invoke("resume", run_copy, "-q", *args), 2, message)
    assert _snapshot(run_copy) == before


def test_resume_of_what_is_not_a_run(tmp_path):
    one_line(invoke("resume", tmp_path / "nope"), 2, "not a run directory")
    one_line(invoke("resume", tmp_path), 2, "not a run directory (no config.toml)")


def test_run_into_an_existing_run(run_copy, small_config_file):
    before = _snapshot(run_copy)
    one_line(invoke("run", small_config_file, "-q", "-o", run_copy), 2, f"continue it with `nqs resume {run_copy}`")
    assert _snapshot(run_copy) == before


def test_plot_of_a_corrupt_log(run_copy, tmp_path):
    (run_copy / "log.jsonl").write_text("{\"step\": 0, \"energy\": -1.0}\n\x00\x01garbage\n{\"step\": 1, \"energy\": -2.0}\n")
    one_line(invoke("plot", run_copy), 2, "line 2 is not a JSON record; the log is damaged")
    (run_copy / "log.jsonl").write_text("")
    one_line(invoke("plot", run_copy), 2, "no finite energies in the log")
    one_line(invoke("plot", tmp_path / "nope"), 2, "no finite energies")


def test_plot_of_a_run_with_non_finite_records(run_copy):
    from nqs_core._io import json_line

    with open(run_copy / "log.jsonl", "a") as f:
        f.write(json_line({"step": 2, "energy": float("nan"), "energy_error": float("nan"), "rejected": "x"}) + "\n")
    r = invoke("plot", run_copy)
    assert r.exit_code == 0, r.output
    assert (run_copy / "energy.png").read_bytes()[:4] == b"\x89PNG"


def test_run_outputs_respect_the_umask(finished_run):
    umask = os.umask(0)
    os.umask(umask)
    for p in finished_run.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p.name


def test_info_of_a_command_shows_plain_defaults():
    r = invoke("info", "deuteron")
    assert r.exit_code == 0, r.output
    assert "OptionInfo" not in r.output and "yamaguchi" in r.output


def test_divergence_exits_3_with_one_line(tmp_path, small_config_file):
    out = tmp_path / "run"
    r = invoke("run", small_config_file, "-q", "-o", out, "--set", "optimizer.learning_rate=1e6", "--set", "run.n_steps=3")
    one_line(r, 3, "the run diverged at step 1: the energy or its variance is not finite (after 3 retries)")
    assert f"nqs resume {out} --set optimizer.learning_rate=" in r.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 0


# -- plugins and internal errors (a real entry point, in a subprocess) -------------

BROKEN = {
    "exits": "import sys\nsys.exit(3)\n",
    "interrupts": "raise KeyboardInterrupt\n",
    "boom": (
        "import nqs_core\n\n"
        "class Boom(nqs_core.AbstractAnsatz):\n"
        "    '''Raises an unexpected error when built.'''\n"
        "    def __init__(self, space=None, alpha: int = 1, param_dtype: str = ''):\n"
        "        raise RuntimeError('kaboom')\n"
        "    def __call__(self, x):\n"
        "        return x\n\n"
        "@nqs_core.hookimpl\n"
        "def nqs_register(registry):\n"
        "    registry.add('ansatz', 'boom', Boom)\n"
    ),
}


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    for name, code in BROKEN.items():
        (site / f"nqs_test_{name}.py").write_text(code)
    info = site / "nqs_test_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nqs-test-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nqs.plugins]\n" + "".join(f"{n} = nqs_test_{n}\n" for n in BROKEN))
    return site


def nqs(*args, site, cwd, env=None):
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-m", "nqs_cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_broken_plugins_are_named_and_skipped(broken_site, tmp_path, small_config_file):
    r = nqs("--help", site=broken_site, cwd=tmp_path)
    assert r.returncode == 0 and "resume" in r.stdout, r.stderr
    r = nqs("list", "ansatz", site=broken_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "plugin 'exits' failed to load: SystemExit: 3" in r.stderr
    assert "plugin 'interrupts' failed to load: KeyboardInterrupt" in r.stderr
    assert "Traceback" not in r.stderr and "boom" in r.stdout and "rbm" in r.stdout
    # an unexpected error: one line pointing at --verbose; the traceback with it
    r = nqs("run", small_config_file, "-q", "-o", tmp_path / "out", "--set", "ansatz.name=boom", site=broken_site, cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if "nqs: error:" in line]
    assert r.returncode == 1 and errors == ["nqs: error: internal error: RuntimeError: kaboom; run with --verbose (or NQS_DEBUG=1) for the traceback"]
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    r = nqs("--verbose", "run", small_config_file, "-q", "-o", tmp_path / "out", "--set", "ansatz.name=boom", site=broken_site, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: kaboom" in r.stderr
