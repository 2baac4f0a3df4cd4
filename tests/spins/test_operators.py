"""The operator language: algebra against dense Kronecker products, the bound
(compiled) operator, the built-in Hamiltonians' operator forms, and the
TOML `spin_model` system through the CLI."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

import nqs_spins as ns
from nqs_cli import app
from nqs_networks import RBM
from nqs_spins.operators import (
    Operator,
    X,
    Y,
    Z,
    identity,
    local_operator,
    parse,
    sm,
    sp,
    sx,
    sy,
    sz,
)

# -- an independent dense reference from Kronecker products ------------------
# Single-site basis (index 0, 1) = (down, up): the basis index of a state is
# its SpinHalf code (site 0 most significant), so unconstrained spaces need no
# permutation. User matrices of `local_operator` are written in (up, down).
FLIP = np.array([[0.0, 1.0], [1.0, 0.0]])
DENSE = {
    "sx": FLIP / 2,
    "sy": np.array([[0.0, 1.0j], [-1.0j, 0.0]]) / 2,
    "sz": np.diag([-0.5, 0.5]),
    "sp": np.array([[0.0, 0.0], [1.0, 0.0]]),  # |up><down|
    "sm": np.array([[0.0, 1.0], [0.0, 0.0]]),
}
DENSE |= {"X": 2 * DENSE["sx"], "Y": 2 * DENSE["sy"], "Z": 2 * DENSE["sz"]}
BUILDERS = {"sx": sx, "sy": sy, "sz": sz, "sp": sp, "sm": sm, "X": X, "Y": Y, "Z": Z}


def embed(m, sites, n):
    """The `2^k x 2^k` matrix `m` (basis (down, up) per site, first site most
    significant) acting on `sites` of `n` sites."""
    k = len(sites)
    order = list(sites) + [i for i in range(n) if i not in sites]
    full = np.kron(m, np.eye(2 ** (n - k))).reshape([2] * (2 * n))
    perm = list(np.argsort(order))
    return full.transpose(perm + [n + p for p in perm]).reshape(2**n, 2**n)


def user_to_reference(m, k):
    """A user matrix in the (up, down) basis -> the (down, up) basis."""
    p = functools.reduce(np.kron, [FLIP] * k)
    return p @ m @ p


def sector(n, total_sz):
    """Indices (codes) of the states with the given magnetisation, ascending."""
    codes = np.arange(2**n)
    ups = np.array([bin(c).count("1") for c in codes])
    return codes[ups == int(round(n / 2 + total_sz))]


def restrict(h, n, total_sz):
    if total_sz is None:
        return h
    idx = sector(n, total_sz)
    return h[np.ix_(idx, idx)]


# -- random operators ---------------------------------------------------------


@st.composite
def random_operator(draw, max_sites=10):
    """(n_sites, Operator, dense reference): a sum of products of local
    operators (some products of sums), on up to `max_sites` sites."""
    n = draw(st.integers(1, max_sites))
    site = st.integers(0, n - 1)
    number = st.floats(-2, 2, allow_nan=False).filter(lambda v: abs(v) > 0.05)

    def factor():
        kind = draw(st.sampled_from(sorted(BUILDERS) + ["matrix1", "matrix2"] * (n > 1 or 1)))
        if kind == "matrix1" or (kind == "matrix2" and n == 1):
            i = draw(site)
            m = np.array(draw(st.lists(number, min_size=8, max_size=8))).reshape(2, 2, 2)
            m = m[0] + 1j * m[1]
            return local_operator(m, i), embed(user_to_reference(m, 1), [i], n)
        if kind == "matrix2":
            i, j = draw(st.lists(site, min_size=2, max_size=2, unique=True))
            m = np.array(draw(st.lists(number, min_size=16, max_size=16))).reshape(4, 4)
            return local_operator(m, (i, j)), embed(user_to_reference(m, 2), [i, j], n)
        i = draw(site)
        return BUILDERS[kind](i), embed(DENSE[kind], [i], n)

    def product():
        op, ref = identity(), np.eye(2**n)
        for _ in range(draw(st.integers(1, 3))):
            f, fr = factor()
            op, ref = op * f, ref @ fr
        c = draw(number) * draw(st.sampled_from([1.0, 1j, 0.5 + 0.5j]))
        return c * op, c * ref

    def summed():
        op, ref = Operator({}), np.zeros((2**n, 2**n))
        for _ in range(draw(st.integers(1, 3))):
            t, tr = product()
            op, ref = op + t, ref + tr
        return op, ref

    op, ref = summed()
    if draw(st.booleans()):  # a product of sums
        other, oref = summed()
        op, ref = op * other, ref @ oref
    return n, op, ref


def flip_patterns(dense, n, atol):
    """Distinct `row_code XOR col_code` over the entries larger than `atol`."""
    rows, cols = np.nonzero(np.abs(dense) > atol)
    return len(set((rows ^ cols).tolist()))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_operator())
def test_random_operators_rebuild_their_dense_matrix(case):
    n, op, ref = case
    space = ns.SpinHalf(n)
    scale = max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(op.to_dense(space), ref, rtol=0, atol=1e-12 * scale)
    bound = op.on(space)
    np.testing.assert_allclose(ns.to_dense(bound), ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(op.H.to_dense(space), ref.conj().T, rtol=0, atol=1e-12 * scale)
    assert op.is_hermitian() == np.allclose(ref, ref.conj().T, rtol=0, atol=1e-10 * scale)
    # one connected element per distinct flip pattern, however the operator was written
    assert flip_patterns(ref, n, 1e-9 * scale) <= bound.max_conn_size <= max(1, flip_patterns(ref, n, 0.0))


def test_products_of_sums_do_not_multiply_connected_elements():
    n = 8
    mx = sum(X(i) for i in range(n))
    square = (mx * mx).on(ns.SpinHalf(n))
    # N identity terms merge into one diagonal, X_i X_j + X_j X_i into one pattern
    assert square.max_conn_size == 1 + n * (n - 1) // 2
    bonds = [(i, (i + 1) % n) for i in range(n)]
    h = sum(sx(i) * sx(j) + sy(i) * sy(j) + sz(i) * sz(j) for i, j in bonds)
    h2 = (h * h).on(ns.SpinHalf(n))
    dense = ns.to_dense(h2)
    assert h2.max_conn_size == flip_patterns(dense, n, 1e-12)
    assert h2.max_conn_size < (1 + n) ** 2


def test_algebra_identities():
    assert sx(0) * sy(0) - sy(0) * sx(0) == 1j * sz(0)
    assert sp(3) * sm(3) + sm(3) * sp(3) == identity()
    assert sp(1).H == sm(1) and (2j * sp(1) * sz(2)).H == -2j * sz(2) * sm(1)
    assert X(0) * X(0) == identity() and len(Z(0) - Z(0)) == 0
    assert (sx(0) + 1) * 2 - 2 == 2 * sx(0)
    assert (sz(0) + sz(1)) ** 2 == 0.5 + 2 * sz(0) * sz(1)
    assert sy(0).is_hermitian() and not sp(0).is_hermitian()
    assert (sx(0) * sx(1)).pauli_strings() == {"X0 X1": 0.25}
    assert (Y(2) * Z(4)).pauli_strings() == {"Y2 Z4": 1.0}
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floating point: the normal form drops it
    assert len(0.1 * X(0) + 0.2 * X(0) - 0.3 * X(0)) == 0
    assert local_operator(np.diag([1.0, -1.0]), 5) == Z(5)
    assert local_operator(np.kron(np.diag([1.0, -1.0]), [[0, 1], [1, 0]]), (2, 0)) == Z(2) * X(0)
    assert (sx(0) * sz(1)).relabel((4, 2)) == sx(4) * sz(2)
    assert Operator.sum([sx(0), 1, sz(1), -sx(0)]) == 1 + sz(1) and len(Operator.sum([])) == 0


def test_rotate_z_is_conjugation_by_z():
    n = 4
    op = sx(0) * sy(1) + sp(2) * sm(3) + sz(0) * sz(3) + 0.3 * sy(2) + sm(1)
    rot = (1, 2)
    u = functools.reduce(lambda a, b: a @ b, [embed(DENSE["Z"], [i], n) for i in rot])
    ref = op.to_dense(ns.SpinHalf(n))
    np.testing.assert_allclose(op.rotate_z(rot).to_dense(ns.SpinHalf(n)), u @ ref @ u.conj().T, atol=1e-14)
    assert op.rotate_z(rot).rotate_z(rot) == op


def test_spin_operator_on_sz_sector_and_exact_energy():
    n = 8
    hz = 0.3
    h = sum(sx(i) * sx((i + 1) % n) + sy(i) * sy((i + 1) % n) + 0.5 * sz(i) * sz((i + 1) % n) for i in range(n))
    h = h - hz * sum(sz(i) for i in range(n))
    ref = sum(
        embed(np.kron(DENSE["sx"], DENSE["sx"]) + np.kron(DENSE["sy"], DENSE["sy"]) + 0.5 * np.kron(DENSE["sz"], DENSE["sz"]), [i, (i + 1) % n], n)
        for i in range(n)
    ) - hz * sum(embed(DENSE["sz"], [i], n) for i in range(n))
    for total_sz in (None, 0.0, 1.0):
        space = ns.SpinHalf(n, total_sz=total_sz)
        bound = h.on(space)
        want = restrict(ref, n, total_sz)
        np.testing.assert_allclose(ns.to_dense(bound), want, atol=1e-12)
        np.testing.assert_allclose(h.to_dense(space), want, atol=1e-12)
        assert ns.exact_energy(bound) == pytest.approx(np.linalg.eigvalsh(want)[0], abs=1e-10)
    assert h.on(ns.SpinHalf(n)).max_conn_size == 1 + n


@pytest.mark.parametrize(
    "op, space, message",
    [
        (sx(0), ns.SpinHalf(4, total_sz=0), "does not conserve S^z"),
        (sp(0) * sp(1), ns.SpinHalf(4, total_sz=0), "does not conserve S^z"),
        (sp(0) * sm(1) + sx(0) * sx(1), ns.SpinHalf(4, total_sz=0), "does not conserve S^z"),
        (sz(7), ns.SpinHalf(4), "acts on site 7, but the space has 4 sites"),
    ],
)
def test_binding_errors(op, space, message):
    with pytest.raises(ValueError, match=message.replace("^", r"\^")):
        op.on(space)


def test_conserving_flips_are_accepted_in_a_sector():
    space = ns.SpinHalf(4, total_sz=0)
    op = sp(0) * sm(1) + sm(0) * sp(1) + sp(0) * sp(1) * sm(2) * sm(3)
    np.testing.assert_allclose(ns.to_dense(op.on(space)), op.to_dense(space), atol=1e-14)


def test_parse():
    assert parse("SxSx + SySy + 0.5 SzSz", (2, 5)) == sx(2) * sx(5) + sy(2) * sy(5) + 0.5 * sz(2) * sz(5)
    assert parse("-2.5e-1 * Sz", (3,)) == -0.25 * sz(3)
    assert parse("1j SpSm - 1j SmSp", (0, 1)) == 1j * sp(0) * sm(1) - 1j * sm(0) * sp(1)
    assert parse("X*I + 0.5", (0, 1)) == X(0) + 0.5
    assert parse("ZY - IZ", (4, 1)) == Z(4) * Y(1) - Z(1)
    with pytest.raises(ValueError, match="unknown operator symbol 'Sq'"):
        parse("SqSq", (0, 1))
    with pytest.raises(ValueError, match="has 3 symbol"):
        parse("SzSzSz", (0, 1))


def test_operator_errors():
    with pytest.raises(ValueError, match="side d"):
        local_operator(np.eye(3), (0, 1))
    with pytest.raises(ValueError, match="distinct sites"):
        local_operator(np.eye(4), (1, 1))
    with pytest.raises(ValueError, match=">= 0"):
        sx(-1)
    with pytest.raises(TypeError):
        sx(0) + "Sz"


# -- built-in Hamiltonians: hand-written connected == operator form -----------

BUILTINS = [
    ("ising", ns.Chain(6), None, dict(J=0.7, h=1.3)),
    ("ising", ns.Square(3, pbc=False), None, dict(h=0.4)),
    ("heisenberg", ns.Chain(8), 0.0, dict(marshall_sign=True)),
    ("heisenberg", ns.Chain(7, pbc=False), None, dict(J=1.5, units="pauli")),
    ("heisenberg", ns.Square(4), 0.0, dict(marshall_sign=True)),
    ("heisenberg", ns.Square(2), 1.0, dict()),
    ("j1j2", ns.Chain(8), 0.0, dict(J2=0.3, marshall_sign=True)),
    ("j1j2", ns.Square(3, pbc=False), 0.5, dict(J2=0.6, units="pauli")),
    ("j1j2", ns.Square(4), 0.0, dict(J2=0.5, marshall_sign=True)),
    ("j1j2", ns.Square(4), 0.0, dict(J2=0.5)),
]
CLASSES = {"ising": ns.Ising, "heisenberg": ns.Heisenberg, "j1j2": ns.J1J2}


@pytest.mark.parametrize("name, lattice, total_sz, fields", BUILTINS, ids=lambda v: repr(v)[:40])
def test_builtin_hamiltonians_equal_their_operator_form(name, lattice, total_sz, fields):
    space = ns.SpinHalf(lattice.n_sites, total_sz=total_sz)
    h = CLASSES[name](space, lattice, **fields)
    op = h.to_operator()
    assert isinstance(h, ns.operators.AbstractSpinHamiltonian)
    want = h.marshall_sites
    if fields.get("marshall_sign"):
        assert want == tuple(i for i in range(lattice.n_sites) if lattice.sublattice(i) == 1) and want
    else:
        assert want == ()
    generic = op.on(space)
    assert generic.max_conn_size <= h.max_conn_size
    # element by element, as sparse matrices (the 4x4 S^z = 0 sector is 12870 states)
    matrix = ns.to_sparse(h)
    difference = ns.to_sparse(generic) - matrix
    assert matrix.nnz > space.n_states and abs(difference).max() <= 1e-12
    if space.n_states <= 2**10:
        np.testing.assert_allclose(op.to_dense(space), matrix.toarray(), rtol=0, atol=1e-12)
    # local energies of a complex RBM
    rbm = RBM(space, alpha=1, param_dtype="complex128", init_std=0.3, key=jax.random.PRNGKey(3))
    xs = space.random_state(jax.random.PRNGKey(4), 64)
    e_hand = jax.jit(jax.vmap(lambda x: h.local_energy(rbm, x)))(xs)
    e_gen = jax.jit(jax.vmap(lambda x: generic.local_energy(rbm, x)))(xs)
    np.testing.assert_allclose(e_gen, e_hand, rtol=0, atol=1e-12 * max(1.0, float(jnp.abs(e_hand).max())))


def test_marshall_rotation_changes_the_matrix_not_the_spectrum():
    lattice = ns.Chain(6)
    space = ns.SpinHalf(6, total_sz=0)
    plain = ns.Heisenberg(space, lattice).to_operator()
    rotated = ns.Heisenberg(space, lattice, marshall_sign=True).to_operator()
    assert rotated == plain.rotate_z((1, 3, 5)) and rotated != plain
    np.testing.assert_allclose(
        np.linalg.eigvalsh(rotated.to_dense(space)), np.linalg.eigvalsh(plain.to_dense(space)), atol=1e-12
    )


# -- spin_model: the TOML form ------------------------------------------------

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def xxz_reference(n, delta, hz):
    """Periodic XXZ chain in a longitudinal field, dense, in the full space."""
    bond = np.kron(DENSE["sx"], DENSE["sx"]) + np.kron(DENSE["sy"], DENSE["sy"]) + delta * np.kron(DENSE["sz"], DENSE["sz"])
    h = sum(embed(bond, [i, (i + 1) % n], n) for i in range(n))
    return h - hz * sum(embed(DENSE["sz"], [i], n) for i in range(n))


def ladder_reference(length, j_leg, j_rung, j2):
    """Periodic two-leg ladder (site 2x + leg): legs, rungs and plaquette diagonals."""
    n = 2 * length
    ss = sum(np.kron(DENSE[a], DENSE[a]) for a in ("sx", "sy", "sz"))
    h = np.zeros((2**n, 2**n), dtype=complex)
    for x in range(length):
        for leg in (0, 1):
            h += j_leg * embed(ss, [2 * x + leg, 2 * ((x + 1) % length) + leg], n)
            h += j2 * embed(ss, [2 * x + leg, 2 * ((x + 1) % length) + 1 - leg], n)
        h += j_rung * embed(ss, [2 * x, 2 * x + 1], n)
    return h


def exact_cli(path):
    r = invoke("exact", path)
    assert r.exit_code == 0, r.output
    return float(r.output.split("E0 = ")[1].split()[0])


def test_toml_xxz_chain_exact_equals_independent_ed():
    e0 = exact_cli("examples/xxz_chain_field.toml")
    assert e0 == pytest.approx(np.linalg.eigvalsh(xxz_reference(8, 0.5, 0.3))[0], abs=1e-8)


def test_toml_ladder_exact_equals_independent_ed():
    e0 = exact_cli("examples/j1j2_ladder.toml")
    ref = restrict(ladder_reference(4, 1.0, 0.5, 0.5), 8, 0.0)
    assert e0 == pytest.approx(np.linalg.eigvalsh(ref)[0], abs=1e-8)


def test_spin_model_terms_build_the_expected_operator():
    lattice = ns.Chain(5, pbc=False)
    space = ns.SpinHalf(5)
    terms = [
        {"op": "SxSx + SySy + 0.5 SzSz", "bonds": 1, "coupling": 1.0},
        {"op": "Sz", "sites": "all", "coupling": -0.3},
        {"op": "SzSz", "sites": [[0, 3], [1, 2]], "coupling": 0.2},
        {"op": "X", "sites": [4]},
    ]
    h = ns.SpinModel(space, lattice, terms)
    want = sum(sx(i) * sx(i + 1) + sy(i) * sy(i + 1) + 0.5 * sz(i) * sz(i + 1) for i in range(4))
    want = want - 0.3 * sum(sz(i) for i in range(5)) + 0.2 * (sz(0) * sz(3) + sz(1) * sz(2)) + X(4)
    assert h.to_operator() == want and h.marshall_sites == ()
    rotated = ns.SpinModel(space, lattice, terms, marshall_sign=True)
    assert rotated.marshall_sites == (1, 3) and rotated.to_operator() == want.rotate_z((1, 3))
    np.testing.assert_allclose(ns.to_dense(h), want.to_dense(space), atol=1e-14)


def test_spin_model_bond_colors_select_legs_and_rungs():
    lattice = ns.Ladder(3)
    space = ns.SpinHalf(6)
    legs = ns.SpinModel(space, lattice, [{"op": "ZZ", "bonds": 1, "color": 0}]).to_operator()
    rungs = ns.SpinModel(space, lattice, [{"op": "ZZ", "bonds": 1, "color": 1}]).to_operator()
    assert rungs == sum(Z(2 * x) * Z(2 * x + 1) for x in range(3))
    assert legs == sum(Z(2 * x + leg) * Z(2 * ((x + 1) % 3) + leg) for x in range(3) for leg in (0, 1))


@pytest.mark.parametrize(
    "terms, message",
    [
        ('[{ op = "SqSq", bonds = 1 }]', "unknown operator symbol 'Sq'"),
        ('[{ op = "SpSp", bonds = 1 }]', "not Hermitian"),
        ('[{ op = "SzSz", sites = [[0, 9]] }]', "site 9 is out of range for 6 sites"),
        ('[{ op = "SzSzSz", bonds = 1 }]', "has 3 symbol(s) but acts on 2 site(s)"),
        ('[{ op = "SzSz", bonds = 1, colour = 1 }]', "unknown field(s) colour"),
        ('[{ op = "SzSz", bonds = 1, sites = "all" }]', "exactly one of 'bonds'"),
        ('[{ op = "Sx", sites = "all" }]', "does not conserve S^z"),
    ],
)
def test_spin_model_bad_input_one_line_exit_2(tmp_path, terms, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        "[lattice]\nname = \"chain\"\nlength = 6\n[space]\nname = \"spin_half\"\ntotal_sz = 0.0\n"
        f"[system]\nname = \"spin_model\"\nterms = {terms}\n"
    )
    r = invoke("exact", cfg)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if "error" in line]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("example", ["examples/xxz_chain_field.toml", "examples/j1j2_ladder.toml"])
def test_toml_models_train_to_the_exact_energy(tmp_path, example):
    out = tmp_path / "run"
    r = invoke("run", example, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    result = json.loads((out / "result.json").read_text())
    e0 = exact_cli(example)
    assert abs(result["energy"]["mean"] - e0) / abs(e0) < 1e-3, result
