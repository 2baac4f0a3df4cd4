"""KFAC: exact natural gradient for one dense layer; runs inside a jitted VMC step."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nqs_core import AbstractAnsatz, EnergyEstimator, Estimate, build, real_ravel, statistics
from nqs_optim import KFAC


class _Dense(AbstractAnsatz):
    """log psi = x @ W + b with W stored (in, out): one dense layer kfac-jax recognises."""

    w: jax.Array
    b: jax.Array

    def __call__(self, x):
        return (x @ self.w + self.b)[0]


def test_one_dense_layer_is_exact_natural_gradient(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    n_in, m = 3, 64
    ansatz = _Dense(jax.random.normal(k1, (n_in, 1)), jax.random.normal(k2, (1,)))
    samples = jax.random.normal(k3, (4, m // 4, n_in))
    eloc = jax.random.normal(k4, (4, m // 4))
    est = Estimate(stats=statistics(eloc), local_values=eloc)
    estimator = EnergyEstimator()
    damping = 1e-6
    direction, state, _ = KFAC(damping=damping)(ansatz, samples, est, estimator, None)
    # one layer with scalar output: per-sample gradient [x, 1] (x) 1, so A (x) G is the exact (uncentred) Fisher
    xs = np.asarray(samples.reshape(m, n_in))
    a = np.concatenate([xs, np.ones((m, 1))], axis=1)
    fisher = a.T @ a / m
    g_wb = np.asarray(real_ravel(estimator.gradient(ansatz, samples, est))[0])  # order: w, b
    expected = np.linalg.solve(fisher + damping * np.eye(n_in + 1), g_wb)
    got = np.concatenate([np.asarray(direction.w).ravel(), np.asarray(direction.b)])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert state is not None


def test_kfac_inside_vmc_complex_rbm(small_config):
    cfg = dict(small_config)
    cfg["preconditioner"] = {"name": "kfac", "damping": 1e-2, "ema": 0.9}
    driver = build(cfg).driver
    state = driver.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, rec = driver.step(state)
        assert np.isfinite(rec["energy"]) and np.isfinite(rec["direction_norm"])
