"""ExactSampler (i.i.d. samples by enumerating a small space) and `[run] init_from`."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_networks import RBM
from nqs_spins import SpinHalf


def _histogram(x, states):
    flat = np.asarray(x).reshape(-1, states.shape[1])
    counts = np.array([np.sum(np.all(flat == s, axis=1)) for s in states])
    return counts / counts.sum()


@pytest.mark.parametrize("total_sz", [None, 0.0])
def test_exact_sampler_draws_from_the_born_distribution(total_sz):
    space = SpinHalf(4, total_sz=total_sz)
    rbm = RBM(space, alpha=1, key=jax.random.PRNGKey(3))
    # larger weights than at initialisation: a far from uniform distribution
    rbm = jax.tree.map(lambda a: 40.0 * a if jnp.issubdtype(a.dtype, jnp.floating) else a, rbm)
    dist = nqs_core.BornDistribution(rbm)
    sampler = nqs_core.ExactSampler(space, n_samples=40000, n_chains=8)
    state = sampler.init(dist, jax.random.PRNGKey(0))
    x, state2, info = sampler.sample(dist, state)
    assert x.shape == (8, 5000, 4)
    assert float(info["acceptance"]) == 1.0
    states = space.all_states()
    p = np.exp(2 * np.real(np.asarray(jax.vmap(rbm)(jnp.asarray(states)))))
    p /= p.sum()
    assert p.max() > 2.0 / len(states)  # the test distribution is not uniform
    tv = 0.5 * np.abs(_histogram(x, states) - p).sum()
    assert tv < 0.015  # statistical TV ~ sqrt(n_states / 40000) / 2 <= 0.01
    # the key advances, and chunked evaluation draws the very same samples
    assert not np.array_equal(np.asarray(state.key), np.asarray(state2.key))
    chunked = nqs_core.ExactSampler(space, n_samples=40000, n_chains=8, chunk_size=3)
    x2, _, _ = chunked.sample(dist, chunked.init(dist, jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))


class _Table(nqs_core.AbstractDistribution):
    """`log p` from a table indexed by the spin code (site 0 most significant)."""

    log_p: jnp.ndarray

    def log_prob(self, x):
        code = jnp.sum(jnp.where(x > 0, 2 ** jnp.arange(x.shape[0] - 1, -1, -1), 0))
        return self.log_p[code]


def test_inverse_cdf_draws_match_the_probabilities_and_skip_zero_weights():
    """Counts of 60000 draws over the 16 states of 4 spins follow the exact
    probabilities (chi-square, 15 degrees of freedom: p-value > 1e-4), states
    of zero weight (`log p = -inf`, also the first and the last) are never
    drawn, and the draw is the same with one or many chunks."""
    from scipy import stats

    rng = np.random.default_rng(5)
    w = rng.uniform(0.0, 1.0, 16) ** 3
    w[[0, 5, 6, 15]] = 0.0
    p = w / w.sum()
    with np.errstate(divide="ignore"):
        dist = _Table(jnp.asarray(np.log(w) + 7.0))  # unnormalised
    space = SpinHalf(4)
    sampler = nqs_core.ExactSampler(space, n_samples=60000, n_chains=4)
    x, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(11)))
    codes = np.asarray(x).reshape(-1, 4) > 0
    codes = codes @ (2 ** np.arange(3, -1, -1))
    counts = np.bincount(codes, minlength=16)
    assert counts[[0, 5, 6, 15]].sum() == 0
    live = p > 0
    chi2 = np.sum((counts[live] - 60000 * p[live]) ** 2 / (60000 * p[live]))
    assert stats.chi2.sf(chi2, live.sum() - 1) > 1e-4, chi2
    chunked = nqs_core.ExactSampler(space, n_samples=60000, n_chains=4, chunk_size=5)
    x2, _, _ = chunked.sample(dist, chunked.init(dist, jax.random.PRNGKey(11)))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))


def test_exact_sampler_refuses_what_it_cannot_enumerate():
    with pytest.raises(ValueError, match="Metropolis"):
        nqs_core.ExactSampler(SpinHalf(12), max_states=1000)
    from nqs_continuum import Particles1D

    with pytest.raises(TypeError, match="discrete"):
        nqs_core.ExactSampler(Particles1D(2))
    with pytest.raises(ValueError, match="n_samples"):
        nqs_core.ExactSampler(SpinHalf(4), n_samples=0)
    assert nqs_core.get_registry().get("sampler", "exact").obj is nqs_core.ExactSampler


def test_init_from_starts_a_new_run_from_a_checkpoint(tmp_path, small_config):
    first = nqs_core.run(small_config, run_dir=tmp_path / "a", progress=False, n_steps=4)
    cfg = copy.deepcopy(small_config)
    cfg["run"]["init_from"] = str(tmp_path / "a")
    cfg["run"]["n_eval_batches"] = 0
    cfg["sampler"] = {"name": "exact", "n_samples": 64, "n_chains": 4}
    second = nqs_core.run(cfg, run_dir=tmp_path / "b", progress=False, n_steps=0)
    for a, b in zip(jax.tree.leaves(first.state.params), jax.tree.leaves(second.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fresh = nqs_core.parameters(nqs_core.build(small_config, exact=False).driver.ansatz)[0]
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(second.state.params))
    )
    # the continued run trains from there with the exact sampler
    third = nqs_core.run(cfg, run_dir=tmp_path / "d", progress=False, n_steps=2)
    assert int(third.state.step) == 2
    cfg["run"]["init_from"] = str(tmp_path / "nowhere")
    with pytest.raises(nqs_core.ConfigError, match="init_from"):
        nqs_core.run(cfg, run_dir=tmp_path / "e", progress=False, n_steps=0)
    assert not (tmp_path / "e").exists()  # nothing written for a run that cannot start
