"""DirectSampler (exact sampling from autoregressive ansätze) and plugin-provided CLI commands."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_spins import SpinHalf


class ProductState(nqs_core.AbstractAutoregressiveAnsatz):
    """psi(x) = prod_i sqrt(p_i(x_i)): the simplest normalised autoregressive model."""

    logits: jax.Array  # (n_sites,) log-odds of spin up

    def conditionals(self, x):
        lp_up = jax.nn.log_sigmoid(self.logits)
        lp_dn = jax.nn.log_sigmoid(-self.logits)
        return jnp.stack([lp_dn, lp_up], axis=-1)  # local states (-1, +1)

    def __call__(self, x):
        c = self.conditionals(x)
        idx = (x > 0).astype(jnp.int32)
        return 0.5 * jnp.sum(jnp.take_along_axis(c, idx[:, None], axis=1))

    def sample(self, key, n):
        up = jax.random.bernoulli(key, jax.nn.sigmoid(self.logits), (n, self.logits.shape[0]))
        return jnp.where(up, 1.0, -1.0)


def test_direct_sampler_matches_exact_distribution():
    space = SpinHalf(3)
    ansatz = ProductState(jnp.array([0.3, -1.0, 2.0]))
    sampler = nqs_core.DirectSampler(space, n_samples=20000, n_chains=4)
    dist = nqs_core.BornDistribution(ansatz)
    state = sampler.init(dist, jax.random.PRNGKey(0))
    x, state2, info = sampler.sample(dist, state)
    assert x.shape == (4, 5000, 3)
    assert float(info["acceptance"]) == 1.0
    assert not np.array_equal(np.asarray(state.key), np.asarray(state2.key))
    states = space.all_states()
    p_exact = np.exp(2 * np.asarray(jax.vmap(ansatz)(jnp.asarray(states))))
    np.testing.assert_allclose(p_exact.sum(), 1.0, atol=1e-12)
    codes = np.asarray(x).reshape(-1, 3)
    counts = np.array([np.sum(np.all(codes == s, axis=1)) for s in states])
    tv = 0.5 * np.abs(counts / counts.sum() - p_exact).sum()
    assert tv < 0.02  # statistical TV distance ~ sqrt(8/20000)/2 ~ 0.01


def test_direct_sampler_rejects_non_autoregressive():
    from nqs_networks import RBM  # noqa: I001

    space = SpinHalf(4)
    rbm = RBM(space, key=jax.random.PRNGKey(0))
    sampler = nqs_core.DirectSampler(space, n_samples=8, n_chains=2)
    with pytest.raises(TypeError, match="autoregressive"):
        sampler.init(nqs_core.BornDistribution(rbm), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_samples"):
        nqs_core.DirectSampler(space, n_samples=0)


def test_direct_sampler_is_registered():
    assert nqs_core.get_registry().get("sampler", "direct").obj is nqs_core.DirectSampler
