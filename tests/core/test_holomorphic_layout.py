"""A holomorphic ansatz (`AbstractAnsatz.holomorphic`): the layout of complex
parameters in `real_ravel` order, and the log-derivatives computed as one
complex derivative per parameter, against the RBM's closed form in numpy."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import HolomorphicLayout, log_derivatives, real_ravel
from nqs_core._estimator import mean_log_derivative


def _rbm(param_dtype="complex128", n=5, alpha=2):
    cfg = {
        "lattice": {"name": "chain", "length": n, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "h": 1.0},
        "ansatz": {"name": "rbm", "alpha": alpha, "param_dtype": param_dtype, "init_std": 0.4},
        "sampler": {"name": "full_sum"},
    }
    return nqs_core.build(cfg)["ansatz"]


def _closed_form(model, xs):
    """d log psi / d(W, b, a) of log psi = a.s + sum_j log cosh(b_j + W_j.s), in numpy:
    tanh(theta_j) s_k, tanh(theta_j), s_k, flattened in the order of the fields."""
    w, b, a = (np.asarray(t) for t in (model.weights, model.hidden_bias, model.visible_bias))
    th = np.tanh(xs @ w.T + b)
    return {"weights": th[:, :, None] * xs[:, None, :], "hidden_bias": th, "visible_bias": xs.astype(complex)}


def test_the_layout_follows_real_ravel():
    params = {"a": jnp.asarray(np.arange(6.0).reshape(2, 3) * (1 + 2j)), "b": jnp.array([7.0 - 1j, 8.0 + 5j])}
    layout = HolomorphicLayout(params)
    vec, _ = real_ravel(params)
    z = jnp.concatenate([params["a"].ravel(), params["b"]])
    np.testing.assert_array_equal(layout.real_vector(z), vec)
    np.testing.assert_array_equal(layout.complex_vector(vec), z)
    y = jnp.stack([vec, 2 * vec]).astype(jnp.complex128)
    np.testing.assert_array_equal(layout.complex_columns(y), jnp.stack([jnp.real(z), 2 * jnp.real(z)]).astype(jnp.complex128))
    cols = np.asarray(layout.real_columns(z[None]))[0]  # [z_a, i z_a, z_b, i z_b]
    np.testing.assert_array_equal(cols, np.concatenate([z[:6], 1j * z[:6], z[6:], 1j * z[6:]]))
    with pytest.raises(ValueError, match="complex parameters only"):
        HolomorphicLayout({"a": jnp.ones(2), "b": jnp.ones(2, jnp.complex128)})


def test_the_rbm_declares_holomorphy_only_with_complex_parameters():
    assert _rbm("complex128").holomorphic
    assert not _rbm("float64").holomorphic


def test_holomorphic_log_derivatives_against_the_closed_form():
    model = _rbm()
    rng = np.random.default_rng(0)
    xs = rng.choice([-1.0, 1.0], size=(9, 5))
    scale = rng.uniform(0.5, 2.0, size=9)
    exact = _closed_form(model, xs)
    params, _ = nqs_core.parameters(model)
    layout = HolomorphicLayout(params)
    # the complex derivatives in the order of the parameter leaves (equinox field order)
    leaves = jax.tree_util.tree_leaves_with_path(params)
    a = np.concatenate([exact[jax.tree_util.keystr(p).lstrip(".")].reshape(9, -1) for p, _ in leaves], axis=1)
    o = np.asarray(log_derivatives(model, jnp.asarray(xs)))
    np.testing.assert_allclose(o, np.asarray(layout.real_columns(jnp.asarray(a))), rtol=1e-12, atol=1e-14)
    o_scaled = np.asarray(log_derivatives(model, jnp.asarray(xs), scale=jnp.asarray(scale)))
    np.testing.assert_allclose(o_scaled, scale[:, None] * o, rtol=1e-12, atol=1e-14)
    w = rng.uniform(size=9)
    mean = np.asarray(mean_log_derivative(model, jnp.asarray(xs), jnp.asarray(w)))
    np.testing.assert_allclose(mean, w @ o, rtol=1e-12, atol=1e-14)


def test_a_wrapper_without_the_declaration_gives_the_same_derivatives():
    """The general path (two real reverse passes per sample) and the holomorphic one agree."""

    class Plain(nqs_core.AbstractAnsatz):
        inner: nqs_core.AbstractAnsatz

        def __call__(self, x):
            return self.inner(x)

    model = _rbm()
    xs = jnp.asarray(np.random.default_rng(1).choice([-1.0, 1.0], size=(7, 5)))
    plain = Plain(model)
    assert not plain.holomorphic
    np.testing.assert_allclose(log_derivatives(plain, xs), log_derivatives(model, xs), rtol=1e-13, atol=1e-15)
    assert eqx.tree_equal(nqs_core.parameters(plain)[0].inner, nqs_core.parameters(model)[0])
