"""Lattices: sites with integer coordinates and the bonds between them."""

from __future__ import annotations

import abc

import equinox as eqx
import numpy as np

import nqs_core


_as_int = nqs_core.check_int


class _AbstractHypercubic(nqs_core.AbstractLattice):
    """A finite hypercubic lattice (private base of `Chain` and `Square`): `n_sites` sites with integer coordinates and bonds.

    Sites are numbered `0 .. n_sites - 1`; `positions[i]` gives the integer
    coordinates of site `i`. `edges(order)` lists the bonds between `order`-th
    neighbours as pairs `(i, j)` with `i < j`, each pair once (with periodic
    boundaries on small lattices several displacements can join the same two
    sites; the bond still appears once, and a displacement that wraps onto the
    site itself gives no bond).

    Lattices are static data: every field is a Python `int` or `bool`.
    """

    @property
    @abc.abstractmethod
    def extent(self) -> tuple[int, ...]:
        """Number of sites along each direction."""

    @property
    @abc.abstractmethod
    def pbc_dims(self) -> tuple[bool, ...]:
        """Whether each direction is periodic."""

    @abc.abstractmethod
    def _displacements(self, order: int) -> tuple[tuple[int, ...], ...]:
        """Displacements (one of each `+d`/`-d` pair) joining `order`-th neighbours."""

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return int(np.prod(self.extent))

    @property
    def ndim(self) -> int:
        return len(self.extent)

    @property
    def positions(self) -> np.ndarray:
        """Integer coordinates of every site, shape `(n_sites, ndim)`, in site
        order (row-major: the last coordinate runs fastest)."""
        grids = np.meshgrid(*[np.arange(n) for n in self.extent], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=-1)

    def site(self, *coords: int) -> int:
        """Site index of the given coordinates (row-major)."""
        if len(coords) != self.ndim:
            raise ValueError(f"expected {self.ndim} coordinates, got {len(coords)}")
        return int(np.ravel_multi_index(coords, self.extent))

    def edges(self, order: int = 1) -> tuple[tuple[int, int], ...]:
        """Bonds between `order`-th neighbours, sorted pairs `(i, j)` with `i < j`.

        **Arguments:**

        - `order`: 1 for nearest neighbours, 2 for next-nearest neighbours.

        **Returns:** a sorted tuple of distinct pairs of Python ints.
        """
        order = _as_int("order", order)
        extent = np.asarray(self.extent)
        pbc = np.asarray(self.pbc_dims)
        pos = self.positions
        bonds = set()
        for d in self._displacements(order):
            target = pos + np.asarray(d)
            inside = np.all(pbc | ((target >= 0) & (target < extent)), axis=1)
            target = np.where(pbc, target % extent, target)
            for i in np.flatnonzero(inside):
                j = int(np.ravel_multi_index(tuple(target[i]), self.extent))
                if j != i:
                    bonds.add((min(int(i), j), max(int(i), j)))
        return tuple(sorted(bonds))

    @property
    def is_bipartite(self) -> bool:
        """Whether nearest-neighbour bonds always join the two parity
        sublattices (sum of coordinates even / odd)."""
        parity = self.positions.sum(axis=1) % 2
        return all(parity[i] != parity[j] for i, j in self.edges(1))

    def sublattice(self, i: int) -> int:
        """Sublattice (0 or 1) of site `i`: the parity of the sum of its
        coordinates. Used for the Marshall sign.

        Raises `ValueError` when the lattice is not bipartite (an odd periodic
        direction), where no such labelling exists.
        """
        if not self.is_bipartite:
            raise ValueError(
                f"{self!r} is not bipartite (a periodic direction has an odd number of "
                "sites), so it has no sublattice labelling and no Marshall sign"
            )
        i = _as_int("site", i, minimum=0)
        if i >= self.n_sites:
            raise ValueError(f"site {i} out of range for {self.n_sites} sites")
        return int(self.positions[i].sum() % 2)


class Chain(_AbstractHypercubic):
    """A one-dimensional chain of `length` sites, numbered `0 .. length - 1`.

    Neighbours of order `k` are the pairs `(i, i + k)` (wrapped around with
    periodic boundaries): order 1 gives `length` bonds with PBC (for
    `length >= 3`) and `length - 1` with OBC.

    **Arguments:**

    - `length`: number of sites.
    - `pbc`: periodic boundary conditions (default `True`).
    """

    length: int = eqx.field(static=True)
    pbc: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        _as_int("length", self.length)
        if not isinstance(self.pbc, (bool, np.bool_)):
            raise TypeError(f"pbc must be a bool, got {self.pbc!r}")

    @property
    def extent(self):
        return (self.length,)

    @property
    def pbc_dims(self):
        return (bool(self.pbc),)

    def _displacements(self, order):
        return ((order,),)


_SQUARE_SHELLS = {
    1: ((1, 0), (0, 1)),
    2: ((1, 1), (1, -1)),
    3: ((2, 0), (0, 2)),
}


class Square(_AbstractHypercubic):
    """A rectangular patch of the square lattice, `length` x `width` sites.

    Site `(x, y)` with `0 <= x < length`, `0 <= y < width` has index
    `i = x * width + y` (row-major). Order 1 bonds join `(x, y)` to
    `(x + 1, y)` and `(x, y + 1)`; order 2 bonds are the diagonals
    `(x + 1, y + 1)` and `(x + 1, y - 1)`; order 3 bonds are at distance 2
    along an axis. A 4 x 4 periodic lattice has 32 bonds of order 1 and 32 of
    order 2.

    **Arguments:**

    - `length`: number of sites along `x`.
    - `pbc`: periodic boundary conditions in both directions (default `True`).
    - `width`: number of sites along `y` (default: `length`, a square).
    """

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
        if not isinstance(self.pbc, (bool, np.bool_)):
            raise TypeError(f"pbc must be a bool, got {self.pbc!r}")

    @property
    def extent(self):
        return (self.length, self.width)

    @property
    def pbc_dims(self):
        return (bool(self.pbc), bool(self.pbc))

    def _displacements(self, order):
        if order not in _SQUARE_SHELLS:
            raise ValueError(f"Square supports neighbour orders {sorted(_SQUARE_SHELLS)}, got {order}")
        return _SQUARE_SHELLS[order]
