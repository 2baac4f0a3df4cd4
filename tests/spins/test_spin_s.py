"""Spin S and the operator algebra on local spaces of dimension d > 2: every
reference is an ED built here from Kronecker products of the standard spin-S
matrices (or closed forms)."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

import nqs_core
import nqs_spins as ns
from nqs_cli import app
from nqs_core.operators import LocalOperator, Operator, identity, local_operator, parse


def spin_ops(S):
    """S^x, S^y, S^z in the basis m = -S .. S (ascending: the enumeration order
    of nqs's spaces), written from the textbook formulas."""
    m = np.arange(-S, S + 1)
    d = len(m)
    sp = np.zeros((d, d))
    for k in range(d - 1):  # S^+ |m_k> = sqrt(S(S+1) - m_k(m_k+1)) |m_k + 1>
        sp[k + 1, k] = np.sqrt(S * (S + 1) - m[k] * (m[k] + 1))
    return (sp + sp.T) / 2, (sp - sp.T) / 2j, np.diag(m)


def chain_ed(S, n, couplings):
    """Sparse H = sum_bonds sum_k c_k (S_i.S_j)^k of a periodic chain, full
    space, and the 2*Sz of every basis state (ascending m per site, site 0 most
    significant)."""
    d = int(2 * S + 1)
    sx, sy, sz = spin_ops(S)
    ss = sum(np.kron(o, o) for o in (sx, sy, sz))
    bond = sum(c * np.linalg.matrix_power(ss, k) for k, c in enumerate(couplings, start=1)).real
    h = sps.csr_matrix((d**n, d**n))
    for i in range(n - 1):  # open bonds: identity (x) bond (x) identity
        h = h + sps.kron(sps.kron(sps.identity(d**i), sps.csr_matrix(bond)), sps.identity(d ** (n - i - 2)))
    # the bond (n-1, 0): the same after moving site n-1 to the front (a permutation of the basis)
    idx = np.arange(d**n).reshape(d ** (n - 1), d).T.reshape(-1)  # state with site n-1 first -> original
    front = sps.kron(sps.csr_matrix(bond), sps.identity(d ** (n - 2))).tocsr()
    perm = sps.csr_matrix((np.ones(d**n), (idx, np.arange(d**n))), shape=(d**n, d**n))
    h = h + perm @ front @ perm.T
    m = np.arange(-S, S + 1)
    two_sz = np.round(2 * sum(np.add.outer(np.zeros(1), m).reshape(-1)[(np.arange(d**n) // d ** (n - 1 - i)) % d]
                              for i in range(n))).astype(int)
    return h.tocsr(), two_sz


def lowest(h, two_sz, sector=0):
    idx = np.flatnonzero(two_sz == sector)
    block = h[idx][:, idx]
    if block.shape[0] < 400:
        return np.linalg.eigvalsh(block.toarray())[0]
    return spla.eigsh(block, k=1, which="SA", tol=1e-13)[0][0]


def system_of(text):
    return nqs_core.build(nqs_core.loads_config(text), exact=False, stop_after="system")["system"]


def toml(length, S, terms, total_sz=0, extra=""):
    return f"""
[lattice]
name = "chain"
length = {length}
pbc = true
[space]
name = "spin"
S = {S}
total_sz = {total_sz}
[system]
name = "spin_model"
terms = {terms}
{extra}
"""


HEISENBERG = '[ { op = "SxSx + SySy + SzSz", bonds = 1 } ]'


def aklt_terms(length):
    """(S_i.S_j) + (1/3) (S_i.S_j)^2 on the bonds of a periodic chain: the square
    as the nine products S^a_i S^a_j S^b_i S^b_j on the sites (i, j, i, j)."""
    quad = " + ".join(f"S{a}S{a}S{b}S{b}" for a in "xyz" for b in "xyz")
    sites = [[i, (i + 1) % length, i, (i + 1) % length] for i in range(length)]
    return f'[ {{ op = "SxSx + SySy + SzSz", bonds = 1 }}, {{ op = "{quad}", sites = {sites}, coupling = {1 / 3!r} }} ]'


def test_spin_matrices_follow_the_standard_conventions():
    for S in (0.5, 1.0, 1.5, 2.0):
        m = ns.spin_matrices(S)
        assert np.allclose(m["sx"] @ m["sy"] - m["sy"] @ m["sx"], 1j * m["sz"], atol=1e-14)
        casimir = m["sx"] @ m["sx"] + m["sy"] @ m["sy"] + m["sz"] @ m["sz"]
        assert np.allclose(casimir, S * (S + 1) * np.eye(int(2 * S + 1)), atol=1e-13)
        assert np.allclose(np.diag(m["sz"]), S - np.arange(int(2 * S + 1)))
    assert ns.Spin(4, S="3/2").local_values == (3.0, 1.0, -1.0, -3.0)
    assert ns.Spin(5, S=1, total_sz=1).n_states == len(ns.Spin(5, S=1, total_sz=1).all_states()) == 45
    with pytest.raises(ValueError, match="multiple of 1/2"):
        ns.Spin(4, S=0.7)


@pytest.mark.parametrize("length", [10, pytest.param(12, marks=pytest.mark.slow)])
def test_spin1_heisenberg_chain_toml_equals_kronecker_ed(length):
    h = system_of(toml(length, 1, HEISENBERG))
    assert isinstance(h.space, ns.Spin) and h.max_conn_size == 1 + 2 * length
    ref_h, two_sz = chain_ed(1.0, length, [1.0])
    assert ns.exact_energy(h) == pytest.approx(lowest(ref_h, two_sz), abs=1e-10)


def test_nqs_exact_on_a_spin1_toml(tmp_path):
    path = tmp_path / "spin1.toml"
    path.write_text(toml(8, '"1"', HEISENBERG, extra="D = 0.4"))
    r = CliRunner().invoke(app, ["exact", str(path)])
    assert r.exit_code == 0, r.output
    e0 = float(r.output.split("E0 = ")[1].split()[0])
    ref_h, two_sz = chain_ed(1.0, 8, [1.0])
    sz = spin_ops(1.0)[2]
    d2 = functools.reduce(sps.kron, [sps.identity(3)] * 8) * 0
    for i in range(8):
        d2 = d2 + functools.reduce(sps.kron, [sps.csr_matrix(sz @ sz) if k == i else sps.identity(3) for k in range(8)])
    assert e0 == pytest.approx(lowest(ref_h + 0.4 * d2, two_sz), abs=1e-8)


def test_aklt_chain_gives_minus_two_thirds_per_bond():
    length = 8
    h = system_of(toml(length, 1, aklt_terms(length)))
    assert ns.exact_energy(h) == pytest.approx(-2 / 3 * length, abs=1e-10)
    ref_h, two_sz = chain_ed(1.0, length, [1.0, 1 / 3])
    assert lowest(ref_h, two_sz) == pytest.approx(-2 / 3 * length, abs=1e-10)


# -- the algebra for d = 2, 3, 4 against Kronecker products ----------------------


def embed(m, sites, n, d):
    k = len(sites)
    order = list(sites) + [i for i in range(n) if i not in sites]
    full = np.kron(m, np.eye(d ** (n - k))).reshape([d] * (2 * n))
    perm = list(np.argsort(order))
    return full.transpose(perm + [n + p for p in perm]).reshape(d**n, d**n)


@st.composite
def random_local_operator(draw, d):
    """(n, Operator, dense reference in the ascending-value basis): sums of
    products of random one- and two-site matrices (some banded like S^+, which
    exercises the exact zeros of the shifts modulo d)."""
    n = draw(st.integers(1, {2: 5, 3: 4, 4: 3}[d]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rev = np.eye(d)[::-1]  # local basis j (values descending) -> ascending values

    def factor():
        k = draw(st.integers(1, min(2, n)))
        sites = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True))
        size = d**k
        m = rng.uniform(-2, 2, (size, size)) + 1j * rng.uniform(-2, 2, (size, size))
        if draw(st.booleans()):
            m = np.triu(np.tril(m, -1), -1)
        p = functools.reduce(np.kron, [rev] * k)
        return local_operator(m, sites), embed(p @ m @ p, sites, n, d)

    op, ref = Operator({}, d), np.zeros((d**n, d**n), dtype=complex)
    for _ in range(draw(st.integers(1, 3))):
        t, tr = identity(d), np.eye(d**n)
        for _ in range(draw(st.integers(1, 2))):
            f, fr = factor()
            t, tr = t * f, tr @ fr
        c = rng.uniform(0.1, 2) * rng.choice([-1, 1])
        op, ref = op + c * t, ref + c * tr
    return n, op, ref


@eqx.filter_jit
def _connected_all(bound, xs):
    return jax.vmap(bound.connected)(xs)


def dense_from_connected(bound, space):
    """The matrix `<x|O|x'>` assembled here from `connected` on every state."""
    xs = np.asarray(space.all_states())
    xps, mels = (np.asarray(a) for a in _connected_all(bound, jnp.asarray(xs)))
    row_of = {tuple(x): k for k, x in enumerate(xs)}
    out = np.zeros((len(xs), len(xs)), dtype=complex)
    for k in range(len(xs)):
        for xp, mel in zip(xps[k], mels[k]):
            if mel != 0:
                out[k, row_of[tuple(xp)]] += mel
    return out


@pytest.mark.parametrize("d", [2, 3, 4])
def test_random_operators_on_d_level_sites_rebuild_their_dense_matrix(d):
    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(random_local_operator(d))
    def check(case):
        n, op, ref = case
        space = ns.Spin(n, S=(d - 1) / 2)
        scale = max(1.0, np.abs(ref).max())
        np.testing.assert_allclose(op.to_dense(space), ref, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(op.H.to_dense(space), ref.conj().T, rtol=0, atol=1e-11 * scale)
        bound = op.on(space)  # a PauliOperator for d = 2, else a LocalOperator
        assert isinstance(bound, LocalOperator) == (d > 2)
        np.testing.assert_allclose(dense_from_connected(bound, space), ref, rtol=0, atol=1e-11 * scale)
        if d == 2:
            local = LocalOperator(space, op)
            np.testing.assert_allclose(dense_from_connected(local, space), ref, rtol=0, atol=1e-11 * scale)

    check()


def test_spin_s_sector_binding_refuses_non_conserving_operators():
    space = ns.Spin(4, S=1, total_sz=0)
    with pytest.raises(ValueError, match="does not conserve"):
        parse("Sx", (0,), space).on(space)
    op = parse("SpSm + SmSp", (0, 1), space)
    np.testing.assert_allclose(ns.to_dense(op.on(space)), op.to_dense(space), atol=1e-14)
    with pytest.raises(ValueError, match="symbol 'X' is not defined"):
        parse("XX", (0, 1), space)


def test_d_level_rules_keep_configurations_valid():
    space = ns.Spin(6, S=1.5, total_sz=0)
    free = ns.Spin(6, S=1.5)
    x = space.random_state(jax.random.PRNGKey(0), 64)
    from nqs_spins._rules import exchange, local

    moved = exchange(space).propose(x, exchange(space).moves(jax.random.PRNGKey(1), (64,), x, None), None)
    assert np.all(np.sum(np.asarray(moved), axis=1) == 0)
    y = free.random_state(jax.random.PRNGKey(2), 64)
    r = local(free)
    z = np.asarray(r.propose(y, r.moves(jax.random.PRNGKey(3), (64,), y, None), None))
    assert np.all(np.sum(z != np.asarray(y), axis=1) == 1)
    assert set(np.unique(z)) <= {-3.0, -1.0, 1.0, 3.0}


def test_vmc_on_a_spin1_chain_reaches_the_exact_energy(tmp_path):
    """A complex RBM with one-hot inputs on the spin-1 Heisenberg ring (L = 6,
    S^z = 0), full-sum sampling and SR: relative error below 1e-3."""
    text = toml(6, 1, HEISENBERG) + """
[run]
n_steps = 60
seed = 1
[ansatz]
name = "rbm"
alpha = 2
encoding = "one_hot"
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
    result = nqs_core.run(nqs_core.loads_config(text), tmp_path / "run", progress=False)
    ref_h, two_sz = chain_ed(1.0, 6, [1.0])
    e0 = lowest(ref_h, two_sz)
    energy = float(result.energy.mean)
    assert abs(energy - e0) / abs(e0) < 1e-3


def test_correlation_and_structure_factor_for_spin_1():
    """The pair-class operators of `correlation` / `structure_factor` on a spin-1
    ring are sum_{(i, j): j - i = r} S_i . S_j, built here from Kronecker products."""
    n = 4
    lattice = ns.Chain(n)
    space = ns.Spin(n, S=1)
    h = ns.SpinModel(space, lattice, [{"op": "SxSx + SySy + SzSz", "bonds": 1}])
    sx, sy, sz = spin_ops(1.0)

    def so(o, i):
        return functools.reduce(np.kron, [o if k == i else np.eye(3) for k in range(n)])

    for component, ops in (("ss", (sx, sy, sz)), ("zz", (sz,))):
        corr = ns.Correlation(h, lattice, component=component)
        distances = corr.coordinates()["r"]
        assert len(corr.operators) == n  # one per displacement class; C(r) sums r and -r (the transform)
        dense = [ns.to_dense(bound) for bound in corr.operators]
        transform = np.asarray(corr.transform)
        for k, n_pairs in enumerate(corr.coordinates()["n_pairs"]):
            r = int(round(float(distances[k][0]))) % n
            pairs = [(i, j) for i in range(n) for j in range(n) if (j - i) % n in (r, -r % n)]
            assert n_pairs == len(pairs)
            ref = sum(so(o, i) @ so(o, j) for i, j in pairs for o in ops) / len(pairs)
            np.testing.assert_allclose(sum(t * m for t, m in zip(transform[k], dense)), ref, atol=1e-12)
    mag = ns.Magnetization(space)
    x = np.array([2.0, 0.0, -2.0, 2.0])
    np.testing.assert_allclose(np.asarray(mag.function(jnp.asarray(x))), [0.25, 0.0625])


def test_networks_on_spin_1_declare_their_encoding():
    """Value encoding keeps the input size N; one-hot feeds d N inputs and
    distinguishes the local states by position, not by value."""
    import jax

    from nqs_networks import MLP, RBM, ViT

    space = ns.Spin(4, S=1)
    key = jax.random.PRNGKey(0)
    x = jnp.asarray([[2.0, 0.0, -2.0, 0.0], [0.0, 2.0, 0.0, -2.0]])
    for cls, kw in ((RBM, {}), (MLP, {"hidden": [8]})):
        value = cls(space, key=key, **kw)
        onehot = cls(space, encoding="one_hot", key=key, **kw)
        leaves = jax.tree_util.tree_leaves(onehot)
        assert max(a.shape[-1] for a in leaves if a.ndim == 2) == 3 * 4
        assert max(a.shape[-1] for a in jax.tree_util.tree_leaves(value) if a.ndim == 2) == 4
        assert np.all(np.isfinite(np.asarray(jax.vmap(onehot)(x))))
    vit_space = ns.Spin(16, S=1)
    vit = ViT(vit_space, ns.Square(4), patch_size=2, d_model=8, n_heads=2, n_layers=1, encoding="one_hot", key=key)
    assert vit.embed_w.shape == (4 * 3, 8)
    assert np.isfinite(np.asarray(vit(jnp.zeros(16))))
    with pytest.raises(ValueError, match="encoding must be one of"):
        RBM(space, encoding="binary", key=key)
