"""Contract tests over every registered component (style.md: abstract-or-final,
one behavioural check per kind run over the registry table)."""

import abc
import inspect

import equinox as eqx
import jax
import numpy as np
import pytest

import nqs_core
from nqs_core import (
    AbstractAnsatz,
    AbstractEstimator,
    AbstractLattice,
    AbstractPreconditioner,
    AbstractSampler,
    AbstractSpace,
    AbstractSystem,
    build,
    get_registry,
    real_ravel,
)

PROTOCOLS = {
    "lattice": AbstractLattice,
    "space": AbstractSpace,
    "system": AbstractSystem,
    "ansatz": AbstractAnsatz,
    "sampler": AbstractSampler,
    "estimator": AbstractEstimator,
    "preconditioner": AbstractPreconditioner,
    "observable": nqs_core.AbstractObservable,
}

REG = get_registry()
CLASS_ENTRIES = [e for kind in PROTOCOLS for e in REG.entries(kind)]


@pytest.mark.parametrize("entry", CLASS_ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_registered_classes_are_final_modules(entry):
    cls = entry.obj
    assert inspect.isclass(cls) and issubclass(cls, eqx.Module)
    assert issubclass(cls, PROTOCOLS[entry.kind]), f"{cls} must implement {PROTOCOLS[entry.kind].__name__}"
    assert not cls.__name__.startswith("Abstract")
    assert not getattr(cls, "__abstractmethods__", None), f"{cls} leaves {cls.__abstractmethods__} abstract"
    # final: no other registered concrete class derives from it
    for other in CLASS_ENTRIES:
        if other.obj is not cls:
            assert not issubclass(other.obj, cls), f"{other.obj} subclasses the concrete {cls}"
    assert inspect.getdoc(cls), "every component is documented (nqs info shows it)"


def test_every_kind_has_a_documented_entry():
    for kind in ("system", "ansatz", "sampler", "estimator", "preconditioner", "optimizer", "driver", "exact"):
        assert REG.names(kind), kind
        for e in REG.entries(kind):
            assert e.summary, f"{kind} {e.name} has no docstring summary"


#: Preconditioners whose metric needs d/dx log psi (continuum systems only);
#: they are checked on a small trapped-fermion problem instead of the TFIM.
CONTINUUM_ONLY = {"dgd"}

SMALL_FERMIONS = """
[run]
n_steps = 1
seed = 3
exact_energy = "none"

[space]
name = "particles_1d"
n_particles = 2

[system]
name = "trapped_fermions_1d"
V0 = -2.0
sigma0 = 0.5

[ansatz]
name = "equivariant_slater"
hidden = 4
n_layers = 1
init = "random"

[sampler]
name = "gaussian_metropolis"
n_samples = 64
n_chains = 4

[optimizer]
name = "sgd"
learning_rate = 0.01
"""


@pytest.mark.parametrize("name", REG.names("preconditioner"))
def test_preconditioner_gives_a_descent_direction(name, small_config):
    """Every preconditioner returns a direction shaped like the parameters with a
    positive overlap with the energy gradient (a metric-preconditioned gradient
    is a descent direction for any positive-definite metric)."""
    cfg = dict(nqs_core.loads_config(SMALL_FERMIONS) if name in CONTINUUM_ONLY else small_config)
    cfg["preconditioner"] = {"name": name}
    calc = build(cfg)
    driver = calc.driver
    state = driver.init(jax.random.PRNGKey(0))
    model = driver.model(state)
    samples, _, _ = driver.sampler.sample(nqs_core.BornDistribution(model), state.sampler_state)
    estimate = driver.estimator(model, driver.system, samples)
    grad = driver.estimator.gradient(model, samples, estimate)
    context = nqs_core.StepContext(driver.system, model, samples, estimate, driver.estimator)
    direction, _, _ = driver.preconditioner(context, state.precond_state)
    assert jax.tree.structure(direction) == jax.tree.structure(state.params)
    for d, p in zip(jax.tree.leaves(direction), jax.tree.leaves(state.params)):
        assert d.shape == p.shape and d.dtype == p.dtype
    g, _ = real_ravel(grad)
    d, _ = real_ravel(direction)
    assert float(np.dot(g, d)) > 0
