"""The full-sum state: exact energy, gradient and quantum geometric tensor
against dense matrices, and exact VMC from TOML."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import FullSumEstimator, FullSumSampler, FullSumState, real_ravel
from nqs_core._fullsum import check_full_sum_memory, full_sum_memory
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
    dist = nqs_core.BornDistribution(rbm)
    samples, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(0)))
    estimate = estimator(rbm, system, samples)
    return space, system, rbm, sampler, estimator, samples, estimate


def test_energy_equals_the_dense_expectation(setup):
    space, system, rbm, sampler, estimator, samples, estimate = setup
    assert samples.x.shape == (1, space.n_states, space.size) and samples.exact
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
        nqs_core.run(cfg2, run_dir=tmp_path / name, progress=False, n_steps=5)
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



def test_the_energy_estimator_honours_the_full_sum_weights():
    """The full-sum sampler is an ordinary sampler: its samples carry the
    weights |psi|^2 / Z, which the plain energy estimator honours (the exact
    energy from a dense matrix, no Monte Carlo error) as the full_sum one does."""
    cfg = nqs_core.loads_config(EXACT_VMC)
    cfg["estimator"] = {"name": "energy"}
    driver = nqs_core.build(cfg, exact=False).driver
    assert type(driver.estimator) is nqs_core.EnergyEstimator
    state = driver.init(jax.random.PRNGKey(0))
    stats, _ = driver.evaluate(state)
    model = driver.model(state)
    space = driver.system.space
    psi = np.exp(np.asarray(jax.vmap(model)(jnp.asarray(space.all_states()))))
    e = np.vdot(psi, to_dense(driver.system) @ psi).real / np.vdot(psi, psi).real
    assert abs(float(stats.mean) - e) < 1e-10 and float(stats.error_of_mean) == 0.0
    # one step of the same exact gradient with either estimator
    cfg2 = nqs_core.loads_config(EXACT_VMC)
    other = nqs_core.build(cfg2, exact=False).driver
    assert type(other.estimator) is nqs_core.FullSumEstimator
    a, _ = driver.step(state)
    b, _ = other.step(other.init(jax.random.PRNGKey(0)))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-12)


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


# -- the memory guard (issue 15) ---------------------------------------------------


def test_full_sum_refuses_above_the_memory_limit():
    """4096 states pass max_states = 4096 but not a 1 MB limit: one line naming
    the states, the connected entries, the estimate and the limit; a 64-state
    full sum passes the same limit."""
    space = SpinHalf(12)
    system = Ising(space, Chain(12), h=0.7)
    need = full_sum_memory(space, system)
    # at least the connected configurations it materialises (13 x 12 numbers a state)
    assert need >= space.n_states * system.max_conn_size * space.size * 8
    expected = f"the full sum over 4096 states with 13 connected entries each would need about {need / 1e6:.3g} MB, more than the limit of 1 MB"
    with nqs_core.memory_limit(1e-3):
        with pytest.raises(nqs_core.MemoryLimitError) as info:
            FullSumSampler(space, max_states=4096, system=system)
        small, small_system, _ = _problem("tfim")
        FullSumSampler(small, system=small_system)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)
    with pytest.raises(nqs_core.MemoryLimitError, match="the full sum over 4096 states would need"):
        check_full_sum_memory(space, limit=1e5)  # the explicit limit argument
    # the estimator checks the local energies when the step is traced, with the
    # limit in effect when it was built
    sampler = FullSumSampler(space)
    with nqs_core.memory_limit(1e-3):
        estimator = FullSumEstimator(sampler=sampler)
    rbm = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(0))
    with pytest.raises(nqs_core.MemoryLimitError, match="13 connected entries each would need about"):
        jax.jit(lambda m, x: estimator(m, system, x).local_values)(rbm, sampler.full_sum.states[None])


@pytest.mark.parametrize("alpha", [1, 8])
def test_the_estimate_bounds_what_xla_allocates(alpha):
    """What XLA allocates for the compiled estimator and natural-gradient data
    (its memory analysis: arguments, outputs and temporaries; nothing is run)
    of 4096 states is at most `full_sum_memory`, and at least half of it."""
    space = SpinHalf(12)
    system = Ising(space, Chain(12), h=0.7)
    rbm = RBM(space, alpha=alpha, param_dtype="complex128", key=jax.random.PRNGKey(0))
    sampler = FullSumSampler(space)
    estimator = FullSumEstimator(sampler=sampler)
    samples = jax.ShapeDtypeStruct((1,) + sampler.full_sum.states.shape, sampler.full_sum.states.dtype)

    def compiled_bytes(fn):
        stats = jax.jit(fn).lower(rbm, samples).compile().memory_analysis()
        return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes

    energy = compiled_bytes(lambda m, x: estimator(m, system, x).local_values)
    bound = full_sum_memory(space, system, listing=False)
    assert 0.5 * bound <= energy <= bound, (energy, bound)
    data = compiled_bytes(lambda m, x: estimator.natural_gradient_data(m, x, estimator(m, system, x)))
    bound = full_sum_memory(space, system, rbm, listing=False, log_derivatives=True)
    assert 0.5 * bound <= data <= bound, (data, bound)


def test_natural_gradient_data_are_counted_only_when_used(tmp_path):
    """A 1 MB limit passes the 64 states and their local energies but not
    SRt's 64 x 1356 log-derivative matrices (4.4 MB) nor dense SR's 1356 x
    1356 matrix (34 MB): both are refused when the driver is built
    (`memory_estimate` of the sampler's 64 rows, as for any sampler), before
    any step is taken. The plain gradient runs."""
    cfg = nqs_core.loads_config(EXACT_VMC)
    cfg["ansatz"] = {"name": "rbm", "alpha": 16, "param_dtype": "complex128"}
    cfg["run"]["max_memory_gb"] = 1e-3
    with pytest.raises(nqs_core.ConfigError, match=r"one SR step \(64 samples x 1356 real parameters\) would need about 33\.6 MB, more than the limit of 1 MB"):
        nqs_core.run(cfg, run_dir=tmp_path / "sr", progress=False, n_steps=1)
    assert not (tmp_path / "sr").exists()
    cfg["preconditioner"] = {"name": "srt", "diag_shift": 1e-3}
    with pytest.raises(nqs_core.ConfigError, match=r"one SRt step \(64 samples x 1356 real parameters\) would need about 4\.43 MB, more than the limit of 1 MB"):
        nqs_core.run(cfg, run_dir=tmp_path / "srt", progress=False, n_steps=1)
    assert not (tmp_path / "srt").exists()  # nothing left behind, no step-0 checkpoint either
    cfg["preconditioner"] = {"name": "identity"}
    nqs_core.run(cfg, run_dir=tmp_path / "identity", progress=False, n_steps=1)
    assert len(nqs_core.read_log(tmp_path / "identity")) == 1


def test_nqs_run_refuses_a_full_sum_above_max_memory_gb(tmp_path):
    from typer.testing import CliRunner

    from nqs_cli import app

    config = tmp_path / "exact.toml"
    config.write_text(EXACT_VMC)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(config), "-q", "-o", str(out), "--set", "run.max_memory_gb=1e-5"])
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "[sampler] full_sum: the full sum over 64 states with 7 connected entries each would need about" in lines[0]
    assert "more than the limit of 10 kB" in lines[0] and "Traceback" not in r.output
    assert not out.exists()


# -- local values by look-up in the enumeration (issue 27) ---------------------------


class _FlipFirst(nqs_core.AbstractDiscreteHamiltonian):
    """`sigma^x_0 + 0.3 sigma^z_1`: on a space with fixed S^z its flipped
    configuration is outside the space (a look-up cannot find it)."""

    space: SpinHalf

    @property
    def max_conn_size(self):
        return 2

    def connected(self, x):
        return jnp.stack([x, x.at[0].multiply(-1.0)]), jnp.stack([0.3 * x[1], jnp.ones((), x.dtype)])


def _explicit(op, rbm, states):
    """`sum_x' <x|O|x'> psi(x') / psi(x)` row by row, evaluating the network on every x'."""
    out = []
    for x in np.asarray(states):
        xps, mels = op.connected(jnp.asarray(x))
        lx = complex(rbm(jnp.asarray(x)))
        out.append(sum(complex(m) * np.exp(complex(rbm(xp)) - lx) for xp, m in zip(xps, mels) if m != 0))
    return np.array(out)


@pytest.mark.parametrize("total_sz", [None, 0.0])
def test_look_up_local_values_equal_an_explicit_sum(total_sz):
    """Look-ups (full space) and the fallback (an operator leaving the S^z = 0
    sector) give the local values of an explicit row-by-row sum; the cached
    table of the sampler's system is not used for another system."""
    from nqs_core._fullsum import full_sum_local_energies

    space = SpinHalf(4, total_sz=total_sz)
    rbm = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(2))
    states = jnp.asarray(space.all_states())
    lx = jax.vmap(rbm)(states)
    op = _FlipFirst(space)
    got = jax.jit(lambda m, x, l: full_sum_local_energies(op, m, x, l))(rbm, states, lx)
    np.testing.assert_allclose(np.asarray(got), _explicit(op, rbm, states), rtol=0, atol=1e-12)
    (table,) = FullSumState(space).lookup_tables([op])
    assert (table is None) == (total_sz is not None)  # outside the sector: evaluated, not looked up
    s = nqs_core.expect(rbm, op, FullSumState(space))
    p = np.exp(2 * np.real(np.asarray(lx)))
    assert abs(complex(s.mean) - np.sum(p * _explicit(op, rbm, states)) / p.sum()) < 1e-12
    # an estimator whose sampler knows Ising(h = 0.7) keeps its table; called with
    # h = 1.3 (same structure, other numbers) it must not use it
    lattice = Chain(4)
    ising = Ising(space, lattice, h=0.7) if total_sz is None else Heisenberg(space, lattice)
    other = Ising(space, lattice, h=1.3) if total_sz is None else Heisenberg(space, lattice, J=0.4)
    sampler = FullSumSampler(space, system=ising)
    estimator = FullSumEstimator(sampler=sampler)
    assert estimator.table is not None
    samples = sampler.full_sum.states[None]
    for system in (ising, other):
        h = to_dense(system)
        psi = np.exp(np.asarray(lx))
        e = np.vdot(psi, h @ psi).real / np.vdot(psi, psi).real
        got = jax.jit(lambda m, sy, x: estimator(m, sy, x).stats.mean)(rbm, system, samples)
        assert abs(float(got) - e) < 1e-12, (system, float(got), e)
