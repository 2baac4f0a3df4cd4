"""The full-sum state: exact energy, gradient and quantum geometric tensor
against dense matrices, and exact VMC from TOML."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import FullSumEstimator, FullSumSampler, FullSumState, real_ravel
from nqs_networks import RBM
from nqs_spins import Chain, Heisenberg, Ising, SpinHalf, to_dense


def _problem(name):
    lattice = Chain(6)
    if name == "tfim":
        space = SpinHalf(6)
        system = Ising(space, lattice, h=0.7)
    else:
        space = SpinHalf(6, total_sz=0.0)
        system = Heisenberg(space, lattice)
    rbm = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(4))
    # larger weights than at initialisation: far from the uniform state
    rbm = jax.tree.map(lambda a: 4.0 * a if jnp.iscomplexobj(a) else a, rbm)
    return space, system, rbm


def _dense_energy(system, unravel, static):
    """`<psi|H|psi> / <psi|psi>` from the dense matrix, differentiable in the parameters."""
    h = jnp.asarray(to_dense(system))
    states = jnp.asarray(system.space.all_states())

    def energy(v):
        psi = jnp.exp(jax.vmap(eqx.combine(unravel(v), static))(states))
        h_psi = h.astype(psi.dtype) @ psi
        return jnp.real(jnp.vdot(psi, h_psi) / jnp.vdot(psi, psi))

    return energy


@pytest.fixture(scope="module", params=["tfim", "heisenberg_sz0"])
def setup(request):
    space, system, rbm = _problem(request.param)
    sampler = FullSumSampler(space)
    estimator = FullSumEstimator(sampler=sampler)
    samples, _, _ = sampler.sample(None, sampler.init(None, jax.random.PRNGKey(0)))
    estimate = estimator(rbm, system, samples)
    return space, system, rbm, sampler, estimator, samples, estimate


def test_energy_equals_the_dense_expectation(setup):
    space, system, rbm, sampler, estimator, samples, estimate = setup
    assert samples.shape == (1, space.n_states, space.size)
    h = to_dense(system)
    psi = np.exp(np.asarray(jax.vmap(rbm)(jnp.asarray(space.all_states()))))
    norm = np.vdot(psi, psi).real
    e = np.vdot(psi, h @ psi) / norm
    var = np.vdot(h @ psi, h @ psi).real / norm - e.real**2
    stats = estimate.stats
    assert abs(complex(stats.mean) - e) < 1e-10
    assert abs(float(stats.variance) - var) < 1e-10 and var > 0.01  # not an eigenstate
    assert float(stats.error_of_mean) == 0.0 and float(stats.tau_corr) == 0.0 and float(stats.R_hat) == 1.0
    # the same value through nqs_core.expect on a FullSumState, chunked
    s = nqs_core.expect(rbm, system, FullSumState(space), chunk_size=7)
    assert abs(complex(s.mean) - e) < 1e-10 and float(s.error_of_mean) == 0.0


def test_gradient_equals_the_derivative_of_the_dense_energy(setup):
    space, system, rbm, sampler, estimator, samples, estimate = setup
    params, static = nqs_core.parameters(rbm)
    vec, unravel = real_ravel(params)
    exact = jax.grad(_dense_energy(system, unravel, static))(vec)
    got, _ = real_ravel(estimator.gradient(rbm, samples, estimate))
    assert float(jnp.max(jnp.abs(exact))) > 0.1
    np.testing.assert_allclose(np.asarray(got), np.asarray(exact), rtol=0, atol=1e-10)
    chunked = FullSumEstimator(chunk_size=5, sampler=sampler)
    got_c, _ = real_ravel(chunked.gradient(rbm, samples, chunked(rbm, system, samples)))
    np.testing.assert_allclose(np.asarray(got_c), np.asarray(exact), rtol=0, atol=1e-10)


def test_natural_gradient_data_give_the_exact_geometric_tensor(setup):
    """`S = Re[Y^H Y]` is the quantum geometric tensor of the normalised state
    and `F = Re[Y^T eps]` is minus the energy gradient."""
    space, system, rbm, sampler, estimator, samples, estimate = setup
    params, static = nqs_core.parameters(rbm)
    vec, unravel = real_ravel(params)
    states = jnp.asarray(space.all_states())

    def log_psi(v):
        return jax.vmap(eqx.combine(unravel(v), static))(states)

    lp = log_psi(vec)
    jr = jax.jacfwd(lambda v: jnp.real(log_psi(v)))(vec)
    ji = jax.jacfwd(lambda v: jnp.imag(log_psi(v)))(vec)
    o = np.asarray(jr) + 1j * np.asarray(ji)  # d log psi / d theta_k
    p = np.exp(2 * np.real(np.asarray(lp)))
    p /= p.sum()
    oc = o - p @ o
    s_exact = np.real(oc.conj().T @ (p[:, None] * oc))
    y, eps = estimator.natural_gradient_data(rbm, samples, estimate)
    np.testing.assert_allclose(np.real(np.conj(y).T @ y), s_exact, rtol=0, atol=1e-10)
    grad, _ = real_ravel(estimator.gradient(rbm, samples, estimate))
    np.testing.assert_allclose(np.real(y.T @ eps), -np.asarray(grad), rtol=0, atol=1e-10)


EXACT_VMC = """
[run]
n_steps = 150
seed = 2
n_eval_batches = 1

[lattice]
name = "chain"
length = 6

[space]
name = "spin_half"

[system]
name = "ising"
h = 0.8

[ansatz]
name = "rbm"
alpha = 2
param_dtype = "complex128"

[sampler]
name = "full_sum"

[preconditioner]
name = "sr"
diag_shift = 0.001

[optimizer]
name = "sgd"
learning_rate = 0.05
"""


def test_vmc_with_the_full_sum_reaches_the_ground_state(tmp_path):
    cfg = nqs_core.loads_config(EXACT_VMC)
    result = nqs_core.run(cfg, run_dir=tmp_path / "exact", progress=False)
    assert result.calculation.config["estimator"]["name"] == "full_sum"  # the default with this sampler
    assert float(result.energy.error_of_mean) == 0.0
    assert result.relative_error < 1e-4, result.relative_error
    log = nqs_core.read_log(tmp_path / "exact")
    assert log[-1]["energy"] < log[0]["energy"] and all(r["energy_error"] == 0.0 for r in log)
    # SRt and plain gradients run on the same exact data
    for name, extra in (("srt", {"diag_shift": 0.001}), ("identity", {})):
        cfg2 = nqs_core.loads_config(EXACT_VMC)
        cfg2["preconditioner"] = {"name": name, **extra}
        r = nqs_core.run(cfg2, run_dir=tmp_path / name, progress=False, n_steps=5)
        log = nqs_core.read_log(tmp_path / name)
        assert log[-1]["energy"] < log[0]["energy"], name


def test_full_sum_refuses_what_it_cannot_enumerate():
    with pytest.raises(ValueError, match=r"16777216 states, more than max_states = 1048576"):
        FullSumSampler(SpinHalf(24))
    with pytest.raises(ValueError, match=r"4096 states, more than max_states = 100"):
        FullSumState(SpinHalf(12), max_states=100)
    cfg = nqs_core.loads_config(EXACT_VMC)
    cfg["sampler"]["max_states"] = 10
    with pytest.raises(nqs_core.ConfigError, match="64 states, more than max_states = 10"):
        nqs_core.build(cfg)
    # the full-sum estimator refuses Monte Carlo samples, and the full-sum sampler other estimators
    cfg = nqs_core.loads_config(EXACT_VMC)
    cfg["sampler"] = {"name": "metropolis_local", "n_samples": 64}
    cfg["estimator"] = {"name": "full_sum"}
    with pytest.raises(nqs_core.ConfigError, match="needs the full_sum sampler"):
        nqs_core.build(cfg)
    cfg = nqs_core.loads_config(EXACT_VMC)
    cfg["estimator"] = {"name": "energy"}
    with pytest.raises(nqs_core.ConfigError, match="full_sum estimator"):
        nqs_core.build(cfg)


def test_driver_evaluate_is_the_exact_sum():
    """`VMC.evaluate` with the full-sum sampler weighs the states by |psi|^2 (an
    equal-weight mean of the local energies would be wrong), as nqs_core.expect."""
    calc = nqs_core.build(nqs_core.loads_config(EXACT_VMC))
    driver = calc.driver
    state = driver.init(jax.random.PRNGKey(0))
    stats, _ = driver.evaluate(state, n_batches=3)
    model = driver.model(state)
    space = driver.system.space
    psi = np.exp(np.asarray(jax.vmap(model)(jnp.asarray(space.all_states()))))
    h = to_dense(driver.system)
    e = np.vdot(psi, h @ psi).real / np.vdot(psi, psi).real
    assert abs(float(np.real(stats.mean)) - e) < 1e-10 and float(stats.error_of_mean) == 0.0
