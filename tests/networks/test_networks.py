"""Built-in networks against direct NumPy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_core import n_real_parameters
from nqs_networks import MLP, RBM, Jastrow, log_cosh
from nqs_spins import SpinHalf

SPACE = SpinHalf(n_sites=6)


def configs(key, n=5):
    return SPACE.random_state(key, n)


def test_log_cosh_is_stable_and_exact():
    z = jnp.array([0.0, 0.3, -2.0, 40.0, -800.0, 900.0])
    np.testing.assert_allclose(log_cosh(z[:3]), np.log(np.cosh(np.asarray(z[:3]))), rtol=1e-14)
    assert np.all(np.isfinite(log_cosh(z)))
    np.testing.assert_allclose(log_cosh(z[3:]), np.abs(np.asarray(z[3:])) - np.log(2.0), rtol=1e-14)
    w = jax.lax.complex(jnp.array([0.3, -1.2]), jnp.array([0.7, 2.5]))
    np.testing.assert_allclose(np.exp(log_cosh(w)), np.cosh(np.asarray(w)), rtol=1e-13)


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_rbm_formula(key, dtype):
    m = RBM(SPACE, alpha=2, param_dtype=dtype, init_std=0.5, key=key)
    for x in np.asarray(configs(jax.random.PRNGKey(1))):
        w, b, a = (np.asarray(t) for t in (m.weights, m.hidden_bias, m.visible_bias))
        expected = a @ x + np.sum(np.log(np.cosh(w @ x + b)))
        np.testing.assert_allclose(np.exp(complex(m(jnp.asarray(x)))), np.exp(expected), rtol=1e-12)
    assert n_real_parameters(m) == (2 if dtype == "complex128" else 1) * (12 * 6 + 12 + 6)
    assert m(configs(key)[0]).dtype == jnp.dtype(dtype)


def test_rbm_without_biases(key):
    m = RBM(SPACE, alpha=1, use_visible_bias=False, use_hidden_bias=False, key=key)
    assert m.visible_bias is None and m.hidden_bias is None
    x = configs(key)[0]
    np.testing.assert_allclose(m(x), m(-x))  # no biases: spin-flip symmetric


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_mlp_formula(key, dtype):
    m = MLP(SPACE, hidden=[8, 4], activation="tanh", param_dtype=dtype, key=key)
    x = np.asarray(configs(key)[0])
    h = x.astype(dtype)
    for w, b in zip(m.weights, m.biases):
        h = np.tanh(np.asarray(w) @ h + np.asarray(b))
    np.testing.assert_allclose(complex(m(jnp.asarray(x))), h.sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(SPACE, activation="sigmoidish", key=key)
    with pytest.raises(ValueError, match="hidden"):
        MLP(SPACE, hidden=[], key=key)


def test_jastrow_formula(key):
    m = Jastrow(SPACE, param_dtype="complex128", init_std=0.3, key=key)
    x = np.asarray(configs(key)[0])
    i, j = np.triu_indices(6, k=1)
    expected = np.sum(np.asarray(m.couplings) * x[i] * x[j])
    np.testing.assert_allclose(complex(m(jnp.asarray(x))), expected, rtol=1e-12)
    np.testing.assert_allclose(m(jnp.asarray(x)), m(jnp.asarray(-x)))
