import functools
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nqs_core
import nqs_spins as ns

# -- an independent dense reference from Kronecker products ------------------
# single-site basis (index 0, 1) = (down, up) = (sigma^z = -1, +1); site 0 is
# the leftmost Kronecker factor, so the basis index is the code of the state.
SX = np.array([[0.0, 1.0], [1.0, 0.0]])
SY = np.array([[0.0, 1.0j], [-1.0j, 0.0]])
SZ = np.diag([-1.0, 1.0])


def site_op(op, i, n, op2=None, j=None):
    """`op` on site `i` (and `op2` on site `j`), identity elsewhere."""
    factors = [np.eye(2)] * n
    factors[i] = op
    if op2 is not None:
        factors[j] = op2
    return functools.reduce(np.kron, factors)


def coords(kind, length, width):
    if kind == "chain":
        return [(x,) for x in range(length)], (length,)
    return [(x, y) for x in range(length) for y in range(width)], (length, width)


SHELLS = {
    "chain": {1: [(1,)], 2: [(2,)]},
    "square": {1: [(1, 0), (0, 1)], 2: [(1, 1), (1, -1)]},
}


def bonds_from_coords(kind, length, width, pbc, order):
    pos, extent = coords(kind, length, width)
    out = set()
    for (i, ci), (j, cj) in itertools.combinations(enumerate(pos), 2):
        for d in SHELLS[kind][order]:
            for s in (1, -1):
                t = tuple(c + s * dd for c, dd in zip(ci, d))
                if pbc:
                    t = tuple(c % n for c, n in zip(t, extent))
                if t == cj:
                    out.add((i, j))
    return sorted(out)


def dense_reference(model, kind, length, width, pbc, couplings, units, marshall, n_up):
    pos, _ = coords(kind, length, width)
    n = len(pos)
    h = np.zeros((2**n, 2**n), dtype=complex)
    if model == "ising":
        J, hx = couplings
        for i, j in bonds_from_coords(kind, length, width, pbc, 1):
            h -= J * site_op(SZ, i, n, SZ, j)
        for i in range(n):
            h -= hx * site_op(SX, i, n)
    else:
        scale = 1.0 if units == "pauli" else 0.25
        orders = [1] if model == "heisenberg" else [1, 2]
        for order, J in zip(orders, couplings):
            for i, j in bonds_from_coords(kind, length, width, pbc, order):
                for p in (SX, SY, SZ):
                    h += scale * J * site_op(p, i, n, p, j)
    assert np.abs(h.imag).max() < 1e-14
    h = h.real
    if marshall:  # U = (-1)^(number of up spins on the odd sublattice)
        odd = np.array([sum(c) % 2 for c in pos])
        bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
        u = (-1.0) ** (bits @ odd)
        h = u[:, None] * h * u[None, :]
    if n_up is not None:
        keep = np.flatnonzero(np.array([bin(c).count("1") for c in range(2**n)]) == n_up)
        h = h[np.ix_(keep, keep)]
    return h


@st.composite
def systems(draw):
    kind = draw(st.sampled_from(["chain", "square"]))
    if kind == "chain":
        length, width = draw(st.integers(2, 8)), None
    else:
        length, width = draw(st.sampled_from([(2, 2), (2, 3), (3, 2), (3, 3)]))
    pbc = draw(st.booleans())
    model = draw(st.sampled_from(["ising", "heisenberg", "j1j2"]))
    coupling = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))
    lattice = ns.Chain(length, pbc=pbc) if kind == "chain" else ns.Square(length, pbc=pbc, width=width)
    n = lattice.n_sites
    units = draw(st.sampled_from(["spin", "pauli"]))
    marshall = model != "ising" and lattice.is_bipartite and draw(st.booleans())
    total_sz = None
    if model != "ising" and draw(st.booleans()):
        total_sz = draw(st.integers(0, n)) - n / 2
    space = ns.SpinHalf(lattice=lattice, total_sz=total_sz)
    if model == "ising":
        couplings = (draw(coupling), draw(coupling))
        system = ns.Ising(space, lattice, J=couplings[0], h=couplings[1])
    elif model == "heisenberg":
        couplings = (draw(coupling),)
        system = ns.Heisenberg(space, lattice, J=couplings[0], units=units, marshall_sign=marshall)
    else:
        couplings = (draw(coupling), draw(coupling))
        system = ns.J1J2(
            space, lattice, J1=couplings[0], J2=couplings[1], units=units, marshall_sign=marshall
        )
    ref = dict(
        model=model,
        kind=kind,
        length=length,
        width=width,
        pbc=pbc,
        couplings=couplings,
        units=units,
        marshall=marshall,
        n_up=space.n_up,
    )
    return system, ref


@settings(max_examples=30, deadline=None)
@given(systems())
def test_dense_matrix_matches_kronecker_reference(case):
    system, ref = case
    np.testing.assert_allclose(ns.to_dense(system), dense_reference(**ref), rtol=0, atol=1e-12)


# -- connected elements -----------------------------------------------------


def make(model, n=6, total_sz=None, **kw):
    lattice = ns.Chain(n)
    space = ns.SpinHalf(lattice=lattice, total_sz=total_sz)
    return {"ising": ns.Ising, "heisenberg": ns.Heisenberg, "j1j2": ns.J1J2}[model](space, lattice, **kw)


@pytest.mark.parametrize("model, width", [("ising", 1 + 6), ("heisenberg", 1 + 6), ("j1j2", 1 + 12)])
def test_connected_shapes_jit_vmap(key, model, width):
    system = make(model)
    assert isinstance(system, nqs_core.AbstractDiscreteHamiltonian)
    assert system.max_conn_size == width
    xs = system.space.random_state(key, 32)
    xps, mels = jax.jit(jax.vmap(system.connected))(xs)
    assert xps.shape == (32, width, 6) and xps.dtype == jnp.float64
    assert mels.shape == (32, width) and mels.dtype == jnp.float64
    for x, xp, m in zip(xs[:4], xps[:4], mels[:4]):
        xp1, m1 = system.connected(x)
        np.testing.assert_array_equal(xp1, xp)
        np.testing.assert_array_equal(m1, m)
    # the system itself goes through jit as an argument
    xp2, m2 = jax.jit(lambda s, x: s.connected(x))(system, xs[0])
    np.testing.assert_array_equal(m2, mels[0])


@pytest.mark.parametrize("model", ["heisenberg", "j1j2"])
def test_padding_repeats_x_with_zero(model):
    system = make(model, total_sz=0.0)
    x = jnp.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    xps, mels = system.connected(x)
    changed = np.any(np.asarray(xps) != np.asarray(x), axis=1)
    # off-diagonal rows either change x with a non-zero element or repeat x with 0
    np.testing.assert_array_equal(changed[1:], np.asarray(mels[1:]) != 0)
    assert not changed[0]
    # a fully polarised state has no off-diagonal elements at all
    up = jnp.ones(6)
    xps, mels = system.connected(up)
    np.testing.assert_array_equal(xps, jnp.broadcast_to(up, xps.shape))
    np.testing.assert_array_equal(mels[1:], 0.0)


def test_ising_elements():
    system = make("ising", J=0.7, h=0.3)
    x = jnp.array([1.0, 1.0, -1.0, 1.0, -1.0, -1.0])
    xps, mels = system.connected(x)
    zz = float(jnp.sum(x * jnp.roll(x, -1)))
    assert float(mels[0]) == pytest.approx(-0.7 * zz)
    np.testing.assert_array_equal(mels[1:], -0.3)
    for i in range(6):
        np.testing.assert_array_equal(xps[1 + i], x.at[i].multiply(-1))


def test_units_scale_by_four(key):
    xs = ns.SpinHalf(6, total_sz=0.0).random_state(key, 8)
    _, m_spin = jax.jit(jax.vmap(make("heisenberg", total_sz=0.0).connected))(xs)
    _, m_pauli = jax.jit(jax.vmap(make("heisenberg", total_sz=0.0, units="pauli").connected))(xs)
    np.testing.assert_allclose(m_pauli, 4 * m_spin, rtol=0, atol=1e-14)


def test_hamiltonian_has_no_float_parameters():
    for system in [make("ising"), make("heisenberg", marshall_sign=True), make("j1j2")]:
        params, _ = nqs_core.parameters(system)
        assert jax.tree.leaves(params) == []


def test_local_energy_of_ground_state_is_constant():
    """The Marshall-rotated Heisenberg ground state is positive; with it as a
    lookup-table wave function the core's local energy equals E0 everywhere."""
    lattice = ns.Square(2, width=4)
    space = ns.SpinHalf(lattice=lattice, total_sz=0.0)
    system = ns.Heisenberg(space, lattice, marshall_sign=True)
    e0, psi = ns.ground_state(system)
    psi = psi * np.sign(psi.sum())
    assert np.all(psi > 0)  # Marshall's theorem
    codes = jnp.asarray(space.all_codes())

    class Table(nqs_core.AbstractAnsatz):
        log_amp: jax.Array

        def __call__(self, x):
            return self.log_amp[jnp.searchsorted(codes, space.states_to_codes(x))]

    table = Table(jnp.log(jnp.asarray(psi)))
    xs = jnp.asarray(space.all_states())
    eloc = eqx.filter_jit(lambda t, xs: jax.vmap(lambda x: system.local_energy(t, x))(xs))(table, xs)
    np.testing.assert_allclose(eloc, e0, rtol=0, atol=1e-9)


# -- errors -------------------------------------------------------------------


def test_inconsistent_sizes_error():
    with pytest.raises(ValueError, match="inconsistent sizes: space has n_sites=6, lattice has 8 sites"):
        ns.Heisenberg(ns.SpinHalf(6), ns.Chain(8))
    with pytest.raises(ValueError, match="inconsistent sizes"):
        ns.Ising(ns.SpinHalf(6), ns.Square(3))
    with pytest.raises(ValueError, match="inconsistent sizes"):
        ns.J1J2(ns.SpinHalf(6), ns.Chain(7))


def test_ising_rejects_fixed_sz():
    with pytest.raises(ValueError, match="does not conserve S\\^z"):
        ns.Ising(ns.SpinHalf(6, total_sz=0.0), ns.Chain(6))


@pytest.mark.parametrize("cls", [ns.Heisenberg, ns.J1J2])
def test_marshall_needs_bipartite(cls):
    lattice = ns.Chain(5)
    with pytest.raises(ValueError, match="bipartite"):
        cls(ns.SpinHalf(lattice=lattice), lattice, marshall_sign=True)
    cls(ns.SpinHalf(lattice=lattice), lattice)  # fine without the sign


def test_bad_units():
    with pytest.raises(ValueError, match="units"):
        make("heisenberg", units="sigma")
