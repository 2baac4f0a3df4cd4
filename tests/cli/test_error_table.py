"""The one error path of the CLI (issue 27, deliverable 7), as one table: every
case that used to exit 1 ("internal error") or was silently ignored gives its
exit code, exactly one line on stderr (`nqs: error:` / `nqs: warning:`), no
traceback, and leaves a run directory it refuses byte-identical."""

import json
import pathlib
import re
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_errors import _snapshot, finished_run, invoke  # noqa: E402,F401  (finished_run: the shared fixture)

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"
DEUTERON = (EXAMPLES / "deuteron" / "yamaguchi.toml").read_text()

#: a spin problem on a graph lattice (the lattice table's fields filled in per case)
GRAPH = """
[run]
n_steps = 0
n_eval_batches = 1
exact_energy = "auto"
[lattice]
name = "graph"
{lattice}
[space]
name = "spin_half"
[system]
name = "ising"
h = {h}
[ansatz]
name = "rbm"
[sampler]
name = "metropolis_local"
n_samples = 32
n_chains = 4
"""


def _no_checkpoint(run_dir):
    for name in ("checkpoint.eqx", "checkpoint.json", "result.json"):
        (run_dir / name).unlink()


def _full_sum_run(run_dir):
    """The run's config says it sampled with full_sum (every state: no samples to draw)."""
    p = run_dir / "config.toml"
    p.write_text(p.read_text().replace('name = "metropolis_local"', 'name = "full_sum"'))


def _deuteron_run(run_dir):
    """A deuteron run directory stopped before its first checkpoint (only its config)."""
    for p in run_dir.iterdir():
        p.unlink()
    (run_dir / "config.toml").write_text(DEUTERON)


# (id, config text for {cfg}, change to the run copy {run} or None, command line,
#  exit code, substring of the one stderr line (stdout for a success without a warning))
CASES = [
    # a zero exact reference: the absolute error instead of a division by zero
    ("exact_energy = 0", "small", None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "run.n_steps=0", "--set", "run.exact_energy=0.0"],
     0, "absolute error"),
    ("zero couplings", "small", None,
     ["run", "{cfg}", "-q", "-o", "{out}", "--set", "run.n_steps=0", "--set", "system.h=0.0", "--set", "system.J=0.0",
      "--set", "run.exact_energy=auto"], 0, "Exact:  0.0000000000   absolute error"),
    ("graph without edges", "small graph without edges", None,
     ["run", "{cfg}", "-q", "-o", "{out}", "--set", "run.n_steps=0", "--set", "system.h=0.0", "--set", "run.exact_energy=auto"],
     0, "Exact:  0.0000000000   absolute error"),
    # DGD needs continuous coordinates: refused when the config is built
    ("DGD on spins", "small", None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "preconditioner.name=dgd"],
     2, "[preconditioner] dgd: DGD needs a continuum system"),
    # sites beyond what a lattice may have: refused before any array of that size
    ("graph site 1e10", GRAPH.format(lattice="edges = [[0, 1], [1, 10000000000]]", h=1.0), None, ["run", "{cfg}", "-q", "-o", "{out}"],
     2, "graph edge [1, 10000000000] names site 10000000000, beyond the largest lattice nqs supports (1048576 sites)"),
    ("exact of graph site 1e10", GRAPH.format(lattice="edges = [[0, 1], [1, 10000000000]]", h=1.0), None, ["exact", "{cfg}"],
     2, "names site 10000000000"),
    ("graph n_sites 1e10", GRAPH.format(lattice="edges = [[0, 1]]\nn_sites = 10000000000", h=1.0), None, ["exact", "{cfg}"],
     2, "Graph lattice of 10000000000 sites is larger than nqs supports (1048576 sites)"),
    ("chain of 1e10 sites", "small", None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "lattice.length=10000000000"],
     2, "Chain lattice of 10000000000 sites is larger than nqs supports"),
    # nqs exact on a config without [system]: the driver's own exact reference
    ("exact of a deuteron config", DEUTERON, None, ["exact", "{cfg}", "--digits", "6"],
     0, "E0 = -2.224575   (the deuteron driver's own exact reference)"),
    ("nqs deuteron with an unknown potential", None, None, ["deuteron", "--potential", "foo"],
     2, "unknown potential 'foo'; valid: yamaguchi, malfliet-tjon, table"),
    # measure of a run stopped before its first checkpoint
    ("measure without a checkpoint", None, _no_checkpoint, ["measure", "{run}", "-O", "magnetization"],
     2, "no checkpoint in {run}: the run stopped before its first checkpoint; continue it with `nqs resume {run}`"),
    # requests the driver cannot honour
    ("deuteron --set optimizer", DEUTERON, None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "optimizer.learning_rate=0.1"],
     2, "[optimizer] is not used by the deuteron driver, so its fields would be ignored; remove the table (set driver.learning_rate instead)"),
    ("deuteron --set sampler", DEUTERON, None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "sampler.n_samples=64"],
     2, "[sampler] is not used by the deuteron driver"),
    ("deuteron --set run.max_r_hat", DEUTERON, None, ["run", "{cfg}", "-q", "-o", "{out}", "--set", "run.max_r_hat=2"],
     2, "[run] max_r_hat = 2 is not read by the deuteron driver"),
    ("deuteron resume --set optimizer", None, _deuteron_run, ["resume", "{run}", "-q", "--set", "optimizer.learning_rate=0.1"],
     2, "[optimizer] is not used by the deuteron driver"),
    ("resume --steps with --set run.n_steps", None, None, ["resume", "{run}", "-q", "--steps", "3", "--set", "run.n_steps=4"],
     2, "--steps 3 and --set run.n_steps=4 both give the total number of steps; give it once"),
    ("resume --steps with the same --set run.n_steps", None, None, ["resume", "{run}", "-q", "--steps", "4", "--set", "run.n_steps=4"],
     2, "give it once"),
    # measure -n: below 16 samples per chain warns; with --exact it cannot be honoured
    ("measure -n below the minimum", None, None, ["measure", "{run}", "-O", "magnetization", "-n", "64"],
     0, "nqs: warning: --n-samples 64 gives 8 samples per chain (8 chains): too few for the error bar, tau and R-hat, "
        "which need at least 16 per chain; use --n-samples >= 128"),
    ("measure -n with --exact", None, None, ["measure", "{run}", "-O", "magnetization", "-n", "64", "--exact"],
     2, "--n-samples draws Monte Carlo samples and --exact sums over every state; give one of them"),
    ("measure -n of a full_sum run", None, _full_sum_run, ["measure", "{run}", "-O", "magnetization", "-n", "64"],
     2, "draws no samples (its sampler is full_sum: every state, exactly); omit --n-samples"),
    ("measure -n of a deuteron run", None, _deuteron_run, ["measure", "{run}", "-O", "magnetization", "-n", "64"],
     2, "draws no samples (it has no [sampler] table); omit --n-samples"),
]


def _config(text):
    from conftest import SMALL_TFIM

    if text == "small":
        return SMALL_TFIM
    if text == "small graph without edges":  # the small config's shapes (compiled once), no bonds at all
        return SMALL_TFIM.replace('name = "chain"\nlength = 6', 'name = "graph"\nedges = []\nn_sites = 6')
    return text


@pytest.mark.parametrize("case, config, damage, argv, code, expected", CASES, ids=[c[0] for c in CASES])
def test_error_table(finished_run, tmp_path, case, config, damage, argv, code, expected):
    places = {"{cfg}": tmp_path / "cfg.toml", "{run}": tmp_path / "run", "{out}": tmp_path / "out"}
    if config is not None:
        places["{cfg}"].write_text(_config(config))
    if "{run}" in argv:
        shutil.copytree(finished_run, places["{run}"])
        if damage:
            damage(places["{run}"])
    before = _snapshot(places["{run}"]) if "{run}" in argv else None
    r = invoke(*[str(places.get(a, a)) for a in argv])
    for key, path in places.items():
        expected = expected.replace(key, str(path))
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr, r.exception)
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    if code == 0 and not expected.startswith("nqs: warning:"):
        assert lines == [] and expected in r.stdout, (r.stdout, r.stderr)
        if "absolute error" in expected:  # |E - 0| = |E|, to the printed digits
            energy = float(re.search(r"Energy: (\S+) ±", r.stdout).group(1))
            error = float(re.search(r"absolute error (\S+)", r.stdout).group(1))
            assert error == pytest.approx(abs(energy), rel=1e-2, abs=1e-6)
        return
    prefix = "nqs: warning:" if code == 0 else "nqs: error:"
    assert len(lines) == 1 and lines[0].startswith(prefix) and expected in lines[0], r.stderr
    if code != 0:  # refused: nothing written, nothing changed
        assert not places["{out}"].exists()
        if before is not None:
            assert _snapshot(places["{run}"]) == before


# -- a plugin that prints while it is imported or registers does not corrupt --json ---------


NOISY_PLUGIN = """
print("noisy plugin: imported")
from nqs_core import hookimpl

@hookimpl
def nqs_register(registry):
    print("noisy plugin: registering")
    registry.add("observable", "noisy_magnetization", "fake_nqs_noisy_component:Noisy")
"""
NOISY_COMPONENT = """
print("noisy plugin: component imported")
from nqs_spins._observables import Magnetization as Noisy
"""


@pytest.fixture
def noisy_plugin(tmp_path, monkeypatch):
    """A plugin (a fake distribution with an `nqs.plugins` entry point) that prints on
    stdout when imported, when registering and when its component is imported; the
    process-wide registry is reloaded inside the command."""
    import nqs_core._registry as registry_module

    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_nqs_noisy.py").write_text(NOISY_PLUGIN)
    (site / "fake_nqs_noisy_component.py").write_text(NOISY_COMPONENT)
    info = site / "fake_nqs_noisy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-nqs-noisy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nqs.plugins]\nnoisy = fake_nqs_noisy\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry_module, "_DEFAULT", None)  # restored after the test
    yield
    for m in [m for m in sys.modules if m.startswith("fake_nqs_noisy")]:
        del sys.modules[m]


def test_plugin_output_does_not_corrupt_list_json(noisy_plugin):
    r = invoke("list", "observable", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)  # stdout is exactly the JSON
    assert {"noisy_magnetization", "magnetization"} <= {row["name"] for row in rows}
    assert "noisy plugin: imported" in r.stderr and "noisy plugin: registering" in r.stderr


def test_plugin_output_does_not_corrupt_measure_json(noisy_plugin, finished_run):
    # -n 64: the shapes of the table's `measure -n` case (compiled once), and a warning on stderr
    r = invoke("measure", finished_run, "-O", "noisy_magnetization", "--json", "-n", "64")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"energy", "noisy_magnetization"}
    assert "noisy plugin: component imported" in r.stderr


# -- the guard itself: failures that are not nqs's own error types ---------------------------


@pytest.mark.parametrize(
    "exc, line",
    [
        (MemoryError("Unable to allocate 74.5 GiB for an array with shape (10000000000,) and data type int64"),
         "nqs: error: out of memory: Unable to allocate 74.5 GiB for an array with shape (10000000000,) and data type int64; "
         "use a smaller system"),
        (FileNotFoundError("no checkpoint in runs/x"), "nqs: error: no checkpoint in runs/x"),  # was `nqs: error: FileNotFoundError`
        (FileNotFoundError(2, "No such file or directory", "cfg.toml"), "nqs: error: No such file or directory: cfg.toml"),
    ],
    ids=["MemoryError", "OSError with a message", "OSError with errno"],
)
def test_guard_turns_memory_and_os_errors_into_one_line(capsys, exc, line):
    import typer

    from nqs_cli._common import guard as _guard

    def body():
        raise exc

    with pytest.raises(typer.Exit) as info:
        _guard(body)
    assert info.value.exit_code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err
