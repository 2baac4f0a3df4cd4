"""Lattices: numbered sites, bonds by neighbour order and kind, geometry and symmetry groups.

`AbstractLattice` is the protocol every Hamiltonian, observable and network asks
for; `AbstractBravaisLattice` implements all of it from a few numbers (extent,
boundary conditions, primitive vectors, basis offsets), so a concrete Bravais
lattice is a few lines.
"""

from __future__ import annotations

import abc
import functools
import itertools
from typing import ClassVar

import equinox as eqx
import numpy as np

from ._validate import check_int

#: Neighbour orders (distance shells) that `AbstractBravaisLattice.edges` supports.
BRAVAIS_ORDERS = (1, 2, 3)

_TOL = 1e-6  # lattice geometry is exact up to rounding: coordinates agree to this


def _cached(method):
    """Cache a method of a hashable (static) lattice; unhashable ones recompute."""
    cached = functools.lru_cache(maxsize=128)(method)

    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            return cached(self, *args)
        except TypeError:  # a lattice with unhashable fields
            return method(self, *args)

    return wrapper


class AbstractLattice(eqx.Module):
    """A finite lattice: sites `0 .. n_sites - 1`, bonds between them, and (where
    it has them) coordinates and symmetries.

    Lattices are static data (Python ints, bools and tuples); Hamiltonians and
    samplers turn their bonds into index arrays. Any plugin's lattice works with
    any Hamiltonian, observable or network that asks only for this protocol.

    Symmetries are *site maps*: an integer array `f` with `f[i]` the image of
    site `i`. A network that gathers spins uses the inverse permutation
    `np.argsort(f)` (the spin on site `i` moves to `f[i]`).

    `is_bipartite` and `sublattice` are computed from `edges(1)` for every
    lattice (a two-colouring, site 0 of each connected piece on sublattice 0).

    A lattice has at most `max_sites` sites (2^20, far beyond what a
    variational state can be trained on): a larger one is refused when it is
    made, before any array of its size is allocated.
    """

    #: the most sites any lattice may have (site indices are 32-bit integers in the Hamiltonians)
    max_sites: ClassVar[int] = 1 << 20

    def __check_init__(self):
        n = self.n_sites
        if n > self.max_sites:
            raise ValueError(
                f"{type(self).__name__} lattice of {n} sites is larger than nqs supports "
                f"({self.max_sites} sites); use a smaller lattice"
            )

    @property
    @abc.abstractmethod
    def n_sites(self) -> int:
        """Number of sites."""

    @property
    @abc.abstractmethod
    def ndim(self) -> int:
        """Number of spatial dimensions of `positions` (0 for a graph without coordinates)."""

    @property
    @abc.abstractmethod
    def positions(self) -> np.ndarray | None:
        """Real-space coordinates of every site, a float array `(n_sites, ndim)`,
        or `None` for a graph without coordinates."""

    @abc.abstractmethod
    def edges(self, order: int = 1) -> tuple[tuple[int, int], ...]:
        """Bonds between `order`-th neighbours (1: nearest, 2: next-nearest, ...),
        as a sorted tuple of distinct pairs `(i, j)` with `i < j`."""

    @abc.abstractmethod
    def edge_colors(self, order: int = 1) -> tuple[int, ...]:
        """Bond kind of each bond of `edges(order)`, in the same order (all 0
        unless the lattice has several kinds of bond, e.g. legs and rungs)."""

    @abc.abstractmethod
    def translations(self) -> np.ndarray:
        """Site maps of the lattice translations, an int array `(n_T, n_sites)`
        with `maps[t, i]` the image of site `i`; row 0 is the identity (the
        only row when the lattice has no translations)."""

    @abc.abstractmethod
    def point_group(self) -> np.ndarray:
        """Site maps of the point group that maps the cluster onto itself, an
        int array `(n_P, n_sites)`; row 0 is the identity (the only row when
        there is no point group)."""

    @abc.abstractmethod
    def site_displacements(self) -> np.ndarray:
        """Displacement vectors `d[i, j] = r_j - r_i` between all sites, shape
        `(n_sites, n_sites, ndim)`, taken to the shortest periodic image.
        Raises `ValueError` for a lattice without positions."""

    @abc.abstractmethod
    def momenta(self) -> np.ndarray:
        """Wave vectors `(n_k, ndim)` allowed by the periodic cluster (the grid on
        which the structure factor S(q) is evaluated). Raises `ValueError` for a
        lattice without a Brillouin zone."""

    @property
    def is_bipartite(self) -> bool:
        """Whether the nearest-neighbour bonds `edges(1)` can be two-coloured
        (no odd cycle)."""
        return _two_colouring(self) is not None

    def sublattice(self, i: int) -> int:
        """Sublattice (0 or 1) of site `i` in the two-colouring of `edges(1)`
        (used for the Marshall sign); site 0 of every connected piece is on
        sublattice 0. On the chain and the square lattice this is the parity of
        the sum of the coordinates.

        Raises `ValueError` when the lattice is not bipartite (e.g. an odd
        periodic direction, or a triangle), where no such labelling exists.
        """
        labels = _two_colouring(self)
        if labels is None:
            raise ValueError(
                f"{self!r} is not bipartite (its nearest-neighbour bonds have an odd cycle, e.g. an odd "
                "periodic direction), so it has no sublattice labelling and no Marshall sign"
            )
        i = check_int("site", i, minimum=0)
        if i >= self.n_sites:
            raise ValueError(f"site {i} out of range for {self.n_sites} sites")
        return int(labels[i])


@_cached
def _two_colouring(lattice: AbstractLattice) -> tuple[int, ...] | None:
    """Labels 0/1 with every bond of `edges(1)` joining different labels, or None."""
    n = lattice.n_sites
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in lattice.edges(1):
        neighbours[i].append(j)
        neighbours[j].append(i)
    labels = [-1] * n
    for start in range(n):
        if labels[start] >= 0:
            continue
        labels[start] = 0
        stack = [start]
        while stack:
            i = stack.pop()
            for j in neighbours[i]:
                if labels[j] < 0:
                    labels[j] = 1 - labels[i]
                    stack.append(j)
                elif labels[j] == labels[i]:
                    return None
    return tuple(labels)


class AbstractBravaisLattice(AbstractLattice):
    """A finite cluster of a Bravais lattice with a basis.

    A concrete lattice gives `extent` (unit cells along each primitive
    direction), `periodic` (a bool per direction), `basis_vectors` (the
    primitive vectors `a_d` as rows), `site_offsets` (position of each basis
    site inside the cell) and `_bond_kind`; everything else follows:

    - **Numbering:** cell-major, then basis site: the site of basis `b` in cell
      `(n_1, ..., n_d)` is `c * n_basis + b`, with `c` the row-major index of the
      cell (the last cell coordinate runs fastest). With one site per cell the
      site of cell `(x, y)` is `x * extent[1] + y`.
    - **Positions:** `r = sum_d n_d a_d + offset_b`.
    - **Bonds of order k** (`edges(k)`, `k` in `BRAVAIS_ORDERS`): pairs at the
      k-th smallest distance of the *infinite* lattice, joined through the
      periodic directions (wrapped) or inside the cluster (open directions).
      On small periodic clusters several displacements can join the same two
      sites; the bond appears once (with the smallest kind), and a displacement
      that wraps onto the site itself gives no bond.
    - **Translations** by whole cells along the periodic directions.
    - **Point group:** the largest group of rotations and reflections about one
      centre that maps the sites onto themselves (modulo the periodic
      supercell, whose vectors it must map onto each other) and every bond of
      every order in `BRAVAIS_ORDERS` onto a bond of the same order and kind.
      Centres tried, in order: the centre of the cluster (the mean position),
      then (periodic clusters) the points `sum_d (m_d / 6) a_d` of the first
      cell; the first centre giving the largest group is used (`point_group_centre`).
    """

    @property
    @abc.abstractmethod
    def extent(self) -> tuple[int, ...]:
        """Number of unit cells along each primitive direction."""

    @property
    @abc.abstractmethod
    def periodic(self) -> tuple[bool, ...]:
        """Whether each primitive direction has periodic boundaries."""

    @property
    @abc.abstractmethod
    def basis_vectors(self) -> np.ndarray:
        """Primitive vectors `a_d` as the rows of a float array `(ndim, ndim)`."""

    @property
    @abc.abstractmethod
    def site_offsets(self) -> np.ndarray:
        """Position of each basis site inside the unit cell, `(n_basis, ndim)`."""

    @abc.abstractmethod
    def _bond_kind(self, vector: np.ndarray) -> int:
        """Kind (colour) of a bond with real-space vector `vector` (r_j - r_i)."""

    # -- sites ------------------------------------------------------------------

    @property
    def ndim(self) -> int:
        """Number of primitive directions."""
        return len(self.extent)

    @property
    def n_basis(self) -> int:
        """Number of sites per unit cell."""
        return int(np.asarray(self.site_offsets).shape[0])

    @property
    def n_cells(self) -> int:
        """Number of unit cells."""
        return int(np.prod(self.extent))

    @property
    def n_sites(self) -> int:
        """Number of sites, `n_cells * n_basis`."""
        return self.n_cells * self.n_basis

    @property
    def cell_coordinates(self) -> np.ndarray:
        """Integer cell coordinates `(n_1, ..., n_d)` of every site, `(n_sites, ndim)`."""
        cells = np.stack(np.unravel_index(np.arange(self.n_cells), self.extent), axis=-1)
        return np.repeat(cells, self.n_basis, axis=0).astype(np.int64)

    @property
    def basis_index(self) -> np.ndarray:
        """Basis site `b` of every site, `(n_sites,)`."""
        return np.tile(np.arange(self.n_basis, dtype=np.int64), self.n_cells)

    @property
    def positions(self) -> np.ndarray:
        """Real-space coordinates of every site, float `(n_sites, ndim)`, in site order."""
        offsets = np.asarray(self.site_offsets, dtype=np.float64)
        return self.cell_coordinates @ np.asarray(self.basis_vectors, dtype=np.float64) + offsets[self.basis_index]

    def site(self, *cell: int, basis: int = 0) -> int:
        """Index of the site of basis `basis` in the cell with coordinates `cell`."""
        if len(cell) != self.ndim:
            raise ValueError(f"expected {self.ndim} cell coordinates, got {len(cell)}")
        if not 0 <= basis < self.n_basis:
            raise ValueError(f"basis site {basis} out of range for {self.n_basis} sites per cell")
        return int(np.ravel_multi_index(cell, self.extent)) * self.n_basis + int(basis)

    def _site_index(self, cells: np.ndarray, basis: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(tuple(np.asarray(cells).T), self.extent) * self.n_basis + basis

    @property
    def supercell_vectors(self) -> np.ndarray:
        """The vectors `L_d = extent[d] * a_d` spanning the cluster, `(ndim, ndim)`."""
        return np.asarray(self.extent, dtype=np.float64)[:, None] * np.asarray(self.basis_vectors, dtype=np.float64)

    # -- bonds ------------------------------------------------------------------

    @_cached
    def _shells(self) -> tuple[tuple[tuple[int, int, tuple[int, ...]], ...], ...]:
        """For each order in `BRAVAIS_ORDERS`: the `(b, b', cell displacement)`
        joining basis site `b` to basis site `b'` at that distance in the infinite lattice."""
        a = np.asarray(self.basis_vectors, dtype=np.float64)
        offsets = np.asarray(self.site_offsets, dtype=np.float64)
        reach = range(-(len(BRAVAIS_ORDERS) + 1), len(BRAVAIS_ORDERS) + 2)
        found = []
        for n in itertools.product(reach, repeat=self.ndim):
            for b, bp in itertools.product(range(self.n_basis), repeat=2):
                dist = float(np.linalg.norm(np.asarray(n, dtype=np.float64) @ a + offsets[bp] - offsets[b]))
                if dist > _TOL:
                    found.append((dist, b, bp, n))
        found.sort(key=lambda t: t[0])
        shells: list[list] = []
        last = -1.0
        for dist, b, bp, n in found:
            if dist > last + _TOL:
                if len(shells) == len(BRAVAIS_ORDERS):
                    break
                shells.append([])
                last = dist
            shells[-1].append((b, bp, tuple(int(c) for c in n)))
        return tuple(tuple(s) for s in shells)

    @_cached
    def _bonds(self, order: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
        order = check_int("order", order)
        if order not in BRAVAIS_ORDERS:
            raise ValueError(f"{type(self).__name__} supports neighbour orders {list(BRAVAIS_ORDERS)}, got {order}")
        extent = np.asarray(self.extent)
        periodic = np.asarray(self.periodic, dtype=bool)
        cells = np.stack(np.unravel_index(np.arange(self.n_cells), self.extent), axis=-1)
        a = np.asarray(self.basis_vectors, dtype=np.float64)
        offsets = np.asarray(self.site_offsets, dtype=np.float64)
        kinds: dict[tuple[int, int], int] = {}
        for b, bp, n in self._shells()[order - 1]:
            kind = int(self._bond_kind(np.asarray(n, dtype=np.float64) @ a + offsets[bp] - offsets[b]))
            target = cells + np.asarray(n)
            inside = np.all(periodic | ((target >= 0) & (target < extent)), axis=1)
            target = np.where(periodic, target % extent, target)
            src = self._site_index(cells[inside], np.full(int(inside.sum()), b))
            dst = self._site_index(target[inside], np.full(int(inside.sum()), bp))
            for i, j in zip(src.tolist(), dst.tolist()):
                if i != j:
                    key = (min(i, j), max(i, j))
                    kinds[key] = min(kind, kinds.get(key, kind))
        pairs = tuple(sorted(kinds))
        return pairs, tuple(kinds[p] for p in pairs)

    def edges(self, order: int = 1) -> tuple[tuple[int, int], ...]:
        """Bonds between `order`-th neighbours, sorted pairs `(i, j)` with `i < j`.

        **Arguments:**

        - `order`: the distance shell, 1 (nearest) to 3.

        **Returns:** a sorted tuple of distinct pairs of Python ints.
        """
        return self._bonds(order)[0]

    def edge_colors(self, order: int = 1) -> tuple[int, ...]:
        """Bond kind of each bond of `edges(order)` (Python ints, same order)."""
        return self._bonds(order)[1]

    # -- symmetries -------------------------------------------------------------

    def translations(self, step: int = 1, within: int | None = None) -> np.ndarray:
        """Site maps of the translations by whole cells along the periodic directions.

        **Arguments:**

        - `step`: translate by multiples of `step` cells only.
        - `within`: only translations by fewer than `within` cells along each
          direction (the `b^d` translations inside a patch of side `b`).

        **Returns:** an `int64` array `(n_T, n_sites)`, `maps[t, i]` the image of
        site `i`; translations in row-major order of the displacement, row 0 the
        identity (the only row when no direction is periodic).
        """
        step = check_int("step", step)
        extent = np.asarray(self.extent)
        ranges = [range(0, (n if within is None else within) if p else 1, step) for n, p in zip(self.extent, self.periodic)]
        cells, basis = self.cell_coordinates, self.basis_index
        maps = [self._site_index((cells + np.asarray(t)) % extent, basis) for t in itertools.product(*ranges)]
        return np.stack(maps).astype(np.int64)

    def point_group(self) -> np.ndarray:
        """Site maps of the point group (see the class docstring), `int64 (n_P, n_sites)`.

        Elements in the order of `point_group_matrices`: the rotations by
        increasing angle (counter-clockwise; row 0 the identity), then the
        reflections by increasing angle of the mirror line in `[0, 180)` degrees
        from the x axis. In one dimension: the identity, then `x -> -x`.
        """
        return self._point_group()[0].copy()

    def point_group_matrices(self) -> np.ndarray:
        """The orthogonal matrices `R` of `point_group()`, `(n_P, ndim, ndim)`: the
        element moves the site at `r` to `R (r - c) + c` with `c = point_group_centre`."""
        return self._point_group()[1].copy()

    @property
    def point_group_centre(self) -> np.ndarray:
        """The fixed point `c` of `point_group()`, `(ndim,)`."""
        return self._point_group()[2].copy()

    @_cached
    def _point_group(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = self.positions
        a = np.asarray(self.basis_vectors, dtype=np.float64)
        a_inv = np.linalg.inv(a)
        periodic = np.asarray(self.periodic, dtype=bool)
        extent = np.asarray(self.extent)
        # operations that map the Bravais lattice, and the periodic supercell, onto themselves
        ops = [op for op in _candidate_operations(self.ndim) if _integral((op @ a.T).T @ a_inv)]
        ops = [op for op in ops if all(_wraps(op @ self.supercell_vectors[d] @ a_inv, periodic, extent) for d in np.flatnonzero(periodic))]
        centres = [pos.mean(axis=0)]
        if any(self.periodic):
            grid = np.asarray(list(itertools.product(range(6), repeat=self.ndim)), dtype=np.float64) / 6.0
            centres += list(grid @ a)
        bonds = [dict(zip(self.edges(k), self.edge_colors(k))) for k in BRAVAIS_ORDERS]
        frac_offsets = np.asarray(self.site_offsets, dtype=np.float64) @ a_inv
        best = (np.arange(self.n_sites, dtype=np.int64)[None], np.eye(self.ndim)[None], centres[0])
        for centre in centres if len(ops) > 1 else []:
            maps, mats = [], []
            for op in ops:
                # cell coordinates of every image under r -> op (r - centre) + centre, per basis site
                frac = ((pos - centre) @ op.T + centre) @ a_inv
                frac = frac[None] - frac_offsets[:, None]  # (n_basis, n_sites, ndim)
                whole = np.max(np.abs(frac - np.round(frac)), axis=-1) < _TOL
                if not np.all(whole.sum(axis=0) == 1):
                    continue
                basis = np.argmax(whole, axis=0)
                cells = np.round(frac[basis, np.arange(self.n_sites)]).astype(np.int64)
                cells = np.where(periodic, cells % extent, cells)
                if np.any((cells < 0) | (cells >= extent)):
                    continue
                f = self._site_index(cells, basis).astype(np.int64)
                if len(np.unique(f)) == self.n_sites and all(_maps_bonds(f, b) for b in bonds):
                    maps.append(f)
                    mats.append(op)
            if len(maps) > len(best[0]):
                best = (np.stack(maps), np.stack(mats), centre)
                if len(maps) == len(ops):
                    break
        return best

    # -- geometry for observables -------------------------------------------------

    def site_displacements(self) -> np.ndarray:
        """Minimum-image displacements `d[i, j] = r_j - r_i`, float `(n_sites, n_sites, ndim)`.

        Along periodic directions the shortest of the images `r_j - r_i + sum_d m_d L_d`
        is taken; at a tie (e.g. half way round a periodic chain) the image with
        cell coordinates in `[-L/2, L/2)` comes first, so every displacement class
        of the torus has one representative. Open directions: the plain difference.
        """
        pos = self.positions
        a_inv = np.linalg.inv(np.asarray(self.basis_vectors, dtype=np.float64))
        periodic = np.asarray(self.periodic, dtype=bool)
        extent = np.asarray(self.extent, dtype=np.float64)
        frac = (pos[None, :, :] - pos[:, None, :]) @ a_inv
        frac = np.where(periodic, frac - extent * np.floor(frac / extent + 0.5 + _TOL), frac)
        return _shortest_image(frac, np.asarray(self.basis_vectors, dtype=np.float64), periodic, extent)

    def momenta(self) -> np.ndarray:
        """Wave vectors allowed by the periodic cluster, float `(n_cells, ndim)`.

        `k = sum_d (n_d / L_d) b_d` with the reciprocal vectors `b_d`
        (`a_c . b_d = 2 pi delta_cd`), so `k . L_d = 2 pi n_d` for every
        supercell vector; `n_d = 0 .. L_d - 1` in row-major order (row 0 is
        `k = 0`), each folded into the first Brillouin zone (the shortest
        `k + G`). Open directions use the same grid, `L_d` points (the momenta
        of the periodic cluster of the same shape).
        """
        recip = 2.0 * np.pi * np.linalg.inv(np.asarray(self.basis_vectors, dtype=np.float64)).T
        extent = np.asarray(self.extent, dtype=np.float64)
        n = np.stack(np.unravel_index(np.arange(self.n_cells), self.extent), axis=-1).astype(np.float64)
        frac = n / extent
        frac = frac - np.floor(frac + 0.5 + _TOL)
        return _shortest_image(frac, recip, np.ones(self.ndim, dtype=bool), np.ones(self.ndim))


@functools.lru_cache(maxsize=None)
def _candidate_operations(ndim: int) -> np.ndarray:
    """Rotations by multiples of 30 degrees, then reflections across lines at
    multiples of 15 degrees (D12, which contains every 2D crystallographic point
    group about a centre); in 1D the identity and the mirror; identity otherwise."""
    if ndim == 1:
        return np.array([[[1.0]], [[-1.0]]])
    if ndim != 2:
        return np.eye(ndim)[None]
    rot = [np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) for t in np.arange(12) * np.pi / 6]
    ref = [np.array([[np.cos(2 * t), np.sin(2 * t)], [np.sin(2 * t), -np.cos(2 * t)]]) for t in np.arange(12) * np.pi / 12]
    ops = np.stack(rot + ref)
    ops[np.abs(ops) < 1e-15] = 0.0
    return ops


def _integral(x: np.ndarray) -> bool:
    return bool(np.max(np.abs(x - np.round(x)), initial=0.0) < _TOL)


def _wraps(n: np.ndarray, periodic: np.ndarray, extent: np.ndarray) -> bool:
    """Whether cell coordinates `n` (of an image of a supercell vector) are a
    combination of the periodic supercell vectors."""
    m = np.round(n).astype(np.int64)
    return _integral(n) and not np.any(m[~periodic]) and not np.any(m[periodic] % extent[periodic])


def _maps_bonds(f: np.ndarray, bonds: dict[tuple[int, int], int]) -> bool:
    """Whether the site map `f` maps the bonds onto themselves with their kinds."""
    for (i, j), kind in bonds.items():
        a, b = int(f[i]), int(f[j])
        if bonds.get((min(a, b), max(a, b))) != kind:
            return False
    return True


def _shortest_image(frac: np.ndarray, vectors: np.ndarray, periodic: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """`frac @ vectors` replaced by its shortest image `(frac + m * extent) @ vectors`
    over `m` in {0, -1, 1} along the periodic directions (0 wins ties)."""
    shifts = [(0, -1, 1) if p else (0,) for p in periodic]
    images = np.stack([(frac + np.asarray(m) * extent) @ vectors for m in itertools.product(*shifts)])
    norms = np.round(np.linalg.norm(images, axis=-1), 8)
    best = np.argmin(norms, axis=0)
    out = np.take_along_axis(images, best[None, ..., None], axis=0)[0]
    out[np.abs(out) < 1e-12] = 0.0
    return out
