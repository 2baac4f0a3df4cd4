"""The spin configuration spaces: spin 1/2 (`SpinHalf`) and spin S (`Spin`), local
spaces (`nqs_core.AbstractLocalSpace`) with an optional fixed total magnetisation."""

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


def spin_matrices(S: float) -> dict[str, np.ndarray]:
    """The spin-S matrices in the basis `m = S, S - 1, ..., -S` (standard
    conventions: `S^z = diag(S .. -S)`, `S^+ |m> = sqrt(S(S+1) - m(m+1)) |m+1>`,
    `S^- = (S^+)^T`, `S^x = (S^+ + S^-)/2`, `S^y = (S^+ - S^-)/(2i)`).

    **Arguments:**

    - `S`: the spin, a positive multiple of 1/2.

    **Returns:** a dict `sx sy sz sp sm` -> `(2S+1, 2S+1)` arrays (`sy` complex).
    """
    m = S - np.arange(int(round(2 * S)) + 1)
    sp = np.zeros((len(m), len(m)))
    for j in range(1, len(m)):  # <m_{j-1}| S^+ |m_j>, m_{j-1} = m_j + 1
        sp[j - 1, j] = np.sqrt(S * (S + 1) - m[j] * (m[j] + 1))
    sm = sp.T.copy()
    return {"sx": (sp + sm) / 2, "sy": (sp - sm) / 2j, "sz": np.diag(m), "sp": sp, "sm": sm}


_SPIN_NAMES = ("sx", "sy", "sz", "sp", "sm")


def _local_matrix(S: float, name: str) -> np.ndarray:
    if name not in _SPIN_NAMES:
        raise ValueError(f"unknown local operator {name!r} of spin {S:g}; valid names: {', '.join(_SPIN_NAMES)}")
    return spin_matrices(S)[name]


class SpinHalf(nqs_core.AbstractLocalSpace):
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
    def local_values(self) -> tuple[float, ...]:
        """`(+1, -1)`: local basis state 0 is up."""
        return (1.0, -1.0)

    @property
    def local_operator_names(self) -> tuple[str, ...]:
        return _SPIN_NAMES

    def local_matrix(self, name: str) -> np.ndarray:
        """The spin-1/2 matrix `name` (`sx sy sz sp sm`) in the basis `(up, down)`."""
        return _local_matrix(0.5, name)

    @property
    def constraint(self) -> nqs_core.SumConstraint | None:
        """`SumConstraint(2 * total_sz)` when the magnetisation is fixed, else `None`."""
        return None if self.total_sz is None else nqs_core.SumConstraint(2.0 * self.total_sz)

    @property
    def quantum_numbers(self) -> tuple[nqs_core.QuantumNumber, ...]:
        """The total magnetisation `Sz = sum(x) / 2`."""
        return (nqs_core.QuantumNumber("Sz", 0.5),)

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


def _parse_spin(S) -> float:
    """`S` from a number or a fraction string (`1`, `0.5`, `"3/2"`)."""
    if isinstance(S, str):
        try:
            num, _, den = S.partition("/")
            S = float(num) / (float(den) if den else 1.0)
        except ValueError:
            raise ValueError(f"S must be a positive multiple of 1/2 such as 1, 1.5 or \"3/2\", got {S!r}") from None
    if isinstance(S, bool) or not isinstance(S, (int, float)) or S <= 0 or 2 * S != round(2 * S):
        raise ValueError(f"S must be a positive multiple of 1/2 such as 1, 1.5 or \"3/2\", got {S!r}")
    return float(S)


class Spin(nqs_core.AbstractLocalSpace):
    """Spin-S configurations on `n_sites` sites, optionally at fixed total S^z.

    A configuration is a float array of shape `(n_sites,)` holding `2 m` per
    site (`m = S, S - 1, ..., -S`; integers, so spin 1/2 is `+1, -1` as in
    `SpinHalf`, spin 1 is `2, 0, -2`). The local basis (the order of the local
    matrices `sx sy sz sp sm`, see `spin_matrices`) is `m = S .. -S`. The total
    magnetisation is `S^z = sum(x) / 2`, and a fixed `total_sz` is the
    constraint `SumConstraint(2 * total_sz)` (the same as `SpinHalf`).

    Enumeration order (`all_states`): the base-`(2S+1)` code with digit `i`
    (site 0 most significant) the position of `x_i` among the ascending
    values; ascending codes.

    **Arguments:**

    - `n_sites`: number of sites (default: `lattice.n_sites`).
    - `S`: the spin, `0.5, 1, 1.5, ...` (TOML also accepts `"3/2"`; default 1).
    - `total_sz`: if given, only configurations with `sum(x) / 2 == total_sz`.
    - `lattice`: optional lattice, used for the default `n_sites` and checked.
    """

    n_sites: int = eqx.field(static=True)
    S: float = eqx.field(static=True)
    total_sz: float | None = eqx.field(static=True)

    def __init__(self, n_sites: int | None = None, S: float | str = 1.0, total_sz: float | None = None,
                 lattice: AbstractLattice | None = None):
        if n_sites is None:
            if lattice is None:
                raise ValueError("Spin needs n_sites or a lattice")
            n_sites = lattice.n_sites
        n_sites = nqs_core.check_int("n_sites", n_sites, minimum=1)
        check_sizes(n_sites, lattice)
        S = _parse_spin(S)
        if total_sz is not None:
            total_sz = float(total_sz)
            two = 2 * total_sz
            if two != round(two) or abs(two) > 2 * S * n_sites or (round(two) - round(2 * S) * n_sites) % 2:
                raise ValueError(
                    f"total_sz={total_sz:g} is not reachable with {n_sites} spins {S:g}; allowed: "
                    f"-{S * n_sites:g} .. {S * n_sites:g} in steps of 1"
                )
        self.n_sites = n_sites
        self.S = S
        self.total_sz = total_sz

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_sites,)

    @property
    def dtype(self):
        return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    @property
    def local_values(self) -> tuple[float, ...]:
        """`2m` for `m = S, S - 1, ..., -S`."""
        d = int(round(2 * self.S)) + 1
        return tuple(float(round(2 * self.S) - 2 * j) for j in range(d))

    @property
    def local_states(self) -> tuple[float, ...]:
        return tuple(sorted(self.local_values))

    @property
    def local_operator_names(self) -> tuple[str, ...]:
        return _SPIN_NAMES

    def local_matrix(self, name: str) -> np.ndarray:
        """The spin-S matrix `name` (`sx sy sz sp sm`) in the basis `m = S .. -S`."""
        return _local_matrix(self.S, name)

    @property
    def constraint(self) -> nqs_core.SumConstraint | None:
        """`SumConstraint(2 * total_sz)` when the magnetisation is fixed, else `None`."""
        return None if self.total_sz is None else nqs_core.SumConstraint(2.0 * self.total_sz)

    @property
    def quantum_numbers(self) -> tuple[nqs_core.QuantumNumber, ...]:
        """The total magnetisation `Sz = sum(x) / 2`."""
        return (nqs_core.QuantumNumber("Sz", 0.5),)

    @property
    def n_states(self) -> int:
        d = self.local_dim
        if self.total_sz is None:
            return d**self.n_sites
        counts = np.zeros(1, dtype=object)
        counts[0] = 1  # polynomial in q: number of configurations per sum of digits
        for _ in range(self.n_sites):
            new = np.zeros(len(counts) + d - 1, dtype=object)
            for k in range(d):
                new[k : k + len(counts)] += counts
            counts = new
        digit_sum = (2 * self.total_sz + 2 * self.S * self.n_sites) / 2
        return int(counts[int(round(digit_sum))])

    def _start(self) -> np.ndarray:
        """One configuration of the sector: values filled greedily from site 0."""
        d = self.local_dim
        left = int(round((2 * self.total_sz + 2 * self.S * self.n_sites) / 2))  # sum of ascending digits
        digits = np.zeros(self.n_sites, dtype=np.int64)
        for i in range(self.n_sites):
            digits[i] = min(d - 1, left)
            left -= digits[i]
        return np.asarray(self.local_states)[digits]

    def random_state(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` random configurations, shape `(n, n_sites)`: uniform without a
        constraint; with fixed `total_sz`, random permutations of one
        configuration of the sector (valid, not uniform over the sector)."""
        values = jnp.asarray(self.local_states, dtype=self.dtype)
        if self.total_sz is None:
            return values[jax.random.randint(key, (n, self.n_sites), 0, self.local_dim)]
        base = jnp.asarray(self._start(), dtype=self.dtype)
        keys = jax.random.split(key, n)
        return jax.vmap(lambda k: jax.random.permutation(k, base))(keys)

    def all_states(self) -> np.ndarray:
        """Every configuration, shape `(n_states, n_sites)`, float, ascending codes."""
        d, n = self.local_dim, self.n_sites
        if n * np.log2(d) > 40:
            raise ValueError(f"cannot enumerate {n} spins {self.S:g}")
        weights = d ** np.arange(n - 1, -1, -1, dtype=np.int64)
        values = np.asarray(self.local_states)
        parts = []
        total = d**n
        for start in range(0, total, _CHUNK):
            codes = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
            digits = (codes[:, None] // weights) % d
            if self.total_sz is not None:
                digits = digits[np.sum(values[digits], axis=1) == 2 * self.total_sz]
            parts.append(values[digits])
        return np.concatenate(parts).astype(np.float64)
