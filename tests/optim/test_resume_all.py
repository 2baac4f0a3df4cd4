"""Resume over every registered preconditioner and optimizer: 2x steps == x steps +
`resume` for x steps, to 1e-12 (the checkpoint holds the whole state, KFAC's
curvature blocks included, and matches the template built by `init`)."""

import jax
import numpy as np
import pytest

import nqs_core
from nqs_core import apply_overrides, get_registry

REG = get_registry()

#: Preconditioners whose metric needs d/dx log psi: run on two trapped fermions.
CONTINUUM_ONLY = {"dgd"}

SMALL_FERMIONS = """
[run]
seed = 3
exact_energy = "none"
n_eval_batches = 0

[space]
name = "particles_1d"
n_particles = 2

[system]
name = "trapped_fermions_1d"
V0 = -2.0
sigma0 = 0.5

[ansatz]
name = "equivariant_slater"
hidden = 2
n_layers = 1
init = "random"

[sampler]
name = "gaussian_metropolis"
n_samples = 32
n_chains = 4

[optimizer]
name = "sgd"
learning_rate = 0.01
"""

N = 2  # steps before and after the resume


def _leaves(state):
    return [np.asarray(a) for a in jax.tree.leaves(state)]


def _check_resume(config, tmp_path):
    full = nqs_core.run(config, run_dir=tmp_path / "full", progress=False, n_steps=2 * N)
    nqs_core.run(config, run_dir=tmp_path / "part", progress=False, n_steps=N)
    resumed = nqs_core.resume(tmp_path / "part", n_steps=2 * N, progress=False)
    assert int(resumed.state.step) == 2 * N
    assert jax.tree.structure(full.state) == jax.tree.structure(resumed.state)
    for a, b in zip(_leaves(full.state), _leaves(resumed.state)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _small_tfim(small_config):
    # a small step: with 32 samples, KFAC at learning_rate 0.05 can leave the stable
    # region (the divergence guard then stops the run, and there is nothing to resume)
    return apply_overrides(small_config, ["run.n_eval_batches=0", "sampler.n_samples=32", "sampler.n_chains=4", "optimizer.learning_rate=0.01"])


@pytest.mark.parametrize("name", REG.names("preconditioner"))
def test_resume_every_preconditioner(name, small_config, tmp_path):
    if name in CONTINUUM_ONLY:
        config = nqs_core.loads_config(SMALL_FERMIONS)
    else:
        config = _small_tfim(small_config)
    config["preconditioner"] = {"name": name}
    _check_resume(config, tmp_path)


@pytest.mark.parametrize("name", REG.names("optimizer"))
def test_resume_every_optimizer(name, small_config, tmp_path):
    # real parameters and the standard dtype promotion that `nqs run` uses: optax's
    # adaptive optimizers mix Python floats with int32 step counts (refused by the
    # suite's strict promotion) and do not take complex parameters
    config = apply_overrides(_small_tfim(small_config), ["ansatz.param_dtype=float64"])
    config["optimizer"] = {"name": name, "learning_rate": 0.01}
    with jax.numpy_dtype_promotion("standard"):
        _check_resume(config, tmp_path)
