"""DGD: the Hyvarinen-score metric G_VMC against a direct dense computation."""

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import nqs_continuum as nc
import nqs_core
from nqs_core import EnergyEstimator, build, real_ravel
from nqs_optim import DGD


@pytest.fixture(scope="module")
def problem():
    space = nc.Particles1D(2)
    system = nc.TrappedFermions1D(space, -5.0, 0.5)
    ansatz = nc.EquivariantSlater(space, hidden=3, n_layers=1, key=jax.random.PRNGKey(3))
    return space, system, ansatz


def test_dgd_equals_dense_metric(problem):
    space, system, ansatz = problem
    samples = 0.8 * jax.random.normal(jax.random.PRNGKey(0), (2, 16, 2))
    est = EnergyEstimator()(ansatz, system, samples)
    lam = 1e-3
    direction, _, info = eqx.filter_jit(
        lambda a, s, e: DGD(diag_shift=lam)(nqs_core.StepContext(system, a, s, e, EnergyEstimator()), None)
    )(ansatz, samples, est)
    assert int(info["solve_ok"]) == 1
    params, static = nqs_core.parameters(ansatz)
    vec, unravel = real_ravel(params)

    def ln_p(v, x):  # ln |psi|^2
        return 2.0 * eqx.combine(unravel(v), static)(x)

    # d_theta d_x ln p by forward-over-reverse (the preconditioner uses reverse-over-reverse)
    jac = jax.jit(jax.vmap(lambda x: jax.jacfwd(lambda v: jax.grad(ln_p, argnums=1)(v, x))(vec)))(samples.reshape(-1, 2))
    jac = np.asarray(jac)  # (M, D, P)
    g_vmc = 0.25 * np.einsum("mki,mkj->ij", jac, jac) / jac.shape[0]
    grad = np.asarray(real_ravel(EnergyEstimator().gradient(ansatz, samples, est))[0])
    expected = np.linalg.solve(g_vmc + lam * np.eye(g_vmc.shape[0]), grad)
    np.testing.assert_allclose(np.asarray(real_ravel(direction)[0]), expected, rtol=1e-7, atol=1e-10)


def test_dgd_refuses_discrete_spaces(small_config):
    """A spin system is refused when the config is built (`check_system`), and, for
    a driver made directly, by the step itself (the system comes with the StepContext)."""
    cfg = dict(small_config)
    cfg["preconditioner"] = {"name": "dgd"}
    with pytest.raises(nqs_core.ConfigError, match=r"\[preconditioner\] dgd: DGD needs a continuum system .* SpinHalf is discrete"):
        build(cfg, exact=False)
    cfg["preconditioner"] = {"name": "identity"}
    calc = build(cfg, exact=False)
    driver = nqs_core.VMC(calc["system"], calc["ansatz"], calc["sampler"], optax.sgd(0.01), DGD())
    state = driver.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="continuum"):
        driver.step(state)


def test_dgd_inside_vmc(problem):
    space, system, ansatz = problem
    sampler = nc.GaussianMetropolis(space, n_samples=128, n_chains=8)
    driver = nqs_core.VMC(system, ansatz, sampler, optax.sgd(0.02), DGD(diag_shift=1e-3))
    state = driver.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, rec = driver.step(state)
        assert np.isfinite(rec["energy"]) and np.isfinite(rec["direction_norm"])
