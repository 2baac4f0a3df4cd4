"""Lattices: the chain, square, triangular, honeycomb, kagome and ladder Bravais
lattices (geometry and symmetries from `AbstractBravaisLattice`), and a
general graph from an explicit edge list."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ._lattice import AbstractBravaisLattice, AbstractLattice
from ._validate import check_int

_as_int = check_int
_SQRT3 = float(np.sqrt(3.0))


def _check_pbc(pbc) -> None:
    if not isinstance(pbc, (bool, np.bool_)):
        raise TypeError(f"pbc must be a bool (true or false), got {pbc!r}")


class _AbstractPlanar(AbstractBravaisLattice):
    """A `length` x `width` cluster of a two-dimensional Bravais lattice with the
    same boundary in both directions and one kind of bond (private base)."""

    length: int = eqx.field(static=True)
    pbc: bool = eqx.field(static=True)
    width: int = eqx.field(static=True)

    def __init__(self, length: int, pbc: bool = True, width: int | None = None):
        self.length = length
        self.pbc = pbc
        self.width = length if width is None else width

    def __check_init__(self):
        _as_int("length", self.length)
        _as_int("width", self.width)
        _check_pbc(self.pbc)

    @property
    def extent(self) -> tuple[int, int]:
        """`(length, width)` unit cells."""
        return (self.length, self.width)

    @property
    def periodic(self) -> tuple[bool, bool]:
        """`(pbc, pbc)`."""
        return (bool(self.pbc), bool(self.pbc))

    def _bond_kind(self, vector) -> int:
        return 0


class Chain(AbstractBravaisLattice):
    """A one-dimensional chain of `length` sites, numbered `0 .. length - 1`, at `x = i`.

    Neighbours of order `k` (1 to 3) are the pairs `(i, i + k)` (wrapped around
    with periodic boundaries): order 1 gives `length` bonds with PBC (for
    `length >= 3`) and `length - 1` with OBC. Translations: the `length` cyclic
    shifts (PBC); point group: the mirror `x -> length - 1 - x`.

    **Arguments:**

    - `length`: number of sites.
    - `pbc`: periodic boundary conditions (default `True`).
    """

    length: int = eqx.field(static=True)
    pbc: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        _as_int("length", self.length)
        _check_pbc(self.pbc)

    @property
    def extent(self) -> tuple[int]:
        return (self.length,)

    @property
    def periodic(self) -> tuple[bool]:
        return (bool(self.pbc),)

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.eye(1)

    @property
    def site_offsets(self) -> np.ndarray:
        return np.zeros((1, 1))

    def _bond_kind(self, vector) -> int:
        return 0


class Square(_AbstractPlanar):
    """A rectangular patch of the square lattice, `length` x `width` sites.

    Site `(x, y)` with `0 <= x < length`, `0 <= y < width` (at position `(x, y)`)
    has index `i = x * width + y` (row-major). Order 1 bonds join `(x, y)` to
    `(x + 1, y)` and `(x, y + 1)`; order 2 bonds are the diagonals
    `(x + 1, y + 1)` and `(x + 1, y - 1)`; order 3 bonds are at distance 2
    along an axis. A 4 x 4 periodic lattice has 32 bonds of order 1 and 32 of
    order 2. Point group: C4v for `length = width`, C2v otherwise.

    **Arguments:**

    - `length`: number of sites along `x`.
    - `pbc`: periodic boundary conditions in both directions (default `True`).
    - `width`: number of sites along `y` (default: `length`, a square).
    """

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.eye(2)

    @property
    def site_offsets(self) -> np.ndarray:
        return np.zeros((1, 2))


class Triangular(_AbstractPlanar):
    """A `length` x `width` rhombus of the triangular lattice (bond length 1).

    Primitive vectors `a_1 = (1, 0)`, `a_2 = (1/2, sqrt(3)/2)`; the site of cell
    `(x, y)` is at `x a_1 + y a_2` and has index `x * width + y`. Every site has
    6 neighbours of order 1 (distance 1), 6 of order 2 (sqrt 3) and 6 of order
    3 (distance 2); with PBC the cluster has `3 N` bonds of order 1, 2, 3 when
    both sizes are at least 3, 4, 5 respectively (smaller ones wrap images onto
    each other). Point group: C6v about a site for
    `length = width` with PBC; smaller (C2v, C2, ...) otherwise (see the
    lattice reference).

    **Arguments:**

    - `length`: unit cells along `a_1`.
    - `pbc`: periodic boundary conditions in both directions (default `True`).
    - `width`: unit cells along `a_2` (default: `length`).
    """

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.array([[1.0, 0.0], [0.5, _SQRT3 / 2]])

    @property
    def site_offsets(self) -> np.ndarray:
        return np.zeros((1, 2))


class Honeycomb(_AbstractPlanar):
    """A `length` x `width` rhombus of honeycomb cells, two sites per cell (bond length 1).

    Primitive vectors `a_1 = (sqrt 3, 0)`, `a_2 = (sqrt 3 / 2, 3/2)`; basis site
    A (`b = 0`) at the cell origin and B (`b = 1`) at `(a_1 + a_2) / 3`. Site
    `2 (x * width + y) + b`. Order 1 bonds join A and B (3 per site), order 2
    bonds the same sublattice (6 per site, distance sqrt 3), order 3 are the
    A-B bonds across a hexagon (3 per site, distance 2). Bipartite:
    `sublattice(i) = b`. Point group: C6v about a hexagon centre for
    `length = width` with PBC.

    **Arguments:**

    - `length`: unit cells along `a_1`.
    - `pbc`: periodic boundary conditions in both directions (default `True`).
    - `width`: unit cells along `a_2` (default: `length`).
    """

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.array([[_SQRT3, 0.0], [_SQRT3 / 2, 1.5]])

    @property
    def site_offsets(self) -> np.ndarray:
        return np.array([[0.0, 0.0], [_SQRT3 / 2, 0.5]])


class Kagome(_AbstractPlanar):
    """A `length` x `width` rhombus of kagome cells, three sites per cell (bond length 1).

    Primitive vectors `a_1 = (2, 0)`, `a_2 = (1, sqrt 3)`; basis sites at `0`,
    `a_1 / 2` and `a_2 / 2` (`b = 0, 1, 2`, the corners of an up-triangle).
    Site `3 (x * width + y) + b`. Every site has 4 neighbours of order 1
    (distance 1), 4 of order 2 (sqrt 3) and 6 of order 3 (distance 2: 4 along
    the two lines through the site, 2 across the hexagons). Point group: C6v about a hexagon centre for `length = width`
    with PBC.

    **Arguments:**

    - `length`: unit cells along `a_1`.
    - `pbc`: periodic boundary conditions in both directions (default `True`).
    - `width`: unit cells along `a_2` (default: `length`).
    """

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.array([[2.0, 0.0], [1.0, _SQRT3]])

    @property
    def site_offsets(self) -> np.ndarray:
        return np.array([[0.0, 0.0], [1.0, 0.0], [0.5, _SQRT3 / 2]])


#: Bond kinds of the ladder.
#: `Ladder.edge_colors` of a leg bond.
LEG = 0
#: `Ladder.edge_colors` of a rung bond.
RUNG = 1


class Ladder(AbstractBravaisLattice):
    """A two-leg ladder of `length` rungs, `2 * length` sites.

    Site `(x, leg)` (`0 <= x < length`, `leg` 0 or 1, at position `(x, leg)`)
    has index `2 x + leg`. Order 1 bonds are the legs `(x, leg)-(x + 1, leg)`
    (kind `LEG = 0` in `edge_colors`) and the rungs `(x, 0)-(x, 1)` (kind
    `RUNG = 1`); order 2 the diagonals of the plaquettes (kind 0); order 3 the
    legs to the second neighbour (kind 0). `pbc` closes the legs into rings
    (the rung direction is always open). Point group: C2v (the two mirrors).

    **Arguments:**

    - `length`: number of rungs (sites per leg).
    - `pbc`: periodic boundary conditions along the legs (default `True`).
    """

    length: int = eqx.field(static=True)
    pbc: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        _as_int("length", self.length)
        _check_pbc(self.pbc)

    @property
    def extent(self) -> tuple[int, int]:
        return (self.length, 2)

    @property
    def periodic(self) -> tuple[bool, bool]:
        return (bool(self.pbc), False)

    @property
    def basis_vectors(self) -> np.ndarray:
        return np.eye(2)

    @property
    def site_offsets(self) -> np.ndarray:
        return np.zeros((1, 2))

    def _bond_kind(self, vector) -> int:
        return RUNG if abs(vector[0]) < 1e-9 else LEG


class Graph(AbstractLattice):
    """A general lattice from an explicit edge list (`[lattice] name = "graph"`).

    Sites `0 .. n_sites - 1`; the bonds `edges` are the only neighbour order
    (`edges(2)` raises). Bonds are stored sorted as pairs `(i, j)` with
    `i < j`; `edge_colors()` gives their kinds in that order. Without
    `positions` the graph has no geometry (`positions` is `None`, and
    displacements and momenta raise); it has no translations or point group
    (identity only).

    **Arguments:**

    - `edges`: the bonds, a list of pairs `[[0, 1], [1, 2], ...]` of distinct sites.
    - `colors`: bond kinds (non-negative integers), one per bond in the order
      of `edges` (default: all 0).
    - `positions`: coordinates of every site, `[[x, y], ...]` (default: none).
    - `n_sites`: number of sites (default: the largest site in `edges` plus
      one, or the number of `positions`).
    """

    bonds: tuple[tuple[int, int], ...] = eqx.field(static=True)
    colors: tuple[int, ...] = eqx.field(static=True)
    coordinates: tuple[tuple[float, ...], ...] | None = eqx.field(static=True)
    size: int = eqx.field(static=True)

    def __init__(
        self,
        edges: list[list[int]],
        colors: list[int] | None = None,
        positions: list[list[float]] | None = None,
        n_sites: int | None = None,
    ):
        pairs = []
        for e in edges:
            if not isinstance(e, (list, tuple)) or len(e) != 2:
                raise ValueError(f"graph edges must be pairs of sites [i, j], got {e!r}")
            i, j = (_as_int("graph edge site", s, minimum=0) for s in e)
            if max(i, j) >= AbstractLattice.max_sites:
                raise ValueError(
                    f"graph edge {list(e)} names site {max(i, j)}, beyond the largest lattice nqs supports "
                    f"({AbstractLattice.max_sites} sites); number the sites 0 .. n_sites - 1"
                )
            if i == j:
                raise ValueError(f"graph edge {list(e)} joins site {i} to itself; edges must join two different sites")
            pairs.append((min(i, j), max(i, j)))
        if colors is None:
            colors = [0] * len(pairs)
        if len(colors) != len(pairs):
            raise ValueError(f"graph colors has {len(colors)} entries but there are {len(pairs)} edges; give one color per edge")
        colors = [_as_int("graph color", c, minimum=0) for c in colors]
        if len(set(pairs)) != len(pairs):
            dup = next(p for p in pairs if pairs.count(p) > 1)
            raise ValueError(f"graph edge {list(dup)} is listed twice; give each bond once")
        if positions is not None:
            coords = np.asarray(positions, dtype=np.float64)
            if coords.ndim != 2 or coords.shape[1] < 1:
                raise ValueError(f"graph positions must be a list of coordinates [[x, y], ...], got shape {coords.shape}")
            positions = tuple(tuple(float(c) for c in row) for row in coords)
        needed = max([j + 1 for _, j in pairs], default=0)
        if n_sites is None:
            n_sites = len(positions) if positions is not None else max(needed, 1)
        n_sites = _as_int("n_sites", n_sites)
        if needed > n_sites:
            raise ValueError(f"graph edge site {needed - 1} out of range for n_sites = {n_sites} (sites 0 .. {n_sites - 1})")
        if positions is not None and len(positions) != n_sites:
            raise ValueError(f"graph has {n_sites} sites but {len(positions)} positions; give one position per site")
        order = sorted(range(len(pairs)), key=lambda k: pairs[k])
        self.bonds = tuple(pairs[k] for k in order)
        self.colors = tuple(colors[k] for k in order)
        self.coordinates = positions
        self.size = n_sites

    @property
    def n_sites(self) -> int:
        return self.size

    @property
    def ndim(self) -> int:
        """Dimension of `positions` (0 without positions)."""
        return 0 if self.coordinates is None else len(self.coordinates[0])

    @property
    def positions(self) -> np.ndarray | None:
        return None if self.coordinates is None else np.asarray(self.coordinates, dtype=np.float64)

    def _check_order(self, order) -> None:
        if _as_int("order", order) != 1:
            raise ValueError(f"a graph lattice has only neighbour order 1 (its edge list), got order {order}")

    def edges(self, order: int = 1) -> tuple[tuple[int, int], ...]:
        """The bonds, sorted pairs `(i, j)` with `i < j`; only `order = 1`."""
        self._check_order(order)
        return self.bonds

    def edge_colors(self, order: int = 1) -> tuple[int, ...]:
        """The kind of each bond of `edges()`; only `order = 1`."""
        self._check_order(order)
        return self.colors

    def translations(self) -> np.ndarray:
        """The identity only (a graph declares no translations)."""
        return np.arange(self.n_sites, dtype=np.int64)[None]

    def point_group(self) -> np.ndarray:
        """The identity only (a graph declares no point group)."""
        return np.arange(self.n_sites, dtype=np.int64)[None]

    def site_displacements(self) -> np.ndarray:
        """`d[i, j] = r_j - r_i` (no periodic images); needs `positions`."""
        pos = self.positions
        if pos is None:
            raise ValueError("this graph lattice has no positions; give `positions` to use displacements")
        return pos[None, :, :] - pos[:, None, :]

    def momenta(self) -> np.ndarray:
        """Always raises: a graph has no Brillouin zone (give the wave vectors explicitly)."""
        raise ValueError("a graph lattice has no Brillouin zone; give the wave vectors q explicitly")
