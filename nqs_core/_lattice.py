"""Lattices: numbered sites and the bonds between them."""

from __future__ import annotations

import abc

import equinox as eqx
import numpy as np


class AbstractLattice(eqx.Module):
    """A finite lattice: sites `0 .. n_sites - 1` and bonds between them.

    Lattices are static data (Python ints, bools and tuples); Hamiltonians and
    samplers turn their bonds into index arrays. Any plugin's lattice works with
    any Hamiltonian that asks only for this protocol.
    """

    @property
    @abc.abstractmethod
    def n_sites(self) -> int:
        """Number of sites."""

    @abc.abstractmethod
    def edges(self, order: int = 1) -> tuple[tuple[int, int], ...]:
        """Bonds between `order`-th neighbours (1: nearest, 2: next-nearest),
        as sorted distinct pairs `(i, j)` with `i < j`."""

    @property
    @abc.abstractmethod
    def positions(self) -> np.ndarray:
        """Coordinates of every site, shape `(n_sites, ndim)`."""

    @abc.abstractmethod
    def sublattice(self, i: int) -> int:
        """Sublattice label (0 or 1) of site `i` for bipartite lattices (Marshall
        sign); raises `ValueError` when the lattice is not bipartite."""
