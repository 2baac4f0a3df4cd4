"""Spin observables against exact diagonalisation computed here, independently,
from sparse matrices built with bit operations (not with the operator language).

The state is an "ED-loaded" lookup-table ansatz: `log psi(x)` is the log of the
exact ground-state vector at `x`, so full-sum expectations must equal the ED
expectation values to rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import nqs_core
from nqs_core import FullSumState, build, expect, expect_many, loads_config
from nqs_spins import Chain, Correlation, Dimer, Heisenberg, Ising, J1J2, Magnetization, SpinHalf, Square
from nqs_spins import StaggeredMagnetization, StructureFactor, UserOperator


class Lookup(nqs_core.AbstractAnsatz):
    """`log psi` read from a table indexed by the configuration's code."""

    codes: jax.Array
    log_values: jax.Array
    weights: jax.Array

    def __init__(self, states, vector):
        n = states.shape[1]
        self.weights = jnp.asarray(2 ** np.arange(n - 1, -1, -1, dtype=np.int64))
        codes = (np.asarray(states) > 0).astype(np.int64) @ np.asarray(self.weights)
        order = np.argsort(codes)
        v = np.asarray(vector, dtype=complex)[order]
        self.codes = jnp.asarray(codes[order])
        self.log_values = jnp.asarray(np.log(np.abs(v)) + 1j * np.angle(v))

    def __call__(self, x):
        code = jnp.sum((x > 0).astype(jnp.int64) * self.weights)
        return self.log_values[jnp.searchsorted(self.codes, code)]


# -- an independent exact-diagonalisation toolkit ------------------------------------


def _codes(states):
    """Integer code of every configuration (bit `n - 1 - i` set when site `i` is up)."""
    s = np.asarray(states)
    return (s > 0).astype(np.int64) @ (2 ** np.arange(s.shape[1] - 1, -1, -1, dtype=np.int64))


def _flip(states, rows, sites):
    """Column indices of the configurations of `rows` with `sites` flipped."""
    codes = _codes(states)
    order = np.argsort(codes)
    n = np.asarray(states).shape[1]
    mask = sum(1 << (n - 1 - i) for i in sites)
    target = codes[rows] ^ mask
    pos = np.searchsorted(codes[order], target)
    assert np.all(codes[order][pos] == target)
    return order[pos]


def pair_matrix(states, i, j, component):
    """`S^z_i S^z_j` or `S_i . S_j` (spin units) in the basis `states`."""
    s = np.asarray(states, dtype=float)
    n = len(s)
    if component == "ss" and i == j:
        return sp.identity(n, format="csr") * 0.75
    m = sp.diags(0.25 * s[:, i] * s[:, j], format="csr")
    if component == "ss":
        rows = np.flatnonzero(s[:, i] != s[:, j])  # S+S- + S-S+ swaps anti-aligned spins, element 1/2
        m = m + sp.csr_matrix((np.full(len(rows), 0.5), (_flip(s, rows, (i, j)), rows)), shape=(n, n))
    return m


def flip_matrix(states, i):
    """`S^x_i` in the basis `states` (no S^z constraint)."""
    n = len(states)
    rows = np.arange(n)
    return sp.csr_matrix((np.full(n, 0.5), (_flip(states, rows, (i,)), rows)), shape=(n, n))


def ground_vector(h):
    vals, vecs = spla.eigsh(h, k=1, which="SA", v0=np.ones(h.shape[0]))
    return vecs[:, 0] / np.linalg.norm(vecs[:, 0])


def square_bonds(length, order):
    """Bonds of the periodic `length x length` square lattice, by hand."""
    out = set()
    shifts = {1: ((1, 0), (0, 1)), 2: ((1, 1), (1, -1))}[order]
    for x in range(length):
        for y in range(length):
            for dx, dy in shifts:
                a, b = x * length + y, ((x + dx) % length) * length + (y + dy) % length
                out.add((min(a, b), max(a, b)))
    return sorted(out)


def min_image(d, length):
    """Shortest periodic image in `[-L/2, L/2)`."""
    return (d + length // 2) % length - length // 2


def expectation(v, m):
    return float(np.real(np.vdot(v, m @ v)))


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heisenberg_4x4():
    lattice = Square(4)
    space = SpinHalf(16, total_sz=0.0)
    states = space.all_states()
    pairs = {(i, j): pair_matrix(states, i, j, "ss") for i in range(16) for j in range(i, 16)}
    h = sum(pairs[b] for b in square_bonds(4, 1))
    v = ground_vector(h)
    corr = np.zeros((16, 16))
    for (i, j), m in pairs.items():
        corr[i, j] = corr[j, i] = expectation(v, m)
    return lattice, space, states, v, corr


def _reference_c_of_r(corr, r_vectors, length):
    pos = np.array([(x, y) for x in range(length) for y in range(length)])
    d = min_image(pos[None, :, :] - pos[:, None, :], length)
    out = []
    for r in r_vectors:
        # the class of r holds the ordered pairs at r and at -r (modulo the periods)
        r = np.rint(r).astype(int)
        sel = np.all((d - r) % length == 0, axis=-1) | np.all((d + r) % length == 0, axis=-1)
        assert sel.any()
        out.append(corr[sel].mean())
    return np.array(out)


def _reference_s_of_q(corr, q, length):
    pos = np.array([(x, y) for x in range(length) for y in range(length)], dtype=float)
    phase = np.cos((pos[None, :, :] - pos[:, None, :]) @ q)
    return float(np.sum(phase * corr) / len(pos))


def test_heisenberg_4x4_correlations_and_structure_factor_equal_ed(heisenberg_4x4):
    lattice, space, states, v, corr = heisenberg_4x4
    system = Heisenberg(space, lattice)
    psi = Lookup(states, v)
    c = Correlation(system, lattice, component="ss")
    s = StructureFactor(system, lattice)  # every momentum of the 4x4 cluster
    full = FullSumState(space)
    got = expect_many(psi, {"c": c, "s": s, "e": system}, full, chunk_size=2048)
    # the energy of the ED state, and C(r) by displacement class
    assert abs(float(np.real(got["e"].mean)) - expectation(v, sum(pair_matrix(states, i, j, "ss") for i, j in square_bonds(4, 1)))) < 1e-10
    r = c.coordinates()["r"]
    # one class per displacement up to sign on the 4x4 torus: (0,0) (1,0) (0,1) (1,1) (1,-1) (2,0) (0,2) (2,1) (1,2) (2,2)
    assert c.shape == (10,) and r.shape == (10, 2)
    assert sorted(map(tuple, r.astype(int).tolist())) == sorted([(0, 0), (1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, 2)])
    pos = np.array([(x, y) for x in range(4) for y in range(4)])
    d = min_image(pos[None, :, :] - pos[:, None, :], 4)
    n_ref = [int(np.sum(np.all((d - v) % 4 == 0, axis=-1) | np.all((d + v) % 4 == 0, axis=-1))) for v in r.astype(int)]
    np.testing.assert_array_equal(c.coordinates()["n_pairs"], n_ref)  # ordered pairs of both r and -r
    assert np.sum(c.coordinates()["n_pairs"]) == 16 * 16
    np.testing.assert_allclose(np.real(np.asarray(got["c"].mean)), _reference_c_of_r(corr, r, 4), rtol=0, atol=1e-10)
    assert float(np.real(got["c"].mean[0])) == pytest.approx(0.75, abs=1e-12)
    qs = s.coordinates()["q"]
    assert qs.shape == (16, 2)
    ref = np.array([_reference_s_of_q(corr, q, 4) for q in qs])
    np.testing.assert_allclose(np.real(np.asarray(got["s"].mean)), ref, rtol=0, atol=1e-10)
    assert np.all(np.asarray(got["s"].error_of_mean) == 0)
    # S(pi, pi) is the largest (Neel correlations) and S(0) = 0 at total S = 0
    k = int(np.argmin(np.linalg.norm(np.abs(qs) - np.pi, axis=1)))
    assert int(np.argmax(ref)) == k and abs(ref[0]) < 1e-10
    # sum rule, one site per cell: sum over the 16 momenta of the cluster = 3 N / 4
    assert float(np.sum(np.real(np.asarray(got["s"].mean)))) == pytest.approx(0.75 * 16, abs=1e-10)
    # one q in units of pi gives that entry
    one = expect(psi, StructureFactor(system, lattice, q=[1, 1]), full, chunk_size=2048)
    assert float(np.real(one.mean[0])) == pytest.approx(ref[k], abs=1e-10)


def test_marshall_rotation_is_applied_to_the_observables(heisenberg_4x4):
    """With `marshall_sign = true` the state and H live in the rotated basis; the
    S.S correlations must still equal the unrotated ED values. Measuring the
    unrotated operators on the rotated state (rotation ignored) gets them wrong."""
    lattice, space, states, v, corr = heisenberg_4x4
    rotated = Heisenberg(space, lattice, marshall_sign=True)
    sub = np.array([lattice.sublattice(i) for i in range(16)])
    sign = (-1.0) ** np.sum((np.asarray(states) > 0) & (sub[None, :] == 1), axis=1)
    psi = Lookup(states, sign * v)  # U psi: the ground state in the rotated basis
    full = FullSumState(space)
    assert np.all(sign * v >= -1e-12) or np.all(sign * v <= 1e-12)  # Marshall: one sign
    c_rot = Correlation(rotated, lattice, component="ss")
    got = expect_many(psi, {"c": c_rot, "s": StructureFactor(rotated, lattice, q=[1, 1])}, full, chunk_size=2048)
    ref = _reference_c_of_r(corr, c_rot.coordinates()["r"], 4)
    np.testing.assert_allclose(np.real(np.asarray(got["c"].mean)), ref, rtol=0, atol=1e-10)
    s_ref = _reference_s_of_q(corr, np.pi * np.array([1.0, 1.0]), 4)
    assert float(np.real(got["s"].mean[0])) == pytest.approx(s_ref, abs=1e-10)
    ignored = expect(psi, Correlation(Heisenberg(space, lattice), lattice, component="ss"), full, chunk_size=2048)
    assert np.max(np.abs(np.real(np.asarray(ignored.mean)) - ref)) > 0.1


def test_j1j2_4x4_correlations_equal_ed():
    lattice = Square(4)
    space = SpinHalf(16, total_sz=0.0)
    states = space.all_states()
    pairs = {(i, j): pair_matrix(states, i, j, "ss") for i in range(16) for j in range(i, 16)}
    h = sum(pairs[b] for b in square_bonds(4, 1)) + 0.5 * sum(pairs[b] for b in square_bonds(4, 2))
    v = ground_vector(h)
    corr = np.zeros((16, 16))
    zz = np.zeros((16, 16))
    for (i, j), m in pairs.items():
        corr[i, j] = corr[j, i] = expectation(v, m)
        zz[i, j] = zz[j, i] = expectation(v, pair_matrix(states, i, j, "zz"))
    system = J1J2(space, lattice, J2=0.5)
    psi = Lookup(states, v)
    obs = {
        "ss": Correlation(system, lattice, component="ss"),
        "zz": Correlation(system, lattice),
        "sq": StructureFactor(system, lattice, q=[[1, 1], [1, 0]], component="zz"),
        "ms": StaggeredMagnetization(space, lattice),
    }
    got = expect_many(psi, obs, FullSumState(space), chunk_size=2048)
    np.testing.assert_allclose(np.real(np.asarray(got["ss"].mean)), _reference_c_of_r(corr, obs["ss"].coordinates()["r"], 4), atol=1e-10, rtol=0)
    np.testing.assert_allclose(np.real(np.asarray(got["zz"].mean)), _reference_c_of_r(zz, obs["zz"].coordinates()["r"], 4), atol=1e-10, rtol=0)
    sq_ref = [_reference_s_of_q(zz, np.pi * np.array(q), 4) for q in ([1, 1], [1, 0])]
    np.testing.assert_allclose(np.real(np.asarray(got["sq"].mean)), sq_ref, atol=1e-10, rtol=0)
    # staggered magnetisation squared: (1/N^2) sum_ij eps_i eps_j <S^z_i S^z_j>
    eps = np.array([1.0 - 2.0 * lattice.sublattice(i) for i in range(16)])
    assert float(np.real(got["ms"].mean[1])) == pytest.approx(eps @ zz @ eps / 256, abs=1e-10)
    assert float(np.real(got["ms"].mean[0])) == pytest.approx(0.0, abs=1e-10)


@pytest.fixture(scope="module")
def tfim_12():
    lattice = Chain(12)
    space = SpinHalf(12)
    states = space.all_states()
    zz = {(i, j): pair_matrix(states, i, j, "zz") for i in range(12) for j in range(12)}
    x = [flip_matrix(states, i) for i in range(12)]
    # Pauli units: H = -J sum sigma^z sigma^z - h sum sigma^x
    h = -4.0 * sum(zz[(i, (i + 1) % 12)] for i in range(12)) - 0.9 * 2.0 * sum(x)
    v = ground_vector(h)
    return lattice, space, states, v, zz, x


def test_tfim_chain_observables_equal_ed(tfim_12):
    lattice, space, states, v, zz, x = tfim_12
    system = Ising(space, lattice, h=0.9)
    psi = Lookup(states, v)
    mag = 0.5 * np.asarray(states).sum(axis=1) / 12
    obs = {
        "m": Magnetization(space),
        "czz": Correlation(system, lattice),
        "sx": UserOperator(system, lattice, op="Sx", sites="all"),
        "xx": UserOperator(system, lattice, terms=[{"op": "SxSx", "sites": [[0, 1]], "coupling": 2.0}]),
    }
    got = expect_many(psi, obs, FullSumState(space))
    p = np.abs(v) ** 2
    assert float(np.real(got["m"].mean[0])) == pytest.approx(0.0, abs=1e-10)
    assert float(np.real(got["m"].mean[1])) == pytest.approx(p @ mag**2, abs=1e-10)
    r = obs["czz"].coordinates()["r"][:, 0]
    ref = [np.mean([expectation(v, zz[(i, (i + int(round(d))) % 12)]) for i in range(12)]) for d in r]
    np.testing.assert_allclose(np.real(np.asarray(got["czz"].mean)), ref, atol=1e-10, rtol=0)
    assert float(np.real(got["sx"].mean)) == pytest.approx(sum(expectation(v, m) for m in x), abs=1e-10)
    assert float(np.real(got["xx"].mean)) == pytest.approx(2.0 * expectation(v, x[0] @ x[1]), abs=1e-10)
    assert obs["sx"].shape == () and got["sx"].mean.shape == ()


def test_dimer_correlations_of_a_chain_equal_ed():
    lattice = Chain(10)
    space = SpinHalf(10, total_sz=0.0)
    states = space.all_states()
    bond = [pair_matrix(states, i, (i + 1) % 10, "ss") for i in range(10)]
    v = ground_vector(sum(bond))
    dimer = Dimer(Heisenberg(space, lattice), lattice)
    got = expect(Lookup(states, v), dimer, FullSumState(space))
    coords = dimer.coordinates()
    # r and -r are one class: r = 0..5 (r = 5 = -5 on the ring of 10)
    assert np.all(coords["direction"] == 1.0) and coords["r"][:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert coords["n_pairs"].tolist() == [10, 20, 20, 20, 20, 10]
    ref = [np.mean([expectation(v, bond[i] @ bond[(i + int(round(r))) % 10]) for i in range(10)]) for r in coords["r"][:, 0]]
    np.testing.assert_allclose(np.real(np.asarray(got.mean)), ref, atol=1e-10, rtol=0)
    assert float(np.real(got.mean[0])) == pytest.approx(expectation(v, bond[0] @ bond[0]), abs=1e-10)


def test_monte_carlo_estimates_agree_with_the_full_sum(tfim_12):
    """A fixed (random) RBM: Metropolis estimates of energy and observables lie
    within 3 error bars of the exact sums of the same parameters."""
    from nqs_networks import RBM
    from nqs_spins import MetropolisLocal

    lattice, space, *_ = tfim_12
    system = Ising(space, lattice, h=0.9)
    rbm = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(7))
    rbm = jax.tree.map(lambda a: 3.0 * a if jnp.iscomplexobj(a) else a, rbm)
    obs = {
        "e": system,
        "m": Magnetization(space),
        "czz": Correlation(system, lattice),
        "sx": UserOperator(system, lattice, op="Sx", sites="all"),
    }
    exact = expect_many(rbm, obs, FullSumState(space))
    sampler = MetropolisLocal(space, n_samples=4096, n_chains=16, n_discard_per_chain=64)
    dist = nqs_core.BornDistribution(rbm)
    x, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(3)))
    mc = expect_many(rbm, obs, x)
    for name in obs:
        mean, err = np.real(np.asarray(mc[name].mean)), np.asarray(mc[name].error_of_mean)
        ref = np.real(np.asarray(exact[name].mean))
        random = np.asarray(exact[name].variance) > 1e-12  # C(0) = 1/4 is a constant: error 0
        assert np.all(err[random] > 0) and np.all(err[~random] < 1e-12), name
        assert np.all(np.abs(mean - ref) <= 3 * err + 1e-12), (name, mean, ref, err)
        assert np.all(np.abs(np.asarray(mc[name].R_hat)[random] - 1) < 0.1), name


def test_observables_from_toml_and_their_errors():
    cfg = loads_config(
        """
[lattice]
name = "chain"
length = 6
[space]
name = "spin_half"
total_sz = 0.0
[system]
name = "heisenberg"
marshall_sign = true
[ansatz]
name = "rbm"
[sampler]
name = "full_sum"
[observables.mz]
name = "magnetization"
[observables.czz]
name = "correlation"
component = "ss"
[observables.sq]
name = "structure_factor"
q = [1]
[observables.h]
name = "operator"
op = "SxSx + SySy"
sites = [[0, 1]]
"""
    )
    calc = build(cfg, exact=False)
    assert set(calc.observables) == {"mz", "czz", "sq", "h"}
    assert isinstance(calc.observables["sq"], StructureFactor)
    assert calc.config["observables"]["czz"] == {"name": "correlation", "component": "ss"}
    for table, message in (
        ({"name": "magnetisation"}, "[observables.x] unknown observable 'magnetisation'; valid names: correlation, dimer, magnetization"),
        ({"name": "correlation", "componnet": "zz"}, "[observables.x] unknown field(s) componnet for observable 'correlation'; valid fields: component"),
        ({"name": "correlation", "component": "xy"}, "component must be one of zz, ss"),
        ({"name": "operator", "op": "Sx", "sites": "all"}, "does not conserve S^z"),
        ({"name": "operator", "op": "Sq", "sites": "all"}, "unknown operator symbol"),
        ({}, "[observables.x] needs a 'name'"),
    ):
        bad = dict(cfg, observables={"x": table})
        with pytest.raises(nqs_core.ConfigError) as info:
            build(bad, exact=False)
        assert message in str(info.value) and "\n" not in str(info.value)
    graph = loads_config(
        """
[lattice]
name = "graph"
edges = [[0, 1], [1, 2], [2, 3], [3, 0]]
[space]
name = "spin_half"
[system]
name = "heisenberg"
[ansatz]
name = "rbm"
[sampler]
name = "full_sum"
[observables.sq]
name = "structure_factor"
"""
    )
    with pytest.raises(nqs_core.ConfigError, match="structure_factor needs site positions"):
        build(graph, exact=False)


def _random_state(states, seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=len(states)) + 1j * rng.normal(size=len(states))
    return v / np.linalg.norm(v)


def _correlations(states, v, n):
    corr = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            corr[i, j] = corr[j, i] = expectation(v, pair_matrix(states, i, j, "ss"))
    return corr


def test_structure_factor_of_a_kagome_cluster_uses_exact_displacements():
    """S(q) of a random state on the 12-site kagome cluster (2 x 2 cells, three
    sites each) equals `(1/N) sum_ij cos(q . (r_j - r_i)) <S_i . S_j>` with the
    positions written here by hand (unrounded, irrational sqrt(3) components)
    to 1e-12 at every momentum of the cluster; with rounded displacements it
    was off by ~5e-7. The sum over those momenta is not 3N/4 (three sites per
    cell) but the formula of docs/observables.md: `3 N_c / 4` plus the
    inter-sublattice terms."""
    from nqs_spins import Kagome

    lattice = Kagome(2)
    space = SpinHalf(12, total_sz=0.0)
    states = space.all_states()
    v = _random_state(states, 3)
    corr = _correlations(states, v, 12)
    a1, a2 = np.array([2.0, 0.0]), np.array([1.0, np.sqrt(3.0)])
    basis = [np.zeros(2), a1 / 2, a2 / 2]
    pos = np.array([x * a1 + y * a2 + basis[b] for x in range(2) for y in range(2) for b in range(3)])
    d = pos[None, :, :] - pos[:, None, :]
    s = StructureFactor(Heisenberg(space, lattice), lattice)
    qs = s.coordinates()["q"]
    assert qs.shape == (4, 2)
    got = np.real(np.asarray(expect(Lookup(states, v), s, FullSumState(space)).mean))
    ref = np.array([np.sum(np.cos(d @ q) * corr) / 12 for q in qs])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    sub = np.arange(12) % 3
    cross = sub[:, None] != sub[None, :]
    rule = 0.75 * 4 + np.sum(corr[cross] * np.sum(np.cos(d[cross] @ qs.T), axis=-1)) / 12
    assert float(np.sum(got)) == pytest.approx(rule, abs=1e-12)
    assert abs(rule - 0.75 * 12) > 0.1  # 3 N / 4 does not hold with a basis


def test_structure_factor_sum_rule_on_a_chain():
    """One site per cell: the sum of S(q) over the N momenta of a periodic
    chain is 3 N / 4 for any state (here a random one, full space)."""
    lattice = Chain(8)
    space = SpinHalf(8)
    states = space.all_states()
    v = _random_state(states, 4)
    s = StructureFactor(Heisenberg(space, lattice), lattice)
    got = np.real(np.asarray(expect(Lookup(states, v), s, FullSumState(space)).mean))
    assert got.shape == (8,)
    assert float(np.sum(got)) == pytest.approx(0.75 * 8, abs=1e-12)
