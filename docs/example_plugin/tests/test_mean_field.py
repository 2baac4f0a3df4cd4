"""Tests of the example mean-field plugin.

Run them with the plugin installed: `pip install -e docs/example_plugin`, then
`python -m pytest docs/example_plugin/tests`."""

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import nqs_core  # noqa: E402
import nqs_mean_field  # noqa: E402
from nqs_core import testing  # noqa: E402

SPACE = nqs_core.get_registry().get("space", "spin_half").obj(n_sites=4)


def registry_with_plugin():
    registry = nqs_core.load_registry(autoload=False)  # built-ins only
    registry.register_plugin(nqs_mean_field)
    assert not registry.failures, registry.failures
    return registry


def test_registered():
    registry = registry_with_plugin()
    entry = registry.get("ansatz", "mean_field")
    assert entry.plugin == "nqs_mean_field"
    assert list(nqs_core.component_fields(entry.obj)) == ["init_std"]


def test_keeps_the_ansatz_contract():
    """jit / vmap / unjitted agree, real float64 log psi, parameters, log-derivatives."""
    model = nqs_mean_field.MeanField(SPACE, key=jax.random.PRNGKey(0))
    testing.check_ansatz(model, SPACE, jax.random.PRNGKey(1), dtype="float64")


def test_exact_sampler_draws_its_born_distribution():
    """The product state's |psi|^2 is sampled exactly (total-variation distance to the exact probabilities)."""
    model = nqs_mean_field.MeanField(SPACE, init_std=1.0, key=jax.random.PRNGKey(2))
    sampler = nqs_core.ExactSampler(SPACE, n_samples=512, n_chains=8)
    testing.check_sampler(sampler, nqs_core.BornDistribution(model), jax.random.PRNGKey(3))


def test_builds_and_runs_from_a_config():
    config = nqs_core.loads_config("""
    [run]
    n_steps = 3
    exact_energy = "none"
    [lattice]
    name = "chain"
    length = 4
    [space]
    name = "spin_half"
    [system]
    name = "ising"
    [ansatz]
    name = "mean_field"
    init_std = 0.2
    [sampler]
    name = "metropolis_local"
    n_samples = 64
    n_chains = 4
    """)
    calc = nqs_core.build(config, registry=registry_with_plugin())
    model = calc["ansatz"]
    x = calc["space"].random_state(jax.random.PRNGKey(0), 5)
    assert np.all(np.isfinite(jax.vmap(model)(x)))
    state = calc.driver.init(jax.random.PRNGKey(1))
    state = calc.driver.run(state, n_steps=3)
    assert int(state.step) == 3
