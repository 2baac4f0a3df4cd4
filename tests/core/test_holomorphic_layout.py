"""A holomorphic ansatz (`AbstractAnsatz.holomorphic`): the layout of complex
parameters in `real_ravel` order, and the log-derivatives computed as one
complex derivative per parameter, against the RBM's closed form in numpy."""

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


def _model(ansatz):
    cfg = {
        "lattice": {"name": "chain", "length": 5, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "h": 1.0},
        "ansatz": ansatz,
        "sampler": {"name": "full_sum"},
    }
    return nqs_core.build(cfg)["ansatz"]


class _Plain(nqs_core.AbstractAnsatz):
    """The same log psi without the declaration: the general path (two real passes)."""

    inner: nqs_core.AbstractAnsatz

    def __call__(self, x):
        return self.inner(x)


@pytest.mark.parametrize(
    "ansatz, declared",
    [
        ({"name": "rbm", "alpha": 2, "param_dtype": "complex128", "init_std": 0.4}, True),
        ({"name": "jastrow", "param_dtype": "complex128", "init_std": 0.3}, True),
        ({"name": "mlp", "hidden": [6, 4], "param_dtype": "complex128", "activation": "log_cosh"}, True),
        ({"name": "mlp", "hidden": [6], "param_dtype": "complex128", "activation": "tanh"}, True),
        ({"name": "mlp", "hidden": [6], "param_dtype": "complex128", "activation": "relu"}, False),
        ({"name": "mlp", "hidden": [6], "param_dtype": "float64", "activation": "tanh"}, False),
        ({"name": "jastrow", "param_dtype": "float64"}, False),
        ({"name": "rbm", "param_dtype": "float64"}, False),
    ],
    ids=["rbm", "jastrow", "mlp-log_cosh", "mlp-tanh", "mlp-relu", "mlp-real", "jastrow-real", "rbm-real"],
)
def test_declared_holomorphy_holds(ansatz, declared):
    """Where a network declares `holomorphic`, its derivatives by the holomorphic
    path equal those of the general path, which assumes nothing: the derivative
    by a parameter's imaginary part is `i` times that by its real part."""
    model = _model(ansatz)
    assert model.holomorphic is declared
    xs = jnp.asarray(np.random.default_rng(4).choice([-1.0, 1.0], size=(8, 5)))
    general = np.asarray(log_derivatives(_Plain(model), xs))
    np.testing.assert_allclose(np.asarray(log_derivatives(model, xs)), general, rtol=1e-12, atol=1e-14)
    if declared:
        layout = HolomorphicLayout(nqs_core.parameters(model)[0])
        a = np.asarray(layout.complex_columns(jnp.asarray(general)))
        np.testing.assert_allclose(general, np.asarray(layout.real_columns(jnp.asarray(a))), rtol=1e-12, atol=1e-14)
