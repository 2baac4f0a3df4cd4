"""The `deuteron` driver under `nqs run` / `nqs resume`: run directory, the numbers of
`train_deuteron` (what `nqs deuteron` runs) with the same seed, resume, non-finite energy."""

import json

import jax
import numpy as np
import pytest

import nqs_core
from nqs_deuteron import Yamaguchi, tangent_mesh, train_deuteron

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


def test_run_directory_and_the_numbers_of_train_deuteron(six_steps):
    res = six_steps
    assert {"config.toml", "log.jsonl", "checkpoint.eqx", "checkpoint.json", "result.json"} <= {p.name for p in res.run_dir.iterdir()}
    assert res.run_dir.name == "six" and [r["step"] for r in nqs_core.read_log(res.run_dir)] == list(range(6))
    ref = train_deuteron(Yamaguchi(), n_hidden=4, mesh=tangent_mesh(16, 100.0), pretrain_steps=20, adam_steps=6, bfgs_steps=5, seed=2)
    result = json.loads((res.run_dir / "result.json").read_text())
    assert result["energy"]["mean"] == ref.energy == result["energy_mev"]
    assert result["fidelity"] == ref.fidelity and result["d_probability"] == ref.d_probability
    assert result["exact_energy"] == ref.exact.energy == res.exact_energy
    # the Adam trajectory itself: the energy after 6 steps, before the BFGS polish
    ref_adam = train_deuteron(Yamaguchi(), n_hidden=4, mesh=tangent_mesh(16, 100.0), pretrain_steps=20, adam_steps=6, bfgs_steps=0, seed=2)
    assert float(res.calculation.driver.energy(res.state.params)) == ref_adam.energy


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
