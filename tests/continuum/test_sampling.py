"""Gaussian Metropolis sampler (adaptation, exactness), observables and plots."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_continuum import (
    EquivariantSlater,
    GaussianMetropolis,
    GaussianMetropolisState,
    Particles1D,
    free_density,
    free_pair_distribution,
    one_body_density,
    pair_distribution,
    plot_density,
    plot_pair_distribution,
)


class _Gauss(nqs_core.AbstractDistribution):
    """Independent normal coordinates of standard deviation `s` (not normalised)."""

    s: float

    def log_prob(self, x):
        return -0.5 * jnp.sum(x * x) / self.s**2


def test_width_adapts_to_target_and_samples_are_exact():
    space = Particles1D(3)
    dist = _Gauss(2.0)
    sampler = GaussianMetropolis(space, n_samples=1024, n_chains=32, step_size=0.05, target_acceptance=0.4)
    state = sampler.init(dist, jax.random.PRNGKey(0))
    assert isinstance(state, GaussianMetropolisState)
    sample = eqx.filter_jit(sampler.sample)  # compiled once, reused
    for _ in range(3):
        samples, state, info = sample(dist, state)
    assert samples.shape == (32, 32, 3)
    # started far too small (acceptance ~1), adapted to the target
    assert float(state.rule_state) > 1.0
    assert abs(float(info["acceptance"]) - 0.4) < 0.08
    assert float(info["step_size"]) == float(state.rule_state)
    xs = []
    for _ in range(3):
        samples, state, _ = sample(dist, state)
        xs.append(samples)
    xs = jnp.concatenate(xs, axis=1)
    for k in range(3):
        m = nqs_core.statistics(xs[..., k])
        v = nqs_core.statistics(xs[..., k] ** 2)
        assert abs(float(m.mean)) < 5 * float(m.error_of_mean)
        assert abs(float(v.mean) - 4.0) < 5 * float(v.error_of_mean)


def test_width_is_fixed_while_storing():
    space = Particles1D(2)
    dist = _Gauss(1.0)
    sampler = GaussianMetropolis(space, n_samples=64, n_chains=4, step_size=0.3, n_discard_per_chain=0)
    state = sampler.init(dist, jax.random.PRNGKey(1))
    _, new, info = sampler.sample(dist, state)
    assert float(new.rule_state) == 0.3 == float(info["step_size"])


def test_sampler_argument_errors():
    space = Particles1D(2)
    with pytest.raises(ValueError, match="target_acceptance"):
        GaussianMetropolis(space, target_acceptance=1.0)
    with pytest.raises(ValueError, match="step_size"):
        GaussianMetropolis(space, step_size=0.0)
    with pytest.raises(TypeError, match="continuous"):
        GaussianMetropolis(object())
    with pytest.raises(ValueError, match="n_samples"):
        GaussianMetropolis(space, n_samples=0)


@pytest.fixture(scope="module")
def free_samples():
    """Samples of |psi|^2 for three free fermions (the exact HO Slater determinant)."""
    space = Particles1D(3)
    model = EquivariantSlater(space, hidden=4, n_layers=1, key=jax.random.PRNGKey(0))
    dist = nqs_core.BornDistribution(model)
    sampler = GaussianMetropolis(space, n_samples=4096, n_chains=32)
    state = sampler.init(dist, jax.random.PRNGKey(2))
    sample = eqx.filter_jit(sampler.sample)  # compiled once, reused
    out = []
    for _ in range(3):
        s, state, _ = sample(dist, state)
        out.append(s)
    return np.concatenate(out[1:], axis=1)  # first call: burn-in


def test_one_body_density_matches_free_fermions(free_samples, tmp_path):
    d = one_body_density(free_samples, bins=30, range=(-4.0, 4.0))
    assert abs(np.sum(d.values * np.diff(d.edges)) - 3.0) < 0.01
    exact = free_density(d.centers, 3)
    ok = d.errors > 0  # empty bins far in the tails have no error bar
    assert ok.sum() >= 24
    z = (d.values - exact)[ok] / d.errors[ok]
    assert np.mean(z**2) < 2.0  # chi^2 per bin (bins narrow enough for centre values)
    path = plot_density(d, tmp_path / "n.png", labels=["VMC"], reference=(d.centers, exact), title="A = 3")
    assert path.exists() and path.stat().st_size > 1000


def test_pair_distribution_matches_free_fermions(free_samples, tmp_path):
    g = pair_distribution(free_samples, bins=12, range=(-3.5, 3.5))
    area = np.outer(np.diff(g.edges), np.diff(g.edges))
    assert abs(np.sum(g.values * area) - 6.0) < 0.05  # A (A - 1), minus the tails outside the range
    np.testing.assert_allclose(g.values, g.values.T, atol=1e-12)
    # exact bin averages (midpoint rule on a 10 x 10 sub-grid of every bin)
    sub = 10
    fine = np.concatenate([lo + (np.arange(sub) + 0.5) * (hi - lo) / sub for lo, hi in zip(g.edges[:-1], g.edges[1:])])
    nb = g.centers.size
    exact = free_pair_distribution(fine, fine, 3).reshape(nb, sub, nb, sub).mean(axis=(1, 3))
    ok = g.errors > 0
    z = (g.values - exact)[ok] / g.errors[ok]
    assert np.mean(z**2) < 2.0
    assert np.all(np.diag(g.values) < 0.5 * np.max(g.values))  # Pauli hole on the diagonal
    path = plot_pair_distribution(g, tmp_path / "g.png", title="A = 3")
    assert path.exists() and path.stat().st_size > 1000


def test_observable_argument_errors(free_samples):
    with pytest.raises(ValueError, match="shape"):
        one_body_density(np.zeros(5))
    with pytest.raises(ValueError, match="range"):
        one_body_density(free_samples, bins=10, range=(1.0, -1.0))
    with pytest.raises(ValueError, match="two particles"):
        pair_distribution(np.zeros((10, 1)))
