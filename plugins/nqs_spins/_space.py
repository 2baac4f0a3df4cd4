"""The spin-1/2 configuration space, with an optional fixed total magnetisation."""

from __future__ import annotations

import math
import operator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import nqs_core

from nqs_core import AbstractLattice

_CHUNK = 1 << 20


def _popcount(a: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(a)
    a = a.astype(np.uint64)
    c = np.zeros(a.shape, dtype=np.uint8)
    while np.any(a):
        c += (a & np.uint64(1)).astype(np.uint8)
        a = a >> np.uint64(1)
    return c


def check_sizes(space_sites: int, lattice: AbstractLattice | None) -> None:
    """Raise the standard error when a space and a lattice disagree on the size."""
    if lattice is not None and lattice.n_sites != space_sites:
        raise ValueError(
            f"inconsistent sizes: space has n_sites={space_sites}, "
            f"lattice has {lattice.n_sites} sites"
        )


def check_spin_space(owner: str, space) -> None:
    """Raise `TypeError` unless `space` is a discrete space of spins 1/2 with
    local states (-1, 1) and one-dimensional configurations."""
    if (
        not isinstance(space, nqs_core.AbstractDiscreteSpace)
        or tuple(space.local_states) != (-1.0, 1.0)
        or len(space.shape) != 1
    ):
        raise TypeError(
            f"{owner} needs a spin-1/2 space (local states (-1, 1), configurations of shape "
            f"(n_sites,)), got {space!r}"
        )


class SpinHalf(nqs_core.AbstractDiscreteSpace):
    """Spin-1/2 configurations on `n_sites` sites, optionally at fixed total S^z.

    A configuration is a float array of shape `(n_sites,)` holding the sigma^z
    eigenvalues `+1.0` (up) and `-1.0` (down); its magnetisation is
    `S^z = sum(s) / 2`.

    Enumeration order (`all_states`, `all_codes`): the integer code of a
    configuration has bit `n_sites - 1 - i` set when site `i` is up (site 0 is
    the most significant bit); states are sorted by ascending code.

    **Arguments:**

    - `n_sites`: number of sites (default: `lattice.n_sites`).
    - `total_sz`: if given, only configurations with `sum(s) / 2 == total_sz`
      belong to the space (e.g. `0.0` for the zero-magnetisation sector).
    - `lattice`: optional lattice, used for the default `n_sites` and checked
      against it. It is not stored.
    """

    n_sites: int = eqx.field(static=True)
    total_sz: float | None = eqx.field(static=True)

    def __init__(
        self,
        n_sites: int | None = None,
        total_sz: float | None = None,
        lattice: AbstractLattice | None = None,
    ):
        if n_sites is None:
            if lattice is None:
                raise ValueError("SpinHalf needs n_sites or a lattice")
            n_sites = lattice.n_sites
        try:
            n_sites = operator.index(n_sites)
        except TypeError:
            raise TypeError(f"n_sites must be an integer, got {n_sites!r}") from None
        if n_sites < 1:
            raise ValueError(f"n_sites must be >= 1, got {n_sites}")
        check_sizes(n_sites, lattice)
        if total_sz is not None:
            total_sz = float(total_sz)
            n_up = n_sites / 2 + total_sz
            if n_up != round(n_up) or not 0 <= n_up <= n_sites:
                allowed = ", ".join(f"{k - n_sites / 2:g}" for k in range(n_sites + 1))
                raise ValueError(
                    f"total_sz={total_sz:g} is not reachable with {n_sites} spins 1/2; "
                    f"allowed values: {allowed}"
                )
        self.n_sites = n_sites
        self.total_sz = total_sz

    # -- protocol ------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_sites,)

    @property
    def dtype(self):
        return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    @property
    def local_states(self) -> tuple[float, ...]:
        return (-1.0, 1.0)

    @property
    def constraint(self) -> nqs_core.SumConstraint | None:
        """`SumConstraint(2 * total_sz)` when the magnetisation is fixed, else `None`."""
        return None if self.total_sz is None else nqs_core.SumConstraint(2.0 * self.total_sz)

    @property
    def constrained(self) -> bool:
        """Whether the total magnetisation is fixed."""
        return self.total_sz is not None

    @property
    def n_up(self) -> int | None:
        """Number of up spins when `total_sz` is fixed, else `None`."""
        if self.total_sz is None:
            return None
        return int(round(self.n_sites / 2 + self.total_sz))

    @property
    def n_states(self) -> int:
        if self.total_sz is None:
            return 2**self.n_sites
        return math.comb(self.n_sites, self.n_up)

    def random_state(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` uniformly random configurations, shape `(n, n_sites)`; with fixed
        `total_sz` each is a random permutation of the same multiset of spins."""
        if self.total_sz is None:
            bits = jax.random.bernoulli(key, 0.5, (n, self.n_sites))
            return jnp.where(bits, 1.0, -1.0).astype(self.dtype)
        base = jnp.where(jnp.arange(self.n_sites) < self.n_up, 1.0, -1.0).astype(self.dtype)
        keys = jax.random.split(key, n)
        return jax.vmap(lambda k: jax.random.permutation(k, base))(keys)

    def all_codes(self) -> np.ndarray:
        """Integer codes (int64) of every configuration, ascending. See the class
        docstring for the encoding."""
        if self.n_sites > 62:
            raise ValueError(f"cannot enumerate {self.n_sites} spins")
        total = 1 << self.n_sites
        if self.total_sz is None:
            return np.arange(total, dtype=np.int64)
        parts = []
        for start in range(0, total, _CHUNK):
            codes = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
            parts.append(codes[_popcount(codes) == self.n_up])
        return np.concatenate(parts)

    def all_states(self) -> np.ndarray:
        """Every configuration, shape `(n_states, n_sites)`, float, in ascending
        code order."""
        return self.codes_to_states(self.all_codes())

    # -- encoding ------------------------------------------------------------
    def states_to_codes(self, x):
        """Integer codes of configurations `(..., n_sites)` (NumPy or JAX,
        jit-able). Site 0 is the most significant bit."""
        xp = jnp if isinstance(x, jax.Array) else np
        weights = xp.asarray(1 << np.arange(self.n_sites - 1, -1, -1, dtype=np.int64))
        return xp.sum(xp.where(x > 0, weights, 0), axis=-1)

    def codes_to_states(self, codes):
        """Configurations `(..., n_sites)` from integer codes (NumPy or JAX)."""
        xp = jnp if isinstance(codes, jax.Array) else np
        shifts = xp.asarray(np.arange(self.n_sites - 1, -1, -1, dtype=np.int64))
        bits = (codes[..., None] >> shifts) & 1
        return xp.where(bits == 1, 1.0, -1.0).astype(self.dtype)
