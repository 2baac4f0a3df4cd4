"""The SR Gram matrix by BLAS's symmetric rank-k update (the CPU fast path)
against products computed here in extended precision, and a full-sum SR step
through it against the natural-gradient step computed with NumPy."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import FullSumEstimator, FullSumSampler, StepContext, real_ravel
from nqs_networks import RBM
from nqs_optim import SR, gram, solve_sr
from nqs_optim import _sr
from nqs_spins import Chain, Ising, SpinHalf, to_dense


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / np.max(np.abs(np.asarray(b, np.float64))))


def test_gram_by_syrk_equals_the_extended_precision_product():
    # rows * P^2 = 2^24: "auto" takes the BLAS path on the CPU
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 64)) / 64.0 + 0.3  # not centred: no help from cancellation
    xl = x.astype(np.longdouble)
    exact = xl.T @ xl  # NumPy's own loop in long double, no BLAS
    assert jax.default_backend() != "cpu" or "callback" in str(jax.make_jaxpr(gram)(jnp.asarray(x)))
    for method in ("auto", "blas", "xla"):
        for fn in (gram, jax.jit(gram, static_argnums=1)):
            got = np.asarray(fn(jnp.asarray(x), method))
            assert got.shape == (64, 64) and got.dtype == np.float64
            assert _relative(got, exact) < 1e-12, method
            np.testing.assert_array_equal(got, got.T)
    # float32 through ssyrk, and no rows at all
    got32 = np.asarray(gram(jnp.asarray(x, jnp.float32), "blas"))
    assert got32.dtype == np.float32 and _relative(got32, exact) < 1e-5
    np.testing.assert_array_equal(np.asarray(gram(jnp.zeros((0, 3)), "blas")), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown gram method"):
        gram(jnp.asarray(x), "lapack")


def test_solve_sr_by_syrk_equals_a_numpy_solve():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4096, 64)) / np.sqrt(4096) + 0.05
    f = rng.standard_normal(4096) / np.sqrt(4096)
    xl = x.astype(np.longdouble)
    s = (xl.T @ xl).astype(np.float64)
    force = (xl.T @ f.astype(np.longdouble)).astype(np.float64)
    exact = np.linalg.solve(s + 0.01 * np.eye(64) + 0.1 * np.diag(np.diag(s)), force)
    delta, ok = jax.jit(solve_sr)(jnp.asarray(x), jnp.asarray(force), 0.01, 0.1)
    assert int(ok) == 1 and _relative(delta, exact) < 1e-12


def test_full_sum_sr_step_through_syrk_equals_the_numpy_step(monkeypatch):
    """The whole SR direction of a full-sum step (TFIM chain of 6, real RBM)
    with the Gram by `syrk` (threshold lowered to reach it at this size),
    against `-(S + lambda I)^{-1} F` from forward-mode derivatives, the dense
    Hamiltonian and NumPy."""
    monkeypatch.setattr(_sr, "GRAM_BLAS_MIN_WORK", 0)
    space, lattice = SpinHalf(6), Chain(6)
    system = Ising(space, lattice, h=0.7)
    rbm = RBM(space, alpha=1, param_dtype="float64", key=jax.random.PRNGKey(4))
    rbm = jax.tree.map(lambda a: 20.0 * a if eqx.is_inexact_array(a) else a, rbm)  # far from uniform
    sampler = FullSumSampler(space)
    estimator = FullSumEstimator(sampler=sampler)
    dist = nqs_core.BornDistribution(rbm)
    samples, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(0)))
    estimate = estimator(rbm, system, samples)
    sr = SR(diag_shift=0.01)

    @jax.jit
    def direction(model):
        context = StepContext(system, model, samples, estimate, estimator)
        return real_ravel(sr(context, None)[0])[0]

    assert jax.default_backend() != "cpu" or "callback" in str(jax.make_jaxpr(direction)(rbm))
    got = np.asarray(direction(rbm))

    # the reference: forward-mode derivatives, the dense Hamiltonian, NumPy
    params, static = nqs_core.parameters(rbm)
    vec, unravel = real_ravel(params)
    states = jnp.asarray(space.all_states())
    log_psi = lambda v: jax.vmap(eqx.combine(unravel(v), static))(states)  # noqa: E731
    o = np.asarray(jax.jacfwd(log_psi)(vec))
    psi = np.exp(np.asarray(log_psi(vec)))
    p = psi**2 / np.sum(psi**2)
    eloc = (to_dense(system) @ psi) / psi
    y = np.sqrt(p)[:, None] * (o - p @ o)
    eps = -2.0 * np.sqrt(p) * (eloc - p @ eloc)
    s = y.T @ y
    exact = -np.linalg.solve(s + 0.01 * np.eye(len(vec)), y.T @ eps)
    assert np.max(np.abs(exact)) > 0.1
    assert _relative(got, exact) < 1e-12
