"""SRt (sample space) equals SR (parameter space); MinSR; no silent NaNs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import EnergyEstimator, StepContext, apply_overrides, build, real_ravel
from nqs_networks import RBM
from nqs_optim import SR, MinSR, SRt, real_sample_matrix, solve_sr, solve_srt
from nqs_spins import Chain, Ising, SpinHalf


def assert_same_update(a, b, tol=1e-10):
    """Two update vectors agree: ||a - b|| <= tol ||b||."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b), np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("shape", [(40, 300), (300, 40)], ids=["P>n", "P<n"])
def test_push_through_identity_random(key, shape):
    n, p = shape
    # scaled like the centred log-derivatives Y = (O - <O>) / sqrt(M)
    x = jax.random.normal(key, (n, p)) / np.sqrt(n)
    f = jax.random.normal(jax.random.fold_in(key, 1), (n,))
    u, sv, vt = np.linalg.svd(np.asarray(x), full_matrices=False)
    for lam in (1e-4, 1e-3, 1.0):
        d_sr, ok = solve_sr(x, x.T @ f, lam)
        d_srt, fb = solve_srt(x, f, lam)
        assert int(ok) == 1 and int(fb) == 0
        assert_same_update(d_srt, d_sr)
        reference = vt.T @ (sv / (sv**2 + lam) * (u.T @ np.asarray(f)))  # stable closed form
        assert_same_update(d_srt, reference)
        assert_same_update(d_sr, reference)


def _problem(dtype, alpha, n_sites, m, seed=0):
    space = SpinHalf(n_sites=n_sites)
    system = Ising(space=space, lattice=Chain(n_sites), h=0.9)
    model = RBM(space, alpha=alpha, param_dtype=dtype, init_std=0.2, key=jax.random.PRNGKey(seed))
    samples = space.random_state(jax.random.PRNGKey(seed + 1), m).reshape(4, m // 4, n_sites)
    est = EnergyEstimator(chunk_size=16)
    return model, system, samples, est, est(model, system, samples)


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize("alpha, n_sites, m", [(4, 8, 64), (1, 6, 256)], ids=["P>M", "P<M"])
def test_srt_equals_sr_on_vmc_data(dtype, alpha, n_sites, m):
    model, system, samples, est, estimate = _problem(dtype, alpha, n_sites, m)
    p = nqs_core.n_real_parameters(model)
    assert (p > m) == (alpha == 4)
    d_sr, _, _ = SR(diag_shift=1e-3)(StepContext(system, model, samples, estimate, est), None)
    d_srt, _, info = SRt(diag_shift=1e-3)(StepContext(system, model, samples, estimate, est), None)
    assert int(info["solver_fallback"]) == 0
    a, _ = real_ravel(d_sr)
    b, _ = real_ravel(d_srt)
    assert_same_update(b, a)


def test_real_wave_function_uses_m_by_m():
    model, system, samples, est, estimate = _problem("float64", 1, 6, 64)
    y, eps = est.natural_gradient_data(model, samples, estimate)
    x, f = real_sample_matrix(y, eps)
    assert x.shape[0] == 64 and f.shape == (64,)
    model, system, samples, est, estimate = _problem("complex128", 1, 6, 64)
    x, f = real_sample_matrix(*est.natural_gradient_data(model, samples, estimate))
    assert x.shape[0] == 128


def test_same_trajectory_over_five_steps(small_config):
    runs = {}
    for name in ("sr", "srt"):
        cfg = apply_overrides(small_config, [f"preconditioner.name={name}", "preconditioner.diag_shift=0.001"])
        driver = build(cfg, exact=False).driver
        state = driver.init(jax.random.PRNGKey(4))
        energies = []
        for _ in range(5):
            state, rec = driver.step(state)
            energies.append(rec["energy"])
        runs[name] = (state, energies)
    np.testing.assert_allclose(runs["srt"][1], runs["sr"][1], rtol=1e-10)
    for a, b in zip(jax.tree.leaves(runs["srt"][0].params), jax.tree.leaves(runs["sr"][0].params)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_singular_system_falls_back_instead_of_nan(key):
    x = jax.random.normal(key, (20, 5))
    x = jnp.concatenate([x, x], axis=0)  # rank 5 sample matrix: X X^T singular
    f = jax.random.normal(jax.random.fold_in(key, 2), (40,))
    delta, fallback = jax.jit(solve_srt)(x, f, 0.0)
    assert bool(jnp.all(jnp.isfinite(delta)))
    # the pseudo-inverse solution is the least-squares minimum-norm one
    expected = np.linalg.pinv(np.asarray(x)) @ np.asarray(f)
    np.testing.assert_allclose(delta, expected, rtol=1e-8, atol=1e-10)
    assert int(fallback) in (0, 1)


def test_minsr_is_minimum_norm_solution():
    model, system, samples, est, estimate = _problem("complex128", 4, 8, 64)
    d, _, info = MinSR(rcond=1e-12)(StepContext(system, model, samples, estimate, est), None)
    y, eps = est.natural_gradient_data(model, samples, estimate)
    x, f = real_sample_matrix(y, eps)
    expected = -np.linalg.pinv(np.asarray(x), rcond=1e-6) @ np.asarray(f)
    got, _ = real_ravel(d)
    # x has rank <= 2M-2 (centred rows): compare within the kept subspace
    np.testing.assert_allclose(np.asarray(x) @ np.asarray(got), np.asarray(x) @ expected, rtol=1e-6, atol=1e-8)
    assert int(info["n_kept"]) <= x.shape[0]
    # a larger cut-off keeps fewer directions and gives a shorter step
    d2, _, info2 = MinSR(rcond=1e-2)(StepContext(system, model, samples, estimate, est), None)
    assert int(info2["n_kept"]) < int(info["n_kept"])
    assert float(jnp.linalg.norm(real_ravel(d2)[0])) < float(jnp.linalg.norm(got))
