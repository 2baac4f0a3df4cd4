"""The variational state (`nqs_core.VariationalState`, `load_state`): against
`nqs measure` on the same run, against references built here with Kronecker
products and the ansatz evaluated on every state, in a Marshall-rotated basis."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import ConfigError, FullSumSampler, MemoryLimitError, VariationalState, load_state
from nqs_core.operators import Operator, sx, sy, sz
from nqs_spins import Chain, Heisenberg, SpinHalf

L = 6

RUN = {
    "run": {"n_steps": 10, "seed": 2, "checkpoint_every": 10, "n_eval_batches": 0, "exact_energy": "none",
            "exact_check": "off"},
    "lattice": {"name": "chain", "length": L},
    "space": {"name": "spin_half"},
    "system": {"name": "heisenberg", "marshall_sign": True},
    "ansatz": {"name": "rbm", "alpha": 1},
    "sampler": {"name": "metropolis_local", "n_samples": 256, "n_chains": 8},
    "optimizer": {"name": "sgd", "learning_rate": 0.05},
    "observables": {"ss01": {"name": "operator", "op": "SxSx + SySy + SzSz", "sites": [[0, 1]]}},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("state") / "run"
    nqs_core.run(RUN, run_dir=path, progress=False)
    return path


# -- references, built without the code under test ----------------------------------

PAULI = {"x": np.array([[0, 1], [1, 0]], complex), "y": np.array([[0, -1j], [1j, 0]]), "z": np.diag([1.0, -1.0]).astype(complex)}


def spin(site: int, a: str) -> np.ndarray:
    """`S^a` on `site` of the L-site chain, Kronecker products (site 0 the leftmost factor, up first)."""
    out = np.ones((1, 1), complex)
    for i in range(L):
        out = np.kron(out, PAULI[a] / 2 if i == site else np.eye(2))
    return out


def s_dot_s(i: int, j: int) -> np.ndarray:
    return sum(spin(i, a) @ spin(j, a) for a in "xyz")


def total_s2() -> np.ndarray:
    return sum(m @ m for m in (sum(spin(i, a) for i in range(L)) for a in "xyz"))


def op_s_dot_s(i: int, j: int) -> Operator:
    return sx(i) * sx(j) + sy(i) * sy(j) + sz(i) * sz(j)


def kron_index(states: np.ndarray) -> np.ndarray:
    """Row of the Kronecker basis of each configuration (up = +1 is basis state 0, site 0 most significant)."""
    return (np.asarray(states) < 0).astype(int) @ (2 ** np.arange(L - 1, -1, -1))


def reference_psi(run_dir):
    """The physical-basis ground-state candidate of the run, in Kronecker order: the
    RBM with the checkpoint's parameters (read by load_parameters) on every state,
    times the Marshall sign (-1)^(down spins on the odd sites) computed here."""
    calc = nqs_core.build(nqs_core.load_config(run_dir / "config.toml"))
    ansatz = calc["ansatz"]
    params, static = eqx.partition(ansatz, eqx.is_inexact_array)
    model = eqx.combine(nqs_core.load_parameters(run_dir, params), static)
    states = np.array([[1.0 - 2.0 * ((k >> (L - 1 - i)) & 1) for i in range(L)] for k in range(2**L)])
    log_psi = np.asarray(jax.jit(jax.vmap(model))(jnp.asarray(states)), dtype=complex)
    sign = (-1.0) ** np.sum(states[:, 1::2] < 0, axis=1)
    psi = sign * np.exp(log_psi - log_psi.real.max())
    assert np.all(kron_index(states) == np.arange(2**L))
    return psi / np.linalg.norm(psi)


def braket(psi: np.ndarray, m: np.ndarray) -> float:
    return float(np.real(np.vdot(psi, m @ psi)))


# -- tests ------------------------------------------------------------------------------


def test_expect_equals_nqs_measure_on_the_same_run(run_dir):
    """`load_state(run, seed=s).expect(op)` draws the samples `nqs measure --seed s`
    draws (fresh chains from PRNGKey(s), one sampler call) and evaluates the same
    local values: equal to the last bit."""
    values, _, exact = nqs_core.measure_run(run_dir, seed=5)
    assert not exact
    state = load_state(run_dir, seed=5)
    assert state.step == 10 and set(state.observables) == {"ss01"}
    # by name, as an Operator in the physical basis (rotated by the state), the energy: one pass
    got = state.expect({"name": "ss01", "operator": op_s_dot_s(0, 1), "energy": state.system})
    for got, want in ((got["name"], values["ss01"]), (got["operator"], values["ss01"]), (got["energy"], values["energy"])):
        for field in ("mean", "error_of_mean", "tau_corr", "R_hat"):
            assert np.asarray(getattr(got, field)) == np.asarray(getattr(want, field)), field
    # more samples from the same chains: sampler calls continued, cut to ceil(300 / 8) per chain
    x = state.sample(n_samples=300)
    assert x.shape == (8, 38, L) and state.samples is x
    assert np.all(np.abs(np.asarray(x)) == 1.0)
    # another sample size, as nqs measure --n-samples: the run's sampler with that n_samples
    assert load_state(run_dir, n_samples=512).sampler.n_samples == 512


def test_marshall_run_measures_the_unrotated_operators(run_dir):
    """The run's Hamiltonian is Marshall-rotated; S_i.S_j and the total S^2
    written in the physical basis come out as the Kronecker expectation values
    in the physical ground state, exactly (full sum) and within the error bars
    (samples); to_array() is the physical-basis vector."""
    psi = reference_psi(run_dir)
    state = load_state(run_dir, seed=3)
    got = np.zeros(2**L, complex)
    got[kron_index(np.asarray(state.space.all_states()))] = state.to_array()  # to_array: in the order of all_states()
    assert abs(np.vdot(psi, got)) == pytest.approx(1.0, abs=1e-12)  # same ray
    np.testing.assert_allclose(got * np.vdot(got, psi), psi, rtol=0, atol=1e-12)  # same vector
    cases = {"01": (op_s_dot_s(0, 1), s_dot_s(0, 1)), "02": (op_s_dot_s(0, 2), s_dot_s(0, 2)),
             "03": (op_s_dot_s(0, 3), s_dot_s(0, 3)),
             "S2": (Operator.sum(op_s_dot_s(i, j) for i in range(L) for j in range(L)), total_s2())}
    h_matrix = sum(s_dot_s(i, (i + 1) % L) for i in range(L))
    # a bound operator and an unrotated system are rotated too; the run's own system is not
    more = {"bound": (op_s_dot_s(0, 1).on(state.space), s_dot_s(0, 1)), "h": (Heisenberg(state.space, Chain(L)), h_matrix),
            "own": (state.system, h_matrix)}
    exact = state.expect_exact({name: op for name, (op, _) in {**cases, **more}.items()})  # one pass for all
    for name, (_, matrix) in more.items():
        assert float(np.real(exact[name].mean)) == pytest.approx(braket(psi, matrix), abs=1e-10), name
    sampled = state.expect({name: op for name, (op, _) in cases.items()})
    for name, (op, matrix) in cases.items():
        want = braket(psi, matrix)
        assert float(np.real(exact[name].mean)) == pytest.approx(want, abs=1e-10), name
        mc = sampled[name]
        assert abs(float(np.real(mc.mean)) - want) <= 5 * float(mc.error_of_mean) + 1e-12, (name, mc, want)
    # the rotation matters: in the network's (rotated) amplitudes the nearest-neighbour exchange is far off
    marshall = (-1.0) ** np.sum(np.array([[(k >> (L - 1 - i)) & 1 for i in range(L)] for k in range(2**L)])[:, 1::2], axis=1)
    assert abs(braket(marshall * psi, s_dot_s(0, 1)) - braket(psi, s_dot_s(0, 1))) > 0.2
    # log_value: the physical amplitude (sign of the Marshall rotation included)
    x = jnp.asarray([[1.0, -1, 1, -1, 1, -1], [1.0, 1, -1, -1, 1, -1]])
    log_value = np.asarray(state.log_value(x))
    ratio = np.exp(log_value - log_value[0])
    rows = kron_index(np.asarray(x))
    np.testing.assert_allclose(ratio, psi[rows] / psi[rows[0]], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.log_value(x, basis="rotated")), np.asarray(jax.jit(jax.vmap(state.model))(x)))


def test_save_and_load_round_trip(run_dir, tmp_path):
    state = load_state(run_dir)
    out = state.save(tmp_path / "saved")
    again = load_state(out)
    for a, b in zip(jax.tree.leaves(state.parameters), jax.tree.leaves(again.parameters)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert again.step == state.step and set(again.observables) == {"ss01"}
    e = again.expect_exact(again.system)
    assert e.mean == state.expect_exact(state.system).mean
    # nqs measure reads it too
    values, _, exact = nqs_core.measure_run(out, exact=True)
    assert exact and float(values["energy"].mean) == pytest.approx(float(np.real(e.mean)), abs=1e-12)
    # not a run: resume refuses it and names init_from, which reads it
    with pytest.raises(ConfigError, match="init_from"):
        nqs_core.resume(out, progress=False)
    # never over a run, a folder with other files, or a saved state without overwrite=True
    with pytest.raises(ConfigError, match="holds a run"):
        state.save(run_dir)
    with pytest.raises(ConfigError, match="overwrite=True"):
        state.save(out)
    state.parameters = jax.tree.map(lambda a: 0.5 * a, state.parameters)
    state.save(out, overwrite=True)
    halved = load_state(out).parameters
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(halved), jax.tree.leaves(state.parameters)))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        state.save(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


@functools.lru_cache(maxsize=None)
def small_state():
    from nqs_networks import RBM

    lattice = Chain(4)
    space = SpinHalf(lattice=lattice)
    system = Heisenberg(space, lattice, marshall_sign=True)
    ansatz = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(4))
    return ansatz, space, system


def test_constructor_with_an_exact_sampler_and_saving_without_config(tmp_path):
    ansatz, space, system = small_state()
    state = VariationalState(ansatz, FullSumSampler(space), system=system)
    samples = state.sample()
    assert isinstance(samples, nqs_core.Samples) and samples.exact
    assert float(jnp.sum(samples.weights)) == pytest.approx(1.0, abs=1e-14)
    op = sx(0) * sx(1) + sy(0) * sy(1)
    sampled, exact = state.expect(op), state.expect_exact(op)
    assert float(sampled.error_of_mean) == 0.0 and float(np.real(sampled.mean)) == pytest.approx(float(np.real(exact.mean)), abs=1e-13)
    # the full sum written here: psi from to_array, the operator from Kronecker products on 4 sites
    psi = state.to_array()
    states = np.asarray(space.all_states())
    order = (states < 0).astype(int) @ (2 ** np.arange(3, -1, -1))
    vec = np.zeros(16, complex)
    vec[order] = psi
    p = {a: m / 2 for a, m in PAULI.items()}
    xx = np.kron(np.kron(p["x"], p["x"]), np.eye(4)) + np.kron(np.kron(p["y"], p["y"]), np.eye(4))
    assert float(np.real(exact.mean)) == pytest.approx(float(np.real(np.vdot(vec, xx @ vec))), abs=1e-12)
    with pytest.raises(ValueError, match="omit n_samples"):
        state.sample(n_samples=10)
    # saved without a config: read back with like=
    out = state.save(tmp_path / "py")
    with pytest.raises(ConfigError, match="like="):
        load_state(out)
    back = load_state(out, like=state)
    assert np.array_equal(back.to_array(), psi)


def test_errors_for_spaces_too_large_and_bad_input():
    from nqs_networks import RBM

    big = SpinHalf(lattice=Chain(40))
    state = VariationalState(RBM(big, alpha=1, key=jax.random.PRNGKey(0)), system=Heisenberg(big, Chain(40)))
    with pytest.raises(ValueError, match=r"1099511627776 states, more than max_states = 1048576"):
        state.to_array()
    with pytest.raises(ValueError, match="max_states"):
        state.expect_exact(sz(0))
    with pytest.raises(ValueError, match="needs a sampler"):
        state.sample()
    ansatz, space, system = small_state()
    small = VariationalState(ansatz, system=system)
    with nqs_core.memory_limit(1e-9), pytest.raises(MemoryLimitError, match="to_array"):
        small.to_array()
    with pytest.raises(KeyError, match="no observable named"):
        small.expect_exact("nope")
    with pytest.raises(TypeError, match="cannot measure"):
        small.expect_exact(3.0)
    with pytest.raises(ValueError, match="basis"):
        small.to_array(basis="magic")
    with pytest.raises(ValueError, match="structure"):
        small.parameters = {"w": jnp.zeros(3)}


def test_observable_log_is_importable_as_documented():
    from nqs_core import ObservableLog
    from nqs_core._observable import ObservableLog as implementation

    assert ObservableLog is implementation and "ObservableLog" in nqs_core.__all__
    assert issubclass(ObservableLog, nqs_core.AbstractCallback)


def test_expect_and_grad_is_the_derivative_of_the_energy():
    """The full-sum energy gradient of a real RBM in a Marshall-rotated basis against
    a central finite difference of <H> computed here (Kronecker H, the ansatz on
    every state, the Marshall sign), along one random direction."""
    from nqs_networks import RBM

    lattice = Chain(4)
    space = SpinHalf(lattice=lattice)
    system = Heisenberg(space, lattice, marshall_sign=True)
    ansatz = RBM(space, alpha=1, key=jax.random.PRNGKey(7))
    state = VariationalState(ansatz, FullSumSampler(space), system=system)
    energy, grad = state.expect_and_grad()
    p = {a: m / 2 for a, m in PAULI.items()}

    def site(i, a):
        return functools.reduce(np.kron, [p[a] if k == i else np.eye(2) for k in range(4)])

    h = sum(site(i, a) @ site((i + 1) % 4, a) for i in range(4) for a in "xyz")
    states = np.array([[1.0 - 2.0 * ((k >> (3 - i)) & 1) for i in range(4)] for k in range(16)])
    sign = (-1.0) ** np.sum(states[:, 1::2] < 0, axis=1)
    params, static = eqx.partition(ansatz, eqx.is_inexact_array)

    log_psi = jax.jit(lambda ps: jax.vmap(eqx.combine(ps, static))(jnp.asarray(states)))

    def exact_energy(ps):
        psi = sign * np.exp(np.asarray(log_psi(ps)))
        return float(np.real(np.vdot(psi, h @ psi) / np.vdot(psi, psi)))

    assert float(energy.mean) == pytest.approx(exact_energy(params), abs=1e-12)
    rng = np.random.default_rng(1)
    v = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
    eps = 1e-5
    shifted = [jax.tree.map(lambda a, b, s=s: np.asarray(a) + s * eps * b, params, v) for s in (1, -1)]
    fd = (exact_energy(shifted[0]) - exact_energy(shifted[1])) / (2 * eps)
    directional = sum(float(np.sum(np.asarray(g) * b)) for g, b in zip(jax.tree.leaves(grad), jax.tree.leaves(v)))
    assert directional == pytest.approx(fd, rel=1e-6, abs=1e-9)
