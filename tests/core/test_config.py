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


def test_the_build_rule_resolves_by_annotation_and_passes_the_registry(small_config):
    """Issue 28: a constructor argument is a component when its annotation names
    a protocol (or, without annotation, when it is named like a table); a field
    named `sampler` with another annotation is the author's field, not the
    sampler. The registry the build was given resolves every name (no global)."""
    import equinox as eqx
    import jax.numpy as jnp

    class Tagged(nqs_core.AbstractSampleObservable):
        """A test observable whose user field is called `sampler`."""

        sampler: str = eqx.field(static=True)
        n: int = eqx.field(static=True)

        def __init__(self, space: nqs_core.AbstractSpace, sampler: str = "none"):
            self.sampler = sampler
            self.n = int(space.size)

        @property
        def shape(self):
            return ()

        def function(self, x):
            return jnp.sum(x) / self.n

    class Plugin:
        @staticmethod
        @nqs_core.hookimpl
        def nqs_register(registry):
            registry.add("observable", "tagged", Tagged)

    reg = nqs_core.load_registry(autoload=False)
    reg.register_plugin(Plugin, "test_tagged")
    assert list(nqs_core.component_fields(Tagged)) == ["sampler"]
    cfg = dict(small_config, observables={"t": {"name": "tagged", "sampler": "metropolis"}})
    cfg["run"] = {**cfg.get("run", {}), "exact_energy": "auto"}
    calc = build(cfg, registry=reg)
    assert calc.observables["t"].sampler == "metropolis" and calc.observables["t"].n == calc["space"].size
    assert calc.config["observables"]["t"] == {"name": "tagged", "sampler": "metropolis"}
    # the process-wide registry does not know the plugin: the build used the one it was given
    with pytest.raises(ConfigError, match="tagged"):
        build(cfg)
    # the build runs no physics: the exact reference comes after it
    assert calc.config["run"]["exact_energy"] == "auto" and calc.driver.exact_energy is None
    e0 = nqs_core.resolve_exact_energy(calc)
    assert e0 is not None and calc.driver.exact_energy == e0 == calc.config["run"]["exact_energy"]
