import itertools

import jax
import pytest

import nqs_spins as ns


def reference_bonds(extent, pbc, shell):
    """Bonds from coordinates: (i, j) is a bond when some displacement of the
    shell maps site i onto site j (wrapped for PBC)."""
    coords = list(itertools.product(*[range(n) for n in extent]))
    out = set()
    for (i, ci), (j, cj) in itertools.combinations(enumerate(coords), 2):
        for d in shell:
            for sign in (1, -1):
                t = tuple(c + sign * dd for c, dd in zip(ci, d))
                if pbc:
                    t = tuple(c % n for c, n in zip(t, extent))
                if t == cj:
                    out.add((i, j))
    return tuple(sorted(out))


CHAIN_SHELLS = {1: [(1,)], 2: [(2,)]}
SQUARE_SHELLS = {1: [(1, 0), (0, 1)], 2: [(1, 1), (1, -1)]}


@pytest.mark.parametrize("length", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("pbc", [True, False])
@pytest.mark.parametrize("order", [1, 2])
def test_chain_edges(length, pbc, order):
    chain = ns.Chain(length, pbc=pbc)
    assert chain.n_sites == length
    assert chain.edges(order) == reference_bonds((length,), pbc, CHAIN_SHELLS[order])


@pytest.mark.parametrize("extent", [(2, 2), (2, 3), (3, 3), (4, 4), (3, 5)])
@pytest.mark.parametrize("pbc", [True, False])
@pytest.mark.parametrize("order", [1, 2])
def test_square_edges(extent, pbc, order):
    sq = ns.Square(extent[0], pbc=pbc, width=extent[1])
    assert sq.n_sites == extent[0] * extent[1]
    assert sq.edges(order) == reference_bonds(extent, pbc, SQUARE_SHELLS[order])


def test_bond_counts():
    assert len(ns.Square(4).edges(1)) == 32
    assert len(ns.Square(4).edges(2)) == 32
    assert len(ns.Square(4, pbc=False).edges(1)) == 24
    assert len(ns.Square(4, pbc=False).edges(2)) == 18
    assert len(ns.Square(2).edges(1)) == 4  # PBC duplicates collapse
    assert len(ns.Square(2).edges(2)) == 2
    assert len(ns.Chain(16).edges(1)) == 16
    assert len(ns.Chain(16, pbc=False).edges(1)) == 15
    assert len(ns.Chain(16).edges(2)) == 16
    assert ns.Chain(2).edges(1) == ((0, 1),)
    assert ns.Chain(2).edges(2) == ()  # wraps onto itself
    for i, j in ns.Square(4).edges(1) + ns.Square(4).edges(2):
        assert isinstance(i, int) and isinstance(j, int) and i < j


def test_square_numbering_is_row_major():
    sq = ns.Square(3, width=4)
    assert sq.n_sites == 12
    assert sq.site(1, 2) == 1 * 4 + 2
    assert tuple(sq.positions[6]) == (1, 2)
    assert (0, 1) in sq.edges(1)  # (0,0)-(0,1): y is the fast index
    assert (0, 4) in sq.edges(1)  # (0,0)-(1,0)
    assert ns.Square(4).width == 4


def test_sublattice():
    chain = ns.Chain(6)
    assert [chain.sublattice(i) for i in range(6)] == [0, 1, 0, 1, 0, 1]
    sq = ns.Square(4)
    for i, j in sq.edges(1):
        assert sq.sublattice(i) != sq.sublattice(j)
    for i, j in sq.edges(2):
        assert sq.sublattice(i) == sq.sublattice(j)
    assert ns.Chain(5, pbc=False).sublattice(4) == 0
    assert ns.Square(3, pbc=False).is_bipartite


@pytest.mark.parametrize("lattice", [ns.Chain(5), ns.Square(3), ns.Square(2, width=3)])
def test_non_bipartite_sublattice_raises(lattice):
    assert not lattice.is_bipartite
    with pytest.raises(ValueError, match="not bipartite"):
        lattice.sublattice(0)


def test_lattice_is_static_pytree():
    chain = ns.Chain(4)
    assert jax.tree.leaves(chain) == []
    assert jax.jit(lambda c: c)(chain) == chain


def test_lattice_validation():
    with pytest.raises(ValueError):
        ns.Chain(0)
    with pytest.raises(TypeError):
        ns.Chain(4.5)
    with pytest.raises(ValueError, match="orders"):
        ns.Square(4).edges(4)
