"""Parallel tempering (`parallel_tempering` sampler): exact distributions by
enumeration, a bimodal |psi|^2 that local Metropolis cannot cross, the swap
diagnostics, the ladder's validation and an exact resume from a checkpoint."""

import jax
import numpy as np
import pytest
from test_mixture import RBMDistribution, assert_histogram, bimodal, exact_probabilities, mode_weights, spin_space

import nqs_core
from nqs_core import testing


def draw(sampler, dist, key, n_calls=4):
    state = sampler.init(dist, key)
    out = []
    for _ in range(n_calls):
        x, state, info = sampler.sample(dist, state)
        out.append(np.asarray(x))
    return np.concatenate(out, axis=1), state, info


def test_tempering_crosses_the_barrier_and_samples_the_bimodal_distribution_exactly():
    n = 8
    dist = bimodal(n)  # barrier exp(-24) between all up and all down at beta = 1
    states, p = exact_probabilities(dist, n)
    p_up = p[states.sum(axis=1) > 0].sum()
    sampler = nqs_core.ParallelTempering(spin_space(n), ["local"], n_replicas=5, beta_min=0.05, n_samples=512, n_chains=16)
    assert sampler.betas[0] == 1.0 and np.isclose(sampler.betas[-1], 0.05)
    np.testing.assert_allclose(np.diff(np.log(sampler.betas)), np.log(0.05) / 4)  # geometric ladder
    chains, state, info = draw(sampler, dist, jax.random.PRNGKey(5))
    per_chain, overall = mode_weights(chains)
    assert np.all((per_chain > 0) & (per_chain < 1))  # every beta = 1 chain visits both modes
    assert abs(overall - p_up) < 0.06, (overall, p_up)
    assert_histogram(chains, p, tau=3.0)
    # diagnostics: acceptance at beta = 1 and the swap rate of each neighbouring pair
    swaps = [float(info[f"swap_acceptance_{r}"]) for r in range(4)]
    assert all(0.0 < s <= 1.0 for s in swaps) and float(info["swap_acceptance_min"]) == min(swaps)
    # local flips at beta = 1 are rarely accepted on this distribution; the swaps move every chain
    assert 0.0 < float(info["acceptance"]) < 0.2 and float(info["acceptance_min"]) > 0.0
    assert float(info["frozen_fraction"]) == 0.0
    assert state.x.shape == (5, 16, n) and state.n_accepted.shape == (16,)
    assert np.all(np.asarray(state.n_swaps_proposed) > 0)


def test_tempering_samples_a_random_rbm_exactly_with_a_rule_mixture():
    n = 7
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(4), 3)
    dist = RBMDistribution(a=0.2 * jax.random.normal(k1, (n,)), W=0.25 * jax.random.normal(k2, (2 * n, n)),
                           b=0.2 * jax.random.normal(k3, (2 * n,)))
    _, p = exact_probabilities(dist, n)
    sampler = nqs_core.ParallelTempering(spin_space(n), [{"name": "local", "weight": 0.7}, {"name": "exchange", "weight": 0.3}],
                                         betas=[1.0, 0.6, 0.3], swap_every=2, n_samples=512, n_chains=16)
    chains, _, _ = draw(sampler, dist, jax.random.PRNGKey(0))
    assert_histogram(chains, p, tau=1.0)


def test_tempering_with_an_adaptive_gaussian_rule_on_a_continuous_space():
    space = nqs_core.get_registry().get("space", "particles_1d").obj(n_particles=2)
    sampler = nqs_core.ParallelTempering(space, [{"name": "gaussian", "step_size": 0.3}], n_replicas=3, beta_min=0.3,
                                         n_samples=256, n_chains=8)
    dist = testing.Gaussian(space, mean=jax.numpy.array([0.3, -0.5]), std=0.7)
    testing.check_sampler(sampler, dist, jax.random.PRNGKey(1))  # mean, variance, Mahalanobis distance
    _, state, info = draw(sampler, dist, jax.random.PRNGKey(0), n_calls=1)
    widths = np.asarray(state.rule_state)  # one adapted width per temperature, wider where p^beta is wider
    assert widths.shape == (3,) and np.all(np.diff(widths) > 0)
    assert float(info["step_size"]) == widths[0]


def test_ladder_validation():
    space = spin_space(4)
    with pytest.raises(ValueError, match="beta_min must be a number in \\(0, 1\\)"):
        nqs_core.ParallelTempering(space, ["local"], beta_min=1.5)
    with pytest.raises(ValueError, match="betas must start at 1 and decrease strictly"):
        nqs_core.ParallelTempering(space, ["local"], n_replicas=3, betas=[1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="betas has 2 values but n_replicas = 3"):
        nqs_core.ParallelTempering(space, ["local"], n_replicas=3, betas=[1.0, 0.5])
    with pytest.raises(ValueError, match="n_replicas"):
        nqs_core.ParallelTempering(space, ["local"], n_replicas=1)
    with pytest.raises(ValueError, match="unknown rule 'flips'; valid rule names: .*local"):
        nqs_core.ParallelTempering(space, ["flips"])


CONFIG = """
[run]
seed = 3
exact_energy = "none"
n_eval_batches = 1
checkpoint_every = 1
[lattice]
name = "chain"
length = 6
[space]
name = "spin_half"
[system]
name = "ising"
h = 0.7
[ansatz]
name = "rbm"
alpha = 1
[sampler]
name = "parallel_tempering"
rules = [{ name = "local", weight = 0.9 }, { name = "global_flip", weight = 0.1 }]
n_replicas = 3
n_samples = 64
n_chains = 8
[optimizer]
name = "sgd"
learning_rate = 0.05
"""


def test_resume_of_a_tempering_run_equals_the_uninterrupted_run(tmp_path):
    config = nqs_core.loads_config(CONFIG)
    full = nqs_core.run(config, run_dir=tmp_path / "full", progress=False, n_steps=4)
    nqs_core.run(config, run_dir=tmp_path / "part", progress=False, n_steps=2)
    resumed = nqs_core.resume(tmp_path / "part", n_steps=4, progress=False)
    assert isinstance(resumed.state.sampler_state, nqs_core.TemperingState)
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    log_full, log_part = nqs_core.read_log(tmp_path / "full"), nqs_core.read_log(tmp_path / "part")
    np.testing.assert_allclose([r["energy"] for r in log_full], [r["energy"] for r in log_part], rtol=1e-12)
    assert "swap_acceptance_0" in log_full[-1] and "swap_acceptance_min" in log_full[-1]
