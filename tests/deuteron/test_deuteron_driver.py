"""The `deuteron` driver under `nqs run` / `nqs resume`: run directory, `nqs deuteron` as a
config builder over it (the same numbers, bit for bit), resume, non-finite energy."""

import json

import jax
import numpy as np
import pytest

import nqs_core
from typer.testing import CliRunner

from nqs_cli import make_app
from nqs_deuteron import DeuteronHamiltonian, Yamaguchi, tangent_mesh

TINY = """
[run]
n_steps = 6
seed = 2
checkpoint_every = 2

[driver]
name = "deuteron"
potential = "yamaguchi"
n_hidden = 4
n_mesh = 16
k_max = 100.0
pretrain_steps = 20
bfgs_steps = 5
"""


def tiny(tmp_path, name, **run):
    cfg = nqs_core.loads_config(TINY)
    cfg["run"].update(output=str(tmp_path), name=name, **run)
    return cfg


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
    return nqs_core.run(tiny(tmp_path_factory.mktemp("deuteron"), "six"), progress=False)


#: `nqs deuteron` with the options of TINY
COMMAND = ["deuteron", "--n-hidden", "4", "--pretrain-steps", "20", "--bfgs-steps", "5", "--seed", "2",
           "--set", "driver.n_mesh=16", "--set", "driver.k_max=100.0", "--set", "run.checkpoint_every=2", "-q"]


def _energies(run_dir):
    return [r["energy"] for r in nqs_core.read_log(run_dir)]


def test_run_directory_and_the_command_is_the_driver(six_steps, tmp_path):
    res = six_steps
    assert {"config.toml", "log.jsonl", "checkpoint.eqx", "checkpoint.json", "result.json"} <= {p.name for p in res.run_dir.iterdir()}
    assert res.run_dir.name == "six" and [r["step"] for r in nqs_core.read_log(res.run_dir)] == list(range(6))
    result = json.loads((res.run_dir / "result.json").read_text())
    assert result["energy"]["mean"] == result["energy_mev"]
    exact = DeuteronHamiltonian(Yamaguchi(), tangent_mesh(16, 100.0)).solve().energy
    assert result["exact_energy"] == exact == res.exact_energy
    assert exact <= result["energy_mev"]  # variational on the mesh
    # `nqs deuteron` builds the config and runs the same driver loop: the same numbers, bit for bit
    app = make_app(plugins=True)
    out = CliRunner().invoke(app, [*COMMAND, "--adam-steps", "6", "-o", str(tmp_path / "cmd"), "--plot", str(tmp_path / "d.png")])
    assert out.exit_code == 0, out.output
    assert f"nqs resume {tmp_path / 'cmd'}" in " ".join(out.output.split())
    command = json.loads((tmp_path / "cmd" / "result.json").read_text())
    for key in ("energy_mev", "fidelity", "fidelity_s", "d_probability", "exact_energy"):
        assert command[key] == result[key], key
    assert _energies(tmp_path / "cmd") == _energies(res.run_dir)


def test_command_stopped_and_resumed_equals_the_uninterrupted_run(six_steps, tmp_path):
    """`nqs deuteron --adam-steps 3` (a run stopped after 3 of 6 steps), then `nqs resume
    --steps 6`: the log and the result of the uninterrupted run."""
    app = make_app(plugins=True)
    runner = CliRunner()
    out = runner.invoke(app, [*COMMAND, "--adam-steps", "3", "-o", str(tmp_path / "r"), "--plot", str(tmp_path / "d.png")])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "r" / "checkpoint.json").read_text())["step"] == 3
    out = runner.invoke(app, ["resume", str(tmp_path / "r"), "--steps", "6", "-q"])
    assert out.exit_code == 0, out.output
    np.testing.assert_allclose(_energies(tmp_path / "r"), _energies(six_steps.run_dir), rtol=0, atol=1e-12)
    resumed = json.loads((tmp_path / "r" / "result.json").read_text())
    uninterrupted = json.loads((six_steps.run_dir / "result.json").read_text())
    assert resumed["energy_mev"] == pytest.approx(uninterrupted["energy_mev"], rel=0, abs=1e-12)


def test_resume_continues_bit_for_bit(six_steps, tmp_path):
    first = nqs_core.run(tiny(tmp_path, "three", n_steps=3), progress=False)
    res = nqs_core.resume(first.run_dir, n_steps=6, progress=False)
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(six_steps.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [r["energy"] for r in nqs_core.read_log(res.run_dir)] == [r["energy"] for r in nqs_core.read_log(six_steps.run_dir)]


def test_non_finite_energy_stops_at_the_last_good_state(tmp_path):
    cfg = tiny(tmp_path, "nan", checkpoint_every=1)
    cfg["driver"]["learning_rate"] = 1e300  # the first update overflows the network
    cfg["run"]["blowup_factor"] = float("inf")  # else the finite blow-up test stops it one step earlier (test_health.py)
    res = nqs_core.run(cfg, progress=False)
    assert res.stopped_early and res.stop_reason == "step 1: the energy is not finite"
    assert int(res.state.step) == 0 and res.energy is None
    log = nqs_core.read_log(res.run_dir)
    assert np.isfinite(log[0]["energy"]) and log[1]["rejected"] == "the energy is not finite"
    assert json.loads((res.run_dir / "checkpoint.json").read_text())["step"] == 0


def test_config_errors_are_one_line(tmp_path):
    cfg = tiny(tmp_path, "err")
    cfg["driver"]["potential"] = "nope"
    with pytest.raises(nqs_core.ConfigError, match="potential must be one of"):
        nqs_core.build(cfg)
    cfg["driver"]["potential"] = "table"
    with pytest.raises(nqs_core.ConfigError, match="needs table = PATH"):
        nqs_core.build(cfg)
