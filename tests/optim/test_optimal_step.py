"""OptimalStep: alpha*, mu* are the minimum of the quadratic model of Drissi et al. 2024."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

import nqs_core
from nqs_core import build, log_derivatives, real_ravel
from nqs_optim import SR, OptimalStep, optimal_coefficients


def test_coefficients_minimise_quadratic_model():
    rng = np.random.default_rng(0)
    p = 6
    m = rng.normal(size=(p, p))
    fisher = m @ m.T + 0.1 * np.eye(p)
    g, step, prev = rng.normal(size=(3, p))
    f2 = np.array([[step @ fisher @ step, step @ fisher @ prev], [prev @ fisher @ step, prev @ fisher @ prev]])
    b = np.array([g @ step, g @ prev])
    coeffs, ok = optimal_coefficients(jnp.asarray(f2), jnp.asarray(b), 0.0)

    def model(c):
        x = c[0] * step + c[1] * prev
        return 0.5 * x @ fisher @ x + g @ x

    direct = scipy.optimize.minimize(model, np.zeros(2), method="BFGS", options={"gtol": 1e-12}).x
    assert int(ok) == 1
    np.testing.assert_allclose(np.asarray(coeffs), direct, rtol=1e-6, atol=1e-9)
    # first step: no previous update -> mu* = 0, alpha* = 1D line minimum
    f1 = f2.copy()
    f1[1, :] = f1[:, 1] = 0.0
    c1, _ = optimal_coefficients(jnp.asarray(f1), jnp.asarray([b[0], 0.0]), 0.0)
    assert float(c1[1]) == 0.0
    assert float(c1[0]) == np.float64(-b[0] / f2[0, 0]).item() or abs(float(c1[0]) + b[0] / f2[0, 0]) < 1e-10


def test_preconditioner_matches_dense_fisher(small_config):
    """alpha*, mu* from OptimalStep (Fisher products by jvp) equal the dense
    computation with the log-derivative matrix, over two steps (mu* != 0)."""
    cfg = dict(small_config)
    cfg["preconditioner"] = {"name": "optimal_step", "inner": {"name": "sr", "diag_shift": 0.01}}
    calc = build(cfg)
    driver = calc.driver
    precond = driver.preconditioner
    assert isinstance(precond, OptimalStep) and isinstance(precond.inner, SR)
    state = driver.init(jax.random.PRNGKey(0))
    model = driver.model(state)
    pstate = state.precond_state
    samples, _, _ = eqx.filter_jit(driver.sampler.sample)(nqs_core.BornDistribution(model), state.sampler_state)
    est = eqx.filter_jit(driver.estimator)(model, driver.system, samples)
    prev = jnp.asarray(np.random.default_rng(1).normal(size=pstate[1].shape))
    pstate = (pstate[0], prev, pstate[2])
    # jitted, as inside the VMC step (op-by-op dispatch is slow)
    call = eqx.filter_jit(lambda p, m, s, e, st: p(nqs_core.StepContext(driver.system, m, s, e, driver.estimator), st))
    direction, (_, update, _), info = call(precond, model, samples, est, pstate)
    # dense reference
    xs = samples.reshape(-1, samples.shape[-1])
    o = np.asarray(log_derivatives(model, xs))
    oc = o - o.mean(axis=0)
    fisher = 4.0 * np.real(oc.conj().T @ oc) / xs.shape[0]
    d_inner, _, _ = call(precond.inner, model, samples, est, None)
    step = -np.asarray(real_ravel(d_inner)[0])
    g = np.asarray(real_ravel(driver.estimator.gradient(model, samples, est))[0])
    prev = np.asarray(prev)
    f2 = np.array([[step @ fisher @ step, step @ fisher @ prev], [prev @ fisher @ step, prev @ fisher @ prev]])
    alpha, mu = -np.linalg.solve(f2, [g @ step, g @ prev])
    np.testing.assert_allclose([float(info["alpha"]), float(info["mu"])], [alpha, mu], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(update), alpha * step + mu * prev, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(-np.asarray(real_ravel(direction)[0]), np.asarray(update), rtol=1e-12)


def test_runs_inside_vmc_with_trust_region(small_config):
    cfg = dict(small_config)
    cfg["preconditioner"] = {"name": "optimal_step", "trust_radius": 0.2, "inner": {"name": "sr", "diag_shift": 0.01}}
    cfg["optimizer"] = {"name": "sgd", "learning_rate": 1.0}
    driver = build(cfg).driver
    state = driver.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, rec = driver.step(state)
        assert np.isfinite(rec["energy"]) and np.isfinite(rec["alpha"]) and np.isfinite(rec["mu"])
    assert all(np.all(np.isfinite(np.asarray(p))) for p in jax.tree.leaves(state.params))


def test_energy_subspace_model_gradient_and_hessian():
    """`curvature="energy"`: b is the gradient of the reweighted sampled energy,
    `grad E . d + <d_d E_L>` (the second term is zero only in expectation), and H
    its Hessian in the plane (checked against central differences of that energy)."""

    from nqs_core import EnergyEstimator
    from nqs_optim._optimal_step import energy_subspace_model

    import nqs_continuum as nc

    space = nc.Particles1D(2)
    system = nc.TrappedFermions1D(space, -5.0, 0.5)
    ansatz = nc.EquivariantSlater(space, hidden=2, n_layers=0, init="random", key=jax.random.PRNGKey(0))
    samples = jax.random.normal(jax.random.PRNGKey(1), (1, 16, 2))
    xs = samples[0]
    params, static = nqs_core.parameters(ansatz)
    vec, unravel = real_ravel(params)
    d1, d2 = jax.random.normal(jax.random.PRNGKey(2), (2, vec.size)) / np.sqrt(vec.size)
    b, h = jax.jit(lambda: energy_subspace_model(system, ansatz, xs, [d1, d2]))()
    est = EnergyEstimator()(ansatz, system, samples)
    g, _ = real_ravel(EnergyEstimator().gradient(ansatz, samples, est))

    def eloc_mean(v):
        model = eqx.combine(unravel(v), static)
        return jnp.mean(jax.vmap(lambda x: system.local_energy(model, x))(xs))

    dmean = [jax.jvp(eloc_mean, (vec,), (d,))[1] for d in (d1, d2)]
    np.testing.assert_allclose(np.asarray(b), [float(g @ d1 + dmean[0]), float(g @ d2 + dmean[1])], rtol=1e-9)

    log0 = jax.vmap(ansatz)(xs)

    @jax.jit
    def energy(x):
        model = eqx.combine(unravel(vec + x[0] * d1 + x[1] * d2), static)
        w = jnp.exp(2.0 * (jax.vmap(model)(xs) - log0))
        return jnp.sum(w * jax.vmap(lambda c: system.local_energy(model, c))(xs)) / jnp.sum(w)

    def fd(eps):  # central differences, O(eps^2)
        e = np.eye(2) * eps
        return np.array([[float(energy(e[i] + e[j]) - energy(e[i] - e[j]) - energy(-e[i] + e[j]) + energy(-e[i] - e[j]))
                          / (4 * eps * eps) for j in range(2)] for i in range(2)])

    fd = (4.0 * fd(1e-3) - fd(2e-3)) / 3.0  # Richardson: O(eps^4)
    np.testing.assert_allclose(np.asarray(h), fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max())
