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


def test_nested_component_tables(small_config):
    """A field annotated with a core protocol accepts a component table, built
    from the registry with the same injection (wrappers around any ansatz)."""
    import jax.numpy as jnp

    from nqs_core import AbstractAnsatz, get_registry, hookimpl

    class Scaled(AbstractAnsatz):
        """Wraps an ansatz: log psi -> factor * log psi."""

        inner: AbstractAnsatz
        factor: float

        def __init__(self, inner: AbstractAnsatz, factor: float = 2.0):
            self.inner, self.factor = inner, factor

        def __call__(self, x):
            return self.factor * self.inner(x)

    class Plugin:
        @staticmethod
        @hookimpl
        def nqs_register(registry):
            registry.add("ansatz", "scaled_test", Scaled)

    reg = get_registry()
    reg.register_plugin(Plugin, "test_nested")
    try:
        cfg = dict(small_config)
        cfg["ansatz"] = {"name": "scaled_test", "factor": 3.0, "inner": {"name": "rbm", "alpha": 2}}
        calc = build(cfg)
        model = calc["ansatz"]
        assert isinstance(model, Scaled) and model.inner.weights.shape == (12, 6)
        assert calc.config["ansatz"]["inner"] == {**calc.config["ansatz"]["inner"], "name": "rbm", "alpha": 2}
        x = jnp.ones(6)
        assert complex(model(x)) == pytest.approx(3.0 * complex(model.inner(x)))
        cfg["ansatz"]["inner"] = {"name": "rbm", "alhpa": 2}
        with pytest.raises(ConfigError, match="unknown field.*alhpa"):
            build(cfg)
        cfg["ansatz"]["inner"] = {"name": "nosuch"}
        with pytest.raises(ConfigError, match="field 'inner' of ansatz 'scaled_test': unknown ansatz 'nosuch'"):
            build(cfg)
    finally:
        reg.remove("ansatz", "scaled_test")
