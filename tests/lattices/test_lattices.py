import itertools

import jax
import pytest

import nqs_core as nc
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
    chain = nc.Chain(length, pbc=pbc)
    assert chain.n_sites == length
    assert chain.edges(order) == reference_bonds((length,), pbc, CHAIN_SHELLS[order])


@pytest.mark.parametrize("extent", [(2, 2), (2, 3), (3, 3), (4, 4), (3, 5)])
@pytest.mark.parametrize("pbc", [True, False])
@pytest.mark.parametrize("order", [1, 2])
def test_square_edges(extent, pbc, order):
    sq = nc.Square(extent[0], pbc=pbc, width=extent[1])
    assert sq.n_sites == extent[0] * extent[1]
    assert sq.edges(order) == reference_bonds(extent, pbc, SQUARE_SHELLS[order])


def test_bond_counts():
    assert len(nc.Square(4).edges(1)) == 32
    assert len(nc.Square(4).edges(2)) == 32
    assert len(nc.Square(4, pbc=False).edges(1)) == 24
    assert len(nc.Square(4, pbc=False).edges(2)) == 18
    assert len(nc.Square(2).edges(1)) == 4  # PBC duplicates collapse
    assert len(nc.Square(2).edges(2)) == 2
    assert len(nc.Chain(16).edges(1)) == 16
    assert len(nc.Chain(16, pbc=False).edges(1)) == 15
    assert len(nc.Chain(16).edges(2)) == 16
    assert nc.Chain(2).edges(1) == ((0, 1),)
    assert nc.Chain(2).edges(2) == ()  # wraps onto itself
    for i, j in nc.Square(4).edges(1) + nc.Square(4).edges(2):
        assert isinstance(i, int) and isinstance(j, int) and i < j


def test_square_numbering_is_row_major():
    sq = nc.Square(3, width=4)
    assert sq.n_sites == 12
    assert sq.site(1, 2) == 1 * 4 + 2
    assert tuple(sq.positions[6]) == (1, 2)
    assert (0, 1) in sq.edges(1)  # (0,0)-(0,1): y is the fast index
    assert (0, 4) in sq.edges(1)  # (0,0)-(1,0)
    assert nc.Square(4).width == 4


def test_sublattice():
    chain = nc.Chain(6)
    assert [chain.sublattice(i) for i in range(6)] == [0, 1, 0, 1, 0, 1]
    sq = nc.Square(4)
    for i, j in sq.edges(1):
        assert sq.sublattice(i) != sq.sublattice(j)
    for i, j in sq.edges(2):
        assert sq.sublattice(i) == sq.sublattice(j)
    assert nc.Chain(5, pbc=False).sublattice(4) == 0
    assert nc.Square(3, pbc=False).is_bipartite


@pytest.mark.parametrize("lattice", [nc.Chain(5), nc.Square(3), nc.Square(2, width=3)])
def test_non_bipartite_sublattice_raises(lattice):
    assert not lattice.is_bipartite
    with pytest.raises(ValueError, match="not bipartite"):
        lattice.sublattice(0)


def test_lattice_is_static_pytree():
    chain = nc.Chain(4)
    assert jax.tree.leaves(chain) == []
    assert jax.jit(lambda c: c)(chain) == chain


def test_lattice_validation():
    with pytest.raises(ValueError):
        nc.Chain(0)
    with pytest.raises(TypeError):
        nc.Chain(4.5)
    with pytest.raises(ValueError, match="orders"):
        nc.Square(4).edges(4)


# -- the Bravais lattices with a basis, the ladder and the graph ----------------------------

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

import nqs_core  # noqa: E402

S3 = np.sqrt(3.0)
#: Hand-written geometry, independent of the library: primitive vectors, basis
#: offsets, and the distances of the first three neighbour shells.
GEOMETRY = {
    "square": (((1, 0), (0, 1)), ((0, 0),), (1.0, np.sqrt(2.0), 2.0)),
    "triangular": (((1, 0), (0.5, S3 / 2)), ((0, 0),), (1.0, S3, 2.0)),
    "honeycomb": (((S3, 0), (S3 / 2, 1.5)), ((0, 0), (S3 / 2, 0.5)), (1.0, S3, 2.0)),
    "kagome": (((2, 0), (1, S3)), ((0, 0), (1, 0), (0.5, S3 / 2)), (1.0, S3, 2.0)),
}
CLASSES = {"square": nc.Square, "triangular": nc.Triangular, "honeycomb": nc.Honeycomb, "kagome": nc.Kagome}


def hand_positions(name, length, width):
    """Positions in the documented numbering: cell (x, y) row-major, then basis site."""
    (a1, a2), offsets, _ = GEOMETRY[name]
    return np.array(
        [np.add(np.multiply(x, a1) + np.multiply(y, a2), o) for x in range(length) for y in range(width) for o in offsets]
    )


def brute_force_bonds(pos, supercell, distance):
    """Pairs i < j with some periodic image of r_j at `distance` from r_i (all images
    `m_1 L_1 + m_2 L_2`, |m| <= 2, of the periodic supercell vectors)."""
    images = [np.zeros(pos.shape[1])]
    if supercell:
        images = [m1 * np.asarray(supercell[0]) + m2 * np.asarray(supercell[1]) for m1 in range(-2, 3) for m2 in range(-2, 3)]
    dist = np.linalg.norm(pos[None, :, None] + np.asarray(images)[None, None] - pos[:, None, None], axis=-1)
    hit = np.any(np.abs(dist - distance) < 1e-9, axis=-1)
    return tuple((int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(hit, 1))))


PLANAR_CASES = [
    (name, length, width, pbc)
    for name in GEOMETRY
    for (length, width) in [(2, 2), (3, 3), (4, 2), (4, 4), (2, 5)]
    for pbc in (True, False)
]


@pytest.mark.parametrize("name,length,width,pbc", PLANAR_CASES)
def test_planar_positions_and_bonds_from_geometry(name, length, width, pbc):
    lat = CLASSES[name](length, pbc=pbc, width=width)
    (a1, a2), offsets, shells = GEOMETRY[name]
    pos = hand_positions(name, length, width)
    assert lat.n_sites == length * width * len(offsets)
    np.testing.assert_allclose(lat.positions, pos, atol=1e-12)
    supercell = (np.multiply(length, a1), np.multiply(width, a2)) if pbc else None
    for order, distance in enumerate(shells, start=1):
        assert lat.edges(order) == brute_force_bonds(pos, supercell, distance), order
        assert lat.edge_colors(order) == (0,) * len(lat.edges(order))


def obc_count(length, width, displacements):
    """Bonds of a rhombus of cells with open boundaries: a cell displacement
    (dx, dy) fits (length - |dx|) (width - |dy|) times."""
    return sum(max(length - abs(dx), 0) * max(width - abs(dy), 0) for dx, dy in displacements)


# hand counts. Triangular: order 1 = 3 N with PBC (6 neighbours), open: cell displacements
# (1,0), (0,1), (-1,1); order 2 (1,1), (2,-1), (-1,2); order 3 (2,0), (0,2), (2,-2).
# Honeycomb (N = 2 L W): order 1 = 3 N / 2; order 2 = 3 N; order 3 = 3 N / 2.
# Kagome (N = 3 L W): order 1 = 2 N; order 2 = 2 N; order 3 = 3 N.
HAND_COUNTS = {
    # (lattice, L, W, pbc): (sites, order 1, order 2, order 3)
    ("triangular", 4, 4, True): (16, 48, 48, 24),  # order 3: (2,0) = -(2,0) on L = 4, half the 48
    ("triangular", 5, 5, True): (25, 75, 75, 75),
    ("triangular", 6, 6, True): (36, 108, 108, 108),
    ("triangular", 3, 3, True): (9, 27, 9, 27),  # order 2: (1,1) ~ (2,-1) ~ (-1,2) mod 3; order 3 = order 1 mod 3
    ("triangular", 3, 3, False): (9, 6 + 6 + 4, 4 + 2 + 2, 3 + 3 + 1),
    ("triangular", 4, 3, False): (12, 9 + 8 + 6, 6 + 4 + 3, 6 + 4 + 2),
    ("honeycomb", 3, 3, True): (18, 27, 54, 27),
    ("honeycomb", 4, 4, True): (32, 48, 96, 48),
    ("honeycomb", 2, 2, True): (8, 12, 12, 4),  # L = 2: +-a_d coincide (order 2); all 3 third neighbours are one site
    # open 3 x 3: 9 bonds in cells + 6 + 6 between them; order 2: (6 + 6 + 4) per sublattice; order 3: 4 + 4 + 4
    ("honeycomb", 3, 3, False): (18, 21, 32, 12),
    # open 2 x 2 honeycomb: 4 A-B bonds inside cells, 2 + 2 between neighbouring cells (8);
    # order 2: A-A and B-B pairs at cell displacements (1,0), (0,1), (1,-1): 2 + 2 + 1 per sublattice (10)
    ("honeycomb", 2, 2, False): (8, 8, 10, 3),
    # kagome order 3 (distance 2): 4 neighbours along the two lines through a site, 2 across hexagons
    ("kagome", 2, 2, True): (12, 24, 24, 18),  # L = 2: the images +-a_d coincide, 2 + 1 neighbours at distance 2
    ("kagome", 3, 3, True): (27, 54, 54, 81),
    ("kagome", 4, 4, True): (48, 96, 96, 144),
    # open 2 x 2 kagome: 4 up-triangles (12 bonds) + 2 + 2 + 1 bonds joining them (orders 2, 3: the geometry test)
    ("kagome", 2, 2, False): (12, 17, None, None),
}


@pytest.mark.parametrize("key", list(HAND_COUNTS), ids=lambda k: "-".join(map(str, k)))
def test_bond_counts_by_hand(key):
    name, length, width, pbc = key
    lat = CLASSES[name](length, pbc=pbc, width=width)
    sites, *orders = HAND_COUNTS[key]
    assert lat.n_sites == sites
    assert [len(lat.edges(k)) if n is not None else None for k, n in zip((1, 2, 3), orders)] == orders


@pytest.mark.parametrize("length,width", [(3, 3), (4, 3), (5, 2), (2, 6)])
def test_open_triangular_counts_by_formula(length, width):
    lat = nc.Triangular(length, pbc=False, width=width)
    shells = [[(1, 0), (0, 1), (-1, 1)], [(1, 1), (2, -1), (-1, 2)], [(2, 0), (0, 2), (2, -2)]]
    assert [len(lat.edges(k)) for k in (1, 2, 3)] == [obc_count(length, width, s) for s in shells]


@pytest.mark.parametrize("length", [2, 3, 4, 6])
@pytest.mark.parametrize("pbc", [True, False])
def test_ladder_legs_and_rungs(length, pbc):
    lat = nc.Ladder(length, pbc=pbc)
    assert lat.n_sites == 2 * length
    edges, colors = lat.edges(1), lat.edge_colors(1)
    legs = {e for e, c in zip(edges, colors) if c == 0}
    rungs = {e for e, c in zip(edges, colors) if c == 1}
    assert rungs == {(2 * x, 2 * x + 1) for x in range(length)}
    wrap = pbc and length > 2  # a ring of 2 has one bond per leg
    hand_legs = {(2 * x + leg, 2 * (x + 1) + leg) for x in range(length - 1) for leg in (0, 1)}
    if wrap:
        hand_legs |= {(leg, 2 * (length - 1) + leg) for leg in (0, 1)}
    assert legs == hand_legs
    assert len(legs) == 2 * (length if wrap else length - 1) and len(rungs) == length
    n_plaquettes = length if wrap else length - 1
    assert len(lat.edges(2)) == 2 * n_plaquettes  # the two diagonals of each plaquette
    assert set(lat.edge_colors(2)) <= {0} and set(lat.edge_colors(3)) <= {0}
    assert lat.is_bipartite == (not pbc or length % 2 == 0)
    np.testing.assert_allclose(lat.positions[2 * 1 + 1], (1.0, 1.0))


def test_honeycomb_sublattice_is_the_basis_site():
    lat = nc.Honeycomb(3)
    assert lat.is_bipartite
    assert [lat.sublattice(i) for i in range(lat.n_sites)] == [0, 1] * 9
    assert not nc.Triangular(4).is_bipartite and not nc.Kagome(2).is_bipartite


def test_site_index_and_cells():
    lat = nc.Kagome(3, width=2)
    assert lat.site(2, 1, basis=2) == 3 * (2 * 2 + 1) + 2
    assert tuple(lat.cell_coordinates[lat.site(2, 1, basis=2)]) == (2, 1)
    assert lat.basis_index[lat.site(2, 1, basis=2)] == 2
    with pytest.raises(ValueError, match="basis site"):
        lat.site(0, 0, basis=3)
    assert nc.Square(3, width=4).site(1, 2) == 6


# -- symmetry groups -----------------------------------------------------------------------


def maps_every_bond(lattice, f):
    """Whether the site map f sends every bond of every order (with its kind) to a bond."""
    orders = (1,) if isinstance(lattice, nc.Graph) else (1, 2, 3)
    for order in orders:
        bonds = dict(zip(lattice.edges(order), lattice.edge_colors(order)))
        image = {tuple(sorted((int(f[i]), int(f[j])))): c for (i, j), c in bonds.items()}
        if image != bonds:
            return False
    return True


def closes(maps):
    group = {m.tobytes() for m in maps}
    return len(group) == len(maps) and all(a[b].tobytes() in group for a in maps for b in maps)


GROUP_CASES = [
    # lattice, |translations|, |point group|
    (nc.Chain(6), 6, 2),
    (nc.Chain(5, pbc=False), 1, 2),
    (nc.Square(4), 16, 8),
    (nc.Square(3, pbc=False), 1, 8),
    (nc.Square(4, width=2), 8, 4),
    (nc.Triangular(3), 9, 12),
    (nc.Triangular(4), 16, 12),
    (nc.Triangular(3, pbc=False), 1, 4),
    (nc.Triangular(4, width=2), 8, 4),
    (nc.Honeycomb(2), 4, 12),
    (nc.Honeycomb(3), 9, 12),
    (nc.Honeycomb(2, pbc=False), 1, 4),
    (nc.Kagome(2), 4, 12),
    (nc.Kagome(3), 9, 12),
    (nc.Kagome(2, pbc=False), 1, 2),  # the rhombus of up-triangles: only the mirror along its long diagonal
    (nc.Ladder(4), 4, 4),
    (nc.Ladder(3, pbc=False), 1, 4),
    (nc.Graph([[0, 1], [1, 2]]), 1, 1),
]


@pytest.mark.parametrize("lattice,n_t,n_p", GROUP_CASES, ids=repr)
def test_groups_map_bonds_and_close(lattice, n_t, n_p):
    trans, point = lattice.translations(), lattice.point_group()
    assert trans.shape == (n_t, lattice.n_sites) and point.shape == (n_p, lattice.n_sites)
    for maps in (trans, point):
        assert np.all(maps[0] == np.arange(lattice.n_sites))
        assert np.all(np.sort(maps, axis=1) == np.arange(lattice.n_sites))
        assert all(maps_every_bond(lattice, f) for f in maps)
        assert closes(maps)
    space_group = np.unique(np.stack([t[p] for t in trans for p in point]), axis=0)
    assert closes(space_group)
    small = isinstance(lattice, nc.Graph) or min(lattice.extent) <= 2  # e.g. a mirror equal to a translation by 1 of 2
    assert len(space_group) == n_t * n_p or (small and len(space_group) < n_t * n_p)


def test_bond_check_catches_a_wrong_map():
    """The check above fails for maps that are not symmetries (it can fail)."""
    lat = nc.Honeycomb(2)
    swap = np.arange(lat.n_sites)
    swap[[0, 2]] = [2, 0]  # two A sites exchanged: a graph automorphism of order 1 only
    assert not maps_every_bond(lat, swap)
    ladder = nc.Ladder(2, pbc=False)  # a 2 x 2 plaquette; the 90-degree rotation swaps legs and rungs
    rotation = np.array([1, 3, 0, 2])
    assert maps_every_bond(nc.Square(2, pbc=False), rotation)
    assert not maps_every_bond(ladder, rotation)
    assert len(ladder.point_group()) == 4 and len(nc.Square(2, pbc=False).point_group()) == 8


def test_point_group_elements_are_the_documented_ones():
    sq = nc.Square(4)
    mats = sq.point_group_matrices()
    np.testing.assert_allclose(mats[1], [[0, -1], [1, 0]], atol=1e-12)  # counter-clockwise 90 degrees
    np.testing.assert_allclose(sq.point_group_centre, [1.5, 1.5])
    centred = sq.positions - sq.point_group_centre
    for f, m in zip(sq.point_group(), mats):
        np.testing.assert_allclose(centred[f], centred @ m.T, atol=1e-12)
    tri = nc.Triangular(4)
    angles = [np.degrees(np.arctan2(m[1, 0], m[0, 0])) % 360 for m in tri.point_group_matrices()[:6]]
    np.testing.assert_allclose(angles, [0, 60, 120, 180, 240, 300], atol=1e-9)
    hexagon = nc.Honeycomb(3).point_group_centre  # C6 about a hexagon centre, not a site
    assert np.min(np.linalg.norm(nc.Honeycomb(3).positions - hexagon, axis=1)) == pytest.approx(1.0)


def test_translations_within_a_patch():
    sq = nc.Square(4)
    t = sq.translations(within=2)
    assert np.all(t[:, sq.site(0, 0)] == [sq.site(0, 0), sq.site(0, 1), sq.site(1, 0), sq.site(1, 1)])
    assert len(nc.Ladder(6).translations(step=2)) == 3
    assert len(nc.Square(4, pbc=False).translations()) == 1
    hc = nc.Honeycomb(2)
    assert np.all(hc.basis_index[hc.translations()] == hc.basis_index)  # the basis site is kept


# -- displacements and momenta ------------------------------------------------------------------


@pytest.mark.parametrize("lattice", [nc.Chain(5), nc.Chain(4), nc.Square(4), nc.Triangular(3), nc.Honeycomb(2), nc.Kagome(2), nc.Ladder(4)], ids=repr)
def test_site_displacements_are_minimum_images(lattice):
    d = lattice.site_displacements()
    pos = lattice.positions
    n = lattice.n_sites
    assert d.shape == (n, n, lattice.ndim)
    supercell = lattice.supercell_vectors[list(np.flatnonzero(lattice.periodic))]
    shifts = [sum((m * v for m, v in zip(ms, supercell)), np.zeros(lattice.ndim)) for ms in itertools.product(range(-2, 3), repeat=len(supercell))]
    images = pos[None, :, None] - pos[:, None, None] + np.asarray(shifts)[None, None]  # (i, j, image, ndim)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), np.min(np.linalg.norm(images, axis=-1), axis=-1), atol=1e-12)
    assert np.all(np.min(np.linalg.norm(images - d[:, :, None], axis=-1), axis=-1) < 1e-12)  # d is one of the images
    # each bond of order 1 is a displacement of length 1 (every lattice here has bond length 1)
    for i, j in lattice.edges(1):
        assert np.linalg.norm(d[i, j]) == pytest.approx(1.0)


def test_displacement_ties_have_one_representative():
    d = nc.Chain(4).site_displacements()[..., 0]
    assert d[0, 2] == d[2, 0] == -2.0  # half way round: one representative of the class
    assert d[0, 1] == 1.0 and d[1, 0] == -1.0 and d[0, 3] == -1.0
    np.testing.assert_allclose(nc.Chain(4, pbc=False).site_displacements()[0, 3], [3.0])


@pytest.mark.parametrize("lattice", [nc.Chain(6), nc.Square(4), nc.Square(4, width=2), nc.Triangular(3), nc.Honeycomb(3), nc.Kagome(2), nc.Ladder(4)], ids=repr)
def test_momenta_fit_the_periodic_cluster(lattice):
    k = lattice.momenta()
    assert k.shape == (lattice.n_cells, lattice.ndim)
    np.testing.assert_allclose(k[0], 0.0)
    for d in np.flatnonzero(lattice.periodic):
        phase = k @ lattice.supercell_vectors[d] / (2 * np.pi)
        np.testing.assert_allclose(phase, np.round(phase), atol=1e-10)  # k . L_d = 2 pi n
    # distinct modulo the reciprocal lattice: exp(i k . R) differs on the cells
    waves = np.exp(1j * (lattice.cell_coordinates[:: lattice.n_basis] @ lattice.basis_vectors) @ k.T)
    np.testing.assert_allclose(waves.conj().T @ waves, lattice.n_cells * np.eye(lattice.n_cells), atol=1e-9)


def test_square_momenta_are_the_usual_grid():
    k = nc.Square(4).momenta()
    assert {tuple(np.round(v / (np.pi / 2)).astype(int)) for v in k} == {(a, b) for a in (-2, -1, 0, 1) for b in (-2, -1, 0, 1)}
    k_tri = nc.Triangular(6).momenta()  # folded into the hexagonal Brillouin zone: |k| <= 4 pi / 3
    assert np.max(np.linalg.norm(k_tri, axis=1)) == pytest.approx(4 * np.pi / 3)


# -- the graph lattice ----------------------------------------------------------------------------


def test_graph_edges_colors_and_positions():
    g = nc.Graph([[2, 1], [0, 1], [3, 0]], colors=[1, 0, 2])
    assert g.n_sites == 4
    assert g.edges() == ((0, 1), (0, 3), (1, 2))
    assert g.edge_colors() == (0, 2, 1)  # follow their edges through the sorting
    assert g.positions is None and g.ndim == 0
    assert g.is_bipartite and [g.sublattice(i) for i in range(4)] == [0, 1, 0, 1]
    assert nc.Graph([[0, 1]], n_sites=3).n_sites == 3
    with pytest.raises(ValueError, match="no positions"):
        g.site_displacements()
    with pytest.raises(ValueError, match="Brillouin"):
        g.momenta()
    with pytest.raises(ValueError, match="order 1"):
        g.edges(2)
    tri = nc.Graph([[0, 1], [1, 2], [0, 2]], positions=[[0, 0], [1, 0], [0.5, 0.5]])
    assert not tri.is_bipartite and tri.ndim == 2
    np.testing.assert_allclose(tri.site_displacements()[0, 1], [1.0, 0.0])
    assert jax.tree.leaves(tri) == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"edges": [[0, 0]]}, "itself"),
        ({"edges": [[0, 1], [1, 0]]}, "twice"),
        ({"edges": [[0, 1, 2]]}, "pairs"),
        ({"edges": [[0, -1]]}, ">= 0"),
        ({"edges": [[0, 5]], "n_sites": 3}, "out of range"),
        ({"edges": [[0, 1]], "colors": [0, 1]}, "one color per edge"),
        ({"edges": [[0, 1]], "colors": [-1]}, ">= 0"),
        ({"edges": [[0, 1]], "positions": [[0.0], [1.0], [2.0]], "n_sites": 2}, "one position per site"),
        ({"edges": [[0, 1], [1, 10**10]]}, r"names site 10000000000, beyond the largest lattice nqs supports \(1048576 sites\)"),
        ({"edges": [[0, 1]], "n_sites": 2**20 + 1}, "Graph lattice of 1048577 sites is larger than nqs supports"),
    ],
)
def test_graph_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nc.Graph(**kwargs)


@pytest.mark.parametrize("kwargs", [{"length": 0}, {"length": 3, "width": 0}])
def test_bad_sizes(kwargs):
    for cls in (nc.Triangular, nc.Honeycomb, nc.Kagome):
        with pytest.raises(ValueError, match=">= 1"):
            cls(**kwargs)
    with pytest.raises(ValueError, match=">= 1"):
        nc.Ladder(0)
    with pytest.raises(TypeError, match="pbc"):
        nc.Kagome(2, pbc="yes")
    # beyond AbstractLattice.max_sites: refused before any array of that size exists
    with pytest.raises(ValueError, match="Chain lattice of 10000000000 sites is larger than nqs supports"):
        nc.Chain(10**10)
    with pytest.raises(ValueError, match="Kagome lattice of 3145728 sites"):
        nc.Kagome(1024)
    assert nc.Graph([[0, 1]], n_sites=2**20).n_sites == 2**20  # the limit itself is allowed


def test_lattices_from_toml():
    base = {"run": {"n_steps": 1, "exact_energy": "none"}, "space": {"name": "spin_half"}, "system": {"name": "heisenberg"}}
    cfg = dict(base, lattice={"name": "graph", "edges": [[0, 1], [1, 2], [2, 3], [3, 0]], "colors": [0, 1, 0, 1]})
    calc = nqs_core.build(cfg, exact=False, stop_after="system")
    assert calc["lattice"].edge_colors() == (0, 1, 1, 0)
    for name, fields, n in [("kagome", {"length": 2}, 12), ("ladder", {"length": 3, "pbc": False}, 6), ("honeycomb", {"length": 2, "width": 1}, 4)]:
        calc = nqs_core.build(dict(base, lattice={"name": name, **fields}), exact=False, stop_after="system")
        assert calc["lattice"].n_sites == n == calc["space"].size
    with pytest.raises(Exception, match="itself"):
        nqs_core.build(dict(base, lattice={"name": "graph", "edges": [[1, 1]]}), exact=False, stop_after="lattice")


# -- exact diagonalisation on every lattice, against an independent Hamiltonian ------------------

SX = sp.csr_matrix([[0, 0.5], [0.5, 0]])
SY = sp.csr_matrix([[0, -0.5j], [0.5j, 0]])
SZ = sp.csr_matrix([[0.5, 0], [0, -0.5]])


def kron_heisenberg(n, bonds):
    """H = sum_<ij> S_i . S_j from Kronecker products, site 0 the leftmost factor."""

    def at(op, i):
        return sp.kron(sp.kron(sp.identity(2**i), op), sp.identity(2 ** (n - i - 1)), format="csr")

    h = sp.csr_matrix((2**n, 2**n), dtype=complex)
    for i, j in bonds:
        for s in (SX, SY, SZ):
            h = h + at(s, i) @ at(s, j)
    assert abs(h - h.conj().T).max() < 1e-14
    return spla.eigsh(h.real.tocsr(), k=1, which="SA")[0][0]


ED_CASES = [
    # lattice, its bonds by hand or from the independent geometry above
    (nc.Triangular(2, pbc=False), [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]),
    (nc.Ladder(3, pbc=False), [(0, 2), (2, 4), (1, 3), (3, 5), (0, 1), (2, 3), (4, 5)]),
    (nc.Ladder(5), [(2 * x + leg, 2 * ((x + 1) % 5) + leg) for x in range(5) for leg in (0, 1)] + [(2 * x, 2 * x + 1) for x in range(5)]),
    (nc.Triangular(3), brute_force_bonds(hand_positions("triangular", 3, 3), ((3, 0), (1.5, 1.5 * S3)), 1.0)),
    (nc.Honeycomb(2, width=3), brute_force_bonds(hand_positions("honeycomb", 2, 3), ((2 * S3, 0), (1.5 * S3, 4.5)), 1.0)),
    (nc.Kagome(2), brute_force_bonds(hand_positions("kagome", 2, 2), ((4, 0), (2, 2 * S3)), 1.0)),
    (nc.Kagome(2, pbc=False), brute_force_bonds(hand_positions("kagome", 2, 2), None, 1.0)),
    (nc.Graph([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 2]]), [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)]),
]


@pytest.mark.parametrize("lattice,bonds", ED_CASES, ids=lambda v: repr(v) if isinstance(v, nqs_core.AbstractLattice) else "")
def test_heisenberg_ground_state_on_every_lattice(lattice, bonds):
    assert set(lattice.edges(1)) == {tuple(sorted(b)) for b in bonds}
    n = lattice.n_sites
    assert n <= 12
    system = ns.Heisenberg(ns.SpinHalf(n), lattice, J=1.0)
    e0, _ = ns.ground_state(system)
    assert e0 == pytest.approx(kron_heisenberg(n, bonds), abs=1e-9)


def test_honeycomb_marshall_sign_keeps_the_ground_state():
    lat = nc.Honeycomb(2)
    space = ns.SpinHalf(8, total_sz=0.0)
    plain = ns.ground_state(ns.Heisenberg(space, lat))[0]
    rotated, psi = ns.ground_state(ns.Heisenberg(space, lat, marshall_sign=True))
    assert rotated == pytest.approx(plain, abs=1e-10)
    assert np.all(psi * np.sign(psi[np.argmax(np.abs(psi))]) > -1e-12)  # positive after the rotation
