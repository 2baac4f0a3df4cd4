"""Local values of many spin-1/2 operators in one pass (`nqs_core._local_values`),
against dense matrices built here from Kronecker products, and the claim of one
compacted loop for all operators."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core._observable import local_values_many
from nqs_core.operators import sx, sy, sz
from nqs_spins import Chain, Correlation, Dimer, Heisenberg, SpinHalf, StructureFactor

N = 6
PAULI = {"x": np.array([[0, 1], [1, 0]]) / 2, "y": np.array([[0, -1j], [1j, 0]]) / 2, "z": np.diag([1.0, -1.0]) / 2}


def dense(factors):
    """`prod_i S^{a_i}_{s_i}` for `factors = [(a, s), ...]` (distinct sites), basis: site 0 is the leading bit, up first."""
    mats = [np.eye(2)] * N
    for a, s in factors:
        mats = mats[:s] + [PAULI[a]] + mats[s + 1:]
    return functools.reduce(np.kron, mats)


class Table(nqs_core.AbstractAnsatz):
    """`log psi` read from a table of all 2^N configurations (up = bit 1, site 0 leading)."""

    log_values: jax.Array

    def __call__(self, x):
        code = jnp.sum((x < 0).astype(jnp.int64) * (2 ** jnp.arange(N - 1, -1, -1)))
        return self.log_values[code]


def _ops_and_matrices(rotate):
    """Operators (bound later) and their dense matrices: S.S pairs, a dimer product,
    complex strings; with `rotate` the Marshall-like Z rotation on sites 1, 3, 5."""
    def ss(i, j):
        return sx(i) * sx(j) + sy(i) * sy(j) + sz(i) * sz(j), sum(dense([(a, i), (a, j)]) for a in "xyz")

    ops = [ss(0, 1), ss(0, 3), ss(2, 5)]
    (a, ma), (b, mb) = ss(0, 1), ss(2, 3)
    ops.append((a * b, ma @ mb))
    (c, mc) = ss(1, 2)
    ops.append((a * c + c * a, ma @ mc + mc @ ma))  # overlapping bonds, Hermitian sum
    ops.append((sx(0) * sy(1) - sy(0) * sx(1), dense([("x", 0), ("y", 1)]) - dense([("y", 0), ("x", 1)])))  # purely imaginary
    ops.append((sz(4) + 0.3 * sz(0) * sz(2), dense([("z", 4)]) + 0.3 * dense([("z", 0), ("z", 2)])))  # diagonal
    if rotate:
        zrot = functools.reduce(np.kron, [np.diag([1.0, -1.0]) if s in (1, 3, 5) else np.eye(2) for s in range(N)])
        ops = [(o.rotate_z((1, 3, 5)), zrot @ m @ zrot) for o, m in ops]
    return ops


@pytest.mark.parametrize("total_sz, rotate", [(None, False), (0.0, True)])
def test_union_local_values_equal_dense_matrices(total_sz, rotate):
    space = SpinHalf(N, total_sz=total_sz)
    rng = np.random.default_rng(3)
    psi = rng.normal(size=2**N) + 1j * rng.normal(size=2**N)
    states = np.asarray(space.all_states())
    codes = (states < 0).astype(int) @ (2 ** np.arange(N - 1, -1, -1))
    if total_sz is not None:  # psi lives in the sector
        inside = np.zeros(2**N, dtype=bool)
        inside[codes] = True
        psi = np.where(inside, psi, 0.0)
    ansatz = Table(jnp.asarray(np.log(np.where(psi == 0, 1.0, psi))))
    pairs = _ops_and_matrices(rotate)
    obs = [nqs_core.OperatorObservable(o.on(space)) for o, _ in pairs]
    obs.append(nqs_core.OperatorObservable([o.on(space) for o, _ in pairs[:3]]))  # a vector, sharing operators
    values = jax.jit(lambda xs: local_values_many(ansatz, obs, xs, chunk_size=7))(jnp.asarray(states))  # 7: several chunks, padded
    for (_, m), v in zip(pairs, values):
        ref = (m @ psi)[codes] / psi[codes]
        np.testing.assert_allclose(np.asarray(v), ref, rtol=0, atol=1e-12)
    ref = np.stack([(m @ psi)[codes] / psi[codes] for _, m in pairs[:3]], axis=1)
    np.testing.assert_allclose(np.asarray(values[-1]), ref, rtol=0, atol=1e-12)


def test_correlation_dimer_structure_factor_share_one_loop_and_equal_dense_matrices():
    lattice = Chain(N)
    space = SpinHalf(N, total_sz=0.0)
    system = Heisenberg(space, lattice, marshall_sign=True)
    obs = [Correlation(system, lattice, component="ss"), Dimer(system, lattice), StructureFactor(system, lattice), nqs_core.OperatorObservable(system)]
    rng = np.random.default_rng(5)
    psi = rng.normal(size=2**N) + 1j * rng.normal(size=2**N)
    states = np.asarray(space.all_states())
    codes = (states < 0).astype(int) @ (2 ** np.arange(N - 1, -1, -1))
    ansatz = Table(jnp.asarray(np.log(psi)))
    got = jax.jit(lambda xs: local_values_many(ansatz, obs, xs))(jnp.asarray(states))
    # the observables are measured in the Marshall-rotated basis of the system: Z on sites 1, 3, 5
    zrot = functools.reduce(np.kron, [np.diag([1.0, -1.0]) if s % 2 else np.eye(2) for s in range(N)])

    def local(m):
        return (zrot @ m @ zrot @ psi)[codes] / psi[codes]

    def ss(i, j):
        return 0.75 * np.eye(2**N) if i == j else sum(dense([(a, i), (a, j)]) for a in "xyz")

    # C(r): ordered pairs at +-r on the ring
    c = obs[0].coordinates()
    for k, r in enumerate(c["r"][:, 0].astype(int)):
        pairs = [(i, j) for i in range(N) for j in range(N) if (j - i) % N in (r % N, -r % N)]
        assert len(pairs) == c["n_pairs"][k]
        np.testing.assert_allclose(np.asarray(got[0][:, k]), local(sum(ss(i, j) for i, j in pairs)) / len(pairs), rtol=0, atol=1e-12)
    # dimer: bonds (i, i+1), ordered bond pairs at +-r
    d = obs[1].coordinates()
    for k, r in enumerate(d["r"][:, 0].astype(int)):
        pairs = [(b, e) for b in range(N) for e in range(N) if (e - b) % N in (r % N, -r % N)]
        m = sum(ss(b, (b + 1) % N) @ ss(e, (e + 1) % N) for b, e in pairs) / len(pairs)
        np.testing.assert_allclose(np.asarray(got[1][:, k]), local(m), rtol=0, atol=1e-12)
    # S(q) = (1/N) sum_ij cos(q (j - i)) S_i.S_j
    for k, q in enumerate(obs[2].coordinates()["q"][:, 0]):
        m = sum(np.cos(q * (j - i)) * ss(i, j) for i in range(N) for j in range(N)) / N
        np.testing.assert_allclose(np.asarray(got[2][:, k]), local(m), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got[3]), local(sum(ss(i, (i + 1) % N) for i in range(N))), rtol=0, atol=1e-12)
    # C(r) of S.S and S(q) measure the same class operators: evaluated once
    assert [o.to_operator() for o in obs[0].operators] == [o.to_operator() for o in obs[2].operators]
    # one compacted loop (one `while`) evaluates the network for every operator of the
    # three spin observables; the Heisenberg system (its own connected elements) adds its own
    xs = jnp.asarray(states)
    assert str(jax.make_jaxpr(lambda xs: local_values_many(ansatz, obs[:3], xs))(xs)).count("while[") == 1
    assert str(jax.make_jaxpr(lambda xs: local_values_many(ansatz, obs, xs))(xs)).count("while[") == 2
