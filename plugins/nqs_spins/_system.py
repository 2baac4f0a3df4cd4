"""Spin-1/2 lattice Hamiltonians given row by row (connected elements)."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import nqs_core

from nqs_core.operators import Operator, X, Z, parse, sx, sy, sz

from ._spin_operator import AbstractSpinHamiltonian, SpinOperator
from ._space import check_sizes, check_spin_space
from nqs_core import AbstractLattice

_UNITS = {"spin": 1.0, "pauli": 4.0}


def _check_space(name: str, space, lattice: AbstractLattice) -> None:
    check_spin_space(name, space)
    if not isinstance(lattice, AbstractLattice):
        raise TypeError(f"{name} needs a lattice, got {lattice!r}")
    check_sizes(space.size, lattice)


def _bond_array(bonds) -> Array:
    return jnp.asarray(np.asarray(bonds, dtype=np.int32).reshape(-1, 2))


def _swap_permutations(n_sites: int, bonds: np.ndarray) -> Array:
    """Row `b` is the permutation of sites that exchanges the two ends of bond `b`."""
    perm = np.tile(np.arange(n_sites, dtype=np.int32), (len(bonds), 1))
    rows = np.arange(len(bonds))
    perm[rows, bonds[:, 0]] = bonds[:, 1]
    perm[rows, bonds[:, 1]] = bonds[:, 0]
    return jnp.asarray(perm)


def _marshall_signs(lattice: AbstractLattice, bonds: np.ndarray) -> Array:
    sub = np.array([lattice.sublattice(i) for i in range(lattice.n_sites)])
    return jnp.asarray(np.where(sub[bonds[:, 0]] != sub[bonds[:, 1]], -1, 1).astype(np.int8))


def _sublattice_one(lattice: AbstractLattice) -> tuple[int, ...]:
    return tuple(i for i in range(lattice.n_sites) if lattice.sublattice(i) == 1)


def _exchange(i: int, j: int) -> Operator:
    return sx(i) * sx(j) + sy(i) * sy(j) + sz(i) * sz(j)


class Ising(AbstractSpinHamiltonian):
    """Transverse-field Ising model in Pauli units,
    `H = -J sum_<ij> sigma^z_i sigma^z_j - h sum_i sigma^x_i`.

    The sum over `<ij>` runs over the nearest-neighbour bonds of the lattice
    (each bond once). Row `x` connects to `x` itself (diagonal, `-J sum s_i s_j`)
    and to the `n_sites` configurations with one spin flipped (element `-h`),
    so `max_conn_size = 1 + n_sites`. The transverse field does not conserve
    S^z: a space with fixed `total_sz` is rejected.

    **Arguments:**

    - `space`: a `SpinHalf` space without magnetisation constraint.
    - `lattice`: the lattice whose nearest-neighbour bonds carry `J`.
    - `J`: Ising coupling (default 1.0; positive is ferromagnetic).
    - `h`: transverse field (default 1.0).
    """

    space: nqs_core.AbstractDiscreteSpace
    lattice: AbstractLattice
    J: float
    h: float
    bonds: Array

    def __init__(self, space, lattice, J: float = 1.0, h: float = 1.0):
        _check_space("Ising", space, lattice)
        if space.constraint is not None:
            raise ValueError(
                f"Ising: the transverse field does not conserve S^z, so it cannot act on a "
                f"space with fixed total_sz={space.constraint.total / 2:g}; use a space without total_sz"
            )
        self.space = space
        self.lattice = lattice
        self.J = float(J)
        self.h = float(h)
        self.bonds = _bond_array(lattice.edges(1))

    @property
    def max_conn_size(self) -> int:
        return 1 + self.space.size

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        """Empty: the Ising basis is never rotated."""
        return ()

    def to_operator(self) -> Operator:
        """`-J sum_<ij> Z_i Z_j - h sum_i X_i` as an `Operator`."""
        bonds = np.asarray(self.bonds).tolist()
        zz = Operator.sum(Z(i) * Z(j) for i, j in bonds)
        return -self.J * zz - self.h * Operator.sum(X(i) for i in range(self.space.size))

    def connected(self, x):
        x = jnp.asarray(x, dtype=self.space.dtype)
        n = x.shape[-1]
        zz = x[self.bonds[:, 0]] * x[self.bonds[:, 1]]
        diag = -self.J * jnp.sum(zz)
        flips = jnp.where(jnp.eye(n, dtype=bool), -x[None, :], x[None, :])
        xps = jnp.concatenate([x[None, :], flips], axis=0)
        mels = jnp.concatenate([diag[None], jnp.full((n,), -self.h, dtype=x.dtype)])
        return xps, mels


class _AbstractExchange(AbstractSpinHamiltonian):
    """Shared implementation of `sum_b J_b S_i . S_j` over a list of bonds
    (private: `Heisenberg` and `J1J2` are the public, final classes)."""

    space: eqx.AbstractVar[nqs_core.AbstractDiscreteSpace]
    lattice: eqx.AbstractVar[AbstractLattice]
    units: eqx.AbstractVar[str]
    marshall_sign: eqx.AbstractVar[bool]
    bonds: eqx.AbstractVar[Array]
    perms: eqx.AbstractVar[Array]
    signs: eqx.AbstractVar[Array]
    bond_order: eqx.AbstractVar[Array]

    @abc.abstractmethod
    def _bond_couplings(self, dtype) -> Array:
        """The coupling of every bond, shape `(n_bonds,)`."""

    @property
    def max_conn_size(self) -> int:
        return 1 + int(self.bonds.shape[0])

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        """The sublattice-1 sites with `marshall_sign=True`, else empty."""
        return _sublattice_one(self.lattice) if self.marshall_sign else ()

    def to_operator(self) -> Operator:
        """`sum_b J_b S_i . S_j` (times 4 in Pauli units), rotated by `Z` on
        `marshall_sites`: the same matrix as `connected`."""
        scale = _UNITS[self.units]
        bonds = np.asarray(self.bonds).tolist()
        couplings = np.asarray(self._bond_couplings(jnp.float64)).tolist()
        h = Operator.sum(scale * c * _exchange(i, j) for (i, j), c in zip(bonds, couplings))
        return h.rotate_z(self.marshall_sites)

    def connected(self, x):
        x = jnp.asarray(x, dtype=self.space.dtype)
        scale = _UNITS[self.units]
        xi = x[self.bonds[:, 0]]
        xj = x[self.bonds[:, 1]]
        coupling = self._bond_couplings(x.dtype)
        # S^z S^z = s_i s_j / 4; (S^+S^- + S^-S^+) / 2 flips an anti-aligned pair with 1/2
        diag = (0.25 * scale) * jnp.sum(coupling * xi * xj)
        off = jnp.where(xi != xj, (0.5 * scale) * coupling * self.signs.astype(x.dtype), 0.0)
        # swapping two equal spins gives x back: padding rows come for free
        xps = jnp.concatenate([x[None, :], x[self.perms]], axis=0)
        mels = jnp.concatenate([diag[None], off])
        return xps, mels


def _exchange_fields(name, space, lattice, units, marshall_sign, orders):
    _check_space(name, space, lattice)
    if units not in _UNITS:
        raise ValueError(f"{name}: units must be one of {sorted(_UNITS)}, got {units!r}")
    blocks = [np.asarray(lattice.edges(o), dtype=np.int32).reshape(-1, 2) for o in orders]
    bonds = np.concatenate(blocks, axis=0)
    order = np.concatenate([np.full(len(b), o, dtype=np.int32) for b, o in zip(blocks, orders)])
    if marshall_sign:
        if not lattice.is_bipartite:
            raise ValueError(
                f"{name}: marshall_sign=True needs a bipartite lattice, but {lattice!r} is not "
                "bipartite (odd periodic direction)"
            )
        signs = _marshall_signs(lattice, bonds)
    else:
        signs = jnp.ones(len(bonds), dtype=jnp.int8)
    return (
        jnp.asarray(bonds),
        _swap_permutations(space.size, bonds),
        signs,
        jnp.asarray(order),
    )


class Heisenberg(_AbstractExchange):
    """Heisenberg antiferromagnet `H = J sum_<ij> S_i . S_j` on nearest-neighbour bonds.

    Units: with `units="spin"` (default) `S = sigma / 2`, so a bond contributes
    `J/4 s_i s_j` on the diagonal and `J/2` for exchanging two anti-aligned
    spins; `units="pauli"` uses `sigma_i . sigma_j`, four times that.

    Marshall sign: with `marshall_sign=True` the basis is rotated by
    `(-1)^(number of up spins on sublattice 1)`, which flips the sign of the
    off-diagonal elements on bonds joining the two sublattices (all
    nearest-neighbour bonds of a bipartite lattice), making the ground state
    positive for `J > 0`. The spectrum is unchanged. Needs a bipartite lattice.

    Row `x` connects to `x` (diagonal) and to one configuration per bond, with
    the two spins of the bond exchanged (matrix element 0 when they are equal),
    so `max_conn_size = 1 + n_bonds`. Conserves S^z.

    **Arguments:**

    - `space`: a `SpinHalf` space (usually with `total_sz = 0`).
    - `lattice`: the lattice whose nearest-neighbour bonds carry `J`.
    - `J`: exchange coupling (default 1.0; positive is antiferromagnetic).
    - `units`: `"spin"` (default) or `"pauli"`.
    - `marshall_sign`: apply the Marshall basis rotation (default `False`).
    """

    space: nqs_core.AbstractDiscreteSpace
    lattice: AbstractLattice
    J: float
    units: str = eqx.field(static=True)
    marshall_sign: bool = eqx.field(static=True)
    bonds: Array
    perms: Array
    signs: Array
    bond_order: Array

    def __init__(self, space, lattice, J: float = 1.0, units: str = "spin", marshall_sign: bool = False):
        self.space = space
        self.lattice = lattice
        self.J = float(J)
        self.units = units
        self.marshall_sign = bool(marshall_sign)
        self.bonds, self.perms, self.signs, self.bond_order = _exchange_fields(
            "Heisenberg", space, lattice, units, marshall_sign, (1,)
        )

    def _bond_couplings(self, dtype):
        return jnp.full(self.bonds.shape[0], self.J, dtype=dtype)


class J1J2(_AbstractExchange):
    """Frustrated Heisenberg model `H = J1 sum_NN S_i . S_j + J2 sum_NNN S_i . S_j`.

    Nearest-neighbour bonds are `lattice.edges(1)`, next-nearest ones
    `lattice.edges(2)` (the diagonals of the square lattice; pairs `(i, i+2)`
    on a chain). Units and matrix elements as for `Heisenberg`. With
    `marshall_sign=True` only bonds joining the two sublattices change the
    sign of their off-diagonal element: all J1 bonds, and no J2 bond on the
    square lattice or the chain (the rotation is then exact only for `J2 = 0`,
    but it is still a valid basis change). `max_conn_size = 1 + n_bonds`.

    **Arguments:**

    - `space`: a `SpinHalf` space (usually with `total_sz = 0`).
    - `lattice`: the lattice.
    - `J1`: nearest-neighbour coupling (default 1.0).
    - `J2`: next-nearest-neighbour coupling (default 0.5, the maximally
      frustrated point of the square lattice).
    - `units`: `"spin"` (default) or `"pauli"`.
    - `marshall_sign`: apply the Marshall basis rotation (default `False`).
    """

    space: nqs_core.AbstractDiscreteSpace
    lattice: AbstractLattice
    J1: float
    J2: float
    units: str = eqx.field(static=True)
    marshall_sign: bool = eqx.field(static=True)
    bonds: Array
    perms: Array
    signs: Array
    bond_order: Array

    def __init__(
        self,
        space,
        lattice,
        J1: float = 1.0,
        J2: float = 0.5,
        units: str = "spin",
        marshall_sign: bool = False,
    ):
        self.space = space
        self.lattice = lattice
        self.J1 = float(J1)
        self.J2 = float(J2)
        self.units = units
        self.marshall_sign = bool(marshall_sign)
        self.bonds, self.perms, self.signs, self.bond_order = _exchange_fields(
            "J1J2", space, lattice, units, marshall_sign, (1, 2)
        )

    def _bond_couplings(self, dtype):
        return jnp.where(self.bond_order == 1, self.J1, self.J2).astype(dtype)


_TERM_FIELDS = ("op", "coupling", "bonds", "color", "sites")


def _term_sites(where: str, term: dict, lattice: AbstractLattice) -> list[tuple[int, ...]]:
    """The site tuples a `spin_model` term acts on."""
    n = lattice.n_sites
    if ("bonds" in term) == ("sites" in term):
        raise ValueError(f"{where} needs exactly one of 'bonds' (a neighbour order) or 'sites'")
    if "bonds" in term:
        order = nqs_core.check_int(f"{where}: bonds", term["bonds"])
        edges = list(lattice.edges(order))
        if "color" in term:
            color = nqs_core.check_int(f"{where}: color", term["color"], minimum=0)
            colors = lattice.edge_colors(order)
            edges = [e for e, c in zip(edges, colors) if c == color]
            if not edges:
                raise ValueError(
                    f"{where}: no bond of order {order} has color {color} "
                    f"(colors present: {sorted(set(colors))})"
                )
        if not edges:
            raise ValueError(f"{where}: the lattice has no bonds of order {order}")
        return [tuple(e) for e in edges]
    if "color" in term:
        raise ValueError(f"{where}: 'color' selects bonds and needs 'bonds'")
    spec = term["sites"]
    if spec == "all":
        return [(i,) for i in range(n)]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f"{where}: sites must be \"all\", a list of sites or a list of site lists, got {spec!r}")
    tuples = [tuple(t) if isinstance(t, (list, tuple)) else (t,) for t in spec]
    for t in tuples:
        for i in t:
            i = nqs_core.check_int(f"{where}: a site", i, minimum=0)
            if i >= n:
                raise ValueError(f"{where}: site {i} is out of range for {n} sites (0..{n - 1})")
    if len({len(t) for t in tuples}) != 1:
        raise ValueError(f"{where}: every site list must have the same length, got {spec!r}")
    return tuples


def _term_operator(where: str, term, lattice: AbstractLattice, space=None) -> Operator:
    if not isinstance(term, dict):
        raise ValueError(f"{where} must be a table like {{ op = \"SzSz\", bonds = 1 }}, got {term!r}")
    unknown = sorted(set(term) - set(_TERM_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(_TERM_FIELDS)}")
    if not isinstance(term.get("op"), str):
        raise ValueError(f"{where} needs op = \"...\" (a string such as \"SxSx + SySy\"), got {term.get('op')!r}")
    coupling = term.get("coupling", 1.0)
    if isinstance(coupling, bool) or not isinstance(coupling, (int, float)):
        raise ValueError(f"{where}: coupling must be a number, got {coupling!r}")
    tuples = _term_sites(where, term, lattice)
    try:
        first = parse(term["op"], tuples[0], space)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    # relabel the parsed first tuple (the same text on other sites); parse again
    # when a tuple repeats a site
    distinct = len(set(tuples[0])) == len(tuples[0])
    total = Operator.sum(
        (first.relabel(dict(zip(tuples[0], t))) if distinct and len(set(t)) == len(t) else parse(term["op"], t, space)
         for t in tuples),
        first.local_dim,
    )
    return float(coupling) * total


class SpinModel(AbstractSpinHamiltonian):
    """A spin Hamiltonian (spin 1/2 or spin S) written as bond and site terms
    (the TOML form of the operator language), e.g.

    ```toml
    [system]
    name = "spin_model"
    terms = [ { op = "SxSx + SySy + 0.5 SzSz", bonds = 1, coupling = 1.0 },
              { op = "Sz", sites = "all", coupling = -0.3 },
              { op = "SzSz", sites = [[0, 3], [1, 2]], coupling = 0.2 } ]
    ```

    Each term is `coupling * sum_t op(t)` over site tuples `t`: `bonds = k`
    takes `lattice.edges(k)` (with `color = c` only the bonds whose
    `lattice.edge_colors(k)` is `c`, e.g. legs 0 and rungs 1 of a ladder),
    `sites = "all"` every single site, `sites = [[0, 3], ...]` explicit
    tuples (`[0, 3]` means the single sites 0 and 3). In `op` the `i`-th
    symbol of a product acts on `t[i]`; symbols `Sx Sy Sz Sp Sm` (spin units),
    `X Y Z` (Pauli), `I`; numbers (`1j` for imaginary), `+`, `-`, `*`.
    The sum must be Hermitian.

    With `marshall_sign = true` the basis is rotated by `Z` on sublattice 1
    (as `Heisenberg(marshall_sign=True)`): `Sx, Sy, Sp, Sm` change sign there;
    needs a bipartite lattice and spin 1/2. Connected elements are those of
    the compiled `SpinOperator` (one per distinct flip pattern).

    On a `Spin` space of spin S (`[space] name = "spin"`, `S = 1`), `Sx Sy Sz
    Sp Sm` are the spin-S matrices (`X Y Z` are refused), and `D` adds the
    single-ion anisotropy `D sum_i (S^z_i)^2` (for S = 1/2 a constant `D n/4`).
    The spin S is the space's: the same terms describe any S.

    **Arguments:**

    - `space`: a `SpinHalf` or `Spin` space (with `total_sz` the terms must
      conserve S^z).
    - `lattice`: the lattice whose bonds the terms use.
    - `terms`: the list of term tables.
    - `marshall_sign`: apply the Marshall basis rotation (default `False`).
    - `D`: single-ion anisotropy (default 0).
    """

    space: nqs_core.AbstractDiscreteSpace
    lattice: AbstractLattice
    marshall_sign: bool = eqx.field(static=True)
    D: float = eqx.field(static=True)
    operator: SpinOperator

    def __init__(self, space, lattice, terms: list, marshall_sign: bool = False, D: float = 0.0):
        if isinstance(space, nqs_core.AbstractLocalSpace) and space.local_dim > 2:
            if not isinstance(lattice, AbstractLattice):
                raise TypeError(f"spin_model needs a lattice, got {lattice!r}")
            check_sizes(space.size, lattice)
            if marshall_sign:
                raise ValueError("spin_model: marshall_sign=True is implemented for spin 1/2 only")
        else:
            _check_space("spin_model", space, lattice)
        if isinstance(D, bool) or not isinstance(D, (int, float)):
            raise ValueError(f"spin_model: D must be a number, got {D!r}")
        if not isinstance(terms, (list, tuple)) or not terms:
            raise ValueError(
                "spin_model needs terms = [ { op = \"SzSz\", bonds = 1, coupling = 1.0 }, ... ] "
                f"(a non-empty list of tables), got {terms!r}"
            )
        parts = [_term_operator(f"term {k} ({t.get('op')!r})" if isinstance(t, dict) else f"term {k}", t, lattice, space)
                 for k, t in enumerate(terms)]
        if D:
            parts.append(float(D) * Operator.sum((parse("SzSz", (i, i), space) for i in range(space.size)),
                                                 parts[0].local_dim))
        h = Operator.sum(parts, parts[0].local_dim)
        if not h.is_hermitian():
            bad = [k for k, p in enumerate(parts) if not p.is_hermitian()]
            hint = f" (term {bad[0]} {terms[bad[0]]['op']!r} is not)" if bad else ""
            raise ValueError(
                f"spin_model: the Hamiltonian is not Hermitian{hint}; write Hermitian sums such as "
                "\"SpSm + SmSp\""
            )
        self.space = space
        self.lattice = lattice
        self.marshall_sign = bool(marshall_sign)
        self.D = float(D)
        self.operator = SpinOperator(space, h.rotate_z(self.marshall_sites))

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        """The sublattice-1 sites with `marshall_sign=True`, else empty."""
        if not self.marshall_sign:
            return ()
        if not self.lattice.is_bipartite:
            raise ValueError(f"spin_model: marshall_sign=True needs a bipartite lattice, got {self.lattice!r}")
        return _sublattice_one(self.lattice)

    def to_operator(self) -> Operator:
        return self.operator.operator

    @property
    def max_conn_size(self) -> int:
        return self.operator.max_conn_size

    def connected(self, x):
        return self.operator.connected(x)
