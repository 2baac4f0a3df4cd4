"""Config resolution: defaults, injection, overrides and one-line errors."""

import pytest

import nqs_core
from nqs_core import ConfigError, apply_overrides, build


def test_build_injects_and_fills_defaults(small_config):
    calc = build(small_config)
    assert calc["system"].space is calc["space"]
    assert calc.config["sampler"]["n_chains"] == 8
    assert calc.config["estimator"]["name"] == "energy"
    assert calc.config["ansatz"]["init_std"] == 0.01  # default filled in
    assert calc.driver.n_parameters == 2 * (6 * 6 + 6 + 6)


def test_overrides_are_typed(small_config):
    cfg = apply_overrides(small_config, ["system.h=0.5", "ansatz.param_dtype=float64", "lattice.pbc=false", "run.n_steps=3"])
    assert cfg["system"]["h"] == 0.5 and cfg["lattice"]["pbc"] is False and cfg["run"]["n_steps"] == 3
    assert cfg["ansatz"]["param_dtype"] == "float64"
    with pytest.raises(ConfigError, match="table.field=value"):
        apply_overrides(small_config, ["nonsense"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("ansatz.name=rmb", r"unknown ansatz 'rmb'; valid names: .*rbm"),
        ("ansatz.alpah=2", r"unknown field\(s\) alpah for ansatz 'rbm'; valid fields: alpha"),
        ("ansatz.alpha=two", r"field 'alpha' of ansatz 'rbm' must be int, got str"),
        ("ansatz.alpha=1.5", r"field 'alpha' of ansatz 'rbm' must be int"),
        ("space.n_sites=7", r"inconsistent sizes"),
        ("sampler.n_chains=0", r"n_chains"),
        ("preconditioner.solver=qr", r"unknown SR solver 'qr'"),
        ("run.n_step=3", r"unknown field\(s\) n_step in \[run\]"),
        ("optimizer.learning_rate={name='cosin', x=1}", r"unknown schedule 'cosin'"),
    ],
)
def test_errors_are_one_line_and_name_the_fix(small_config, override, message):
    with pytest.raises(ConfigError, match=message) as exc:
        build(apply_overrides(small_config, [override]))
    assert "\n" not in str(exc.value)


def test_missing_and_unknown_tables(small_config):
    cfg = dict(small_config)
    del cfg["system"]
    with pytest.raises(ConfigError, match=r"missing table \[system\]"):
        build(cfg)
    with pytest.raises(ConfigError, match=r"unknown table\(s\) \[hamiltonian\]"):
        build({**small_config, "hamiltonian": {"name": "ising"}})


def test_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        nqs_core.load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[system\nname = 1")
    with pytest.raises(ConfigError, match="malformed TOML"):
        nqs_core.load_config(bad)


def test_schedule_from_config(small_config):
    cfg = apply_overrides(small_config, ["optimizer.learning_rate={name='cosine_decay', init_value=0.05, decay_steps=10}"])
    calc = build(cfg)
    assert calc.config["optimizer"]["learning_rate"]["name"] == "cosine_decay"
