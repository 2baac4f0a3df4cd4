"""Binding an `Operator` to a local space: padded connected elements.

`bind_operator` (what `Operator.on(space)` calls) compiles an operator for one
space: `PauliOperator` on two-level spaces with values `+-1` (spin 1/2, qubits;
one gather per Pauli string), `LocalOperator` on any `AbstractLocalSpace` of
local dimension `d` (tables of matrix elements per cluster of sites).
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._local_space import local_values_of, values_to_indices
from ._weyl import _phase
from ._space import AbstractDiscreteSpace
from ._system import AbstractDiscreteHamiltonian

#: Longest flip pattern whose S^z conservation is checked by enumeration.
_MAX_CHECKED_FLIP = 16


def _check_operator(owner: str, operator) -> None:
    """The bindings take the algebra's `Operator` (checked by its members: the
    algebra module imports this one)."""
    if not (hasattr(operator, "terms") and hasattr(operator, "local_dim") and hasattr(operator, "sites")):
        raise TypeError(f"{owner} needs an Operator, got {operator!r}")


def check_binding(owner: str, space, op) -> tuple[float, ...]:
    """Raise unless `op` can act on `space` (same local dimension, sites in
    range); return the space's local basis values.

    **Arguments:**

    - `owner`: the name used in the error message.
    - `space`: a local space (`AbstractLocalSpace`) or a spin-1/2 space.
    - `op`: the `Operator`.

    **Returns:** the local basis values (`local_values_of(space)`).
    """
    values = local_values_of(space)
    if len(values) != op.local_dim:
        raise TypeError(
            f"{owner}: the operator has local dimension {op.local_dim}, but {space!r} has "
            f"{len(values)} local states"
        )
    sites = op.sites
    if sites and sites[-1] >= space.size:
        raise ValueError(
            f"{owner}: the operator acts on site {sites[-1]}, but the space has {space.size} "
            f"sites (0..{space.size - 1})"
        )
    return values


def _sector_label(space) -> str:
    total = space.constraint.total
    return f"total_sz={total / 2:g}" if getattr(space, "total_sz", None) is not None else f"sum={total:g}"


def _check_conserves(owner: str, space, flips: tuple, terms: list) -> None:
    """Raise unless the terms of one flip pattern vanish whenever the flipped
    sites do not hold as many up as down spins (S^z is then conserved)."""
    label = f"site(s) {list(flips)}"
    problem = ValueError(
        f"{owner}: the operator does not conserve S^z (it flips {label}), so it cannot act on "
        f"a space with fixed {_sector_label(space)}; use a space without total_sz"
    )
    k = len(flips)
    if k % 2:
        raise problem
    if k > _MAX_CHECKED_FLIP:
        raise ValueError(
            f"{owner}: cannot check S^z conservation of a term flipping {k} sites "
            f"(limit {_MAX_CHECKED_FLIP}); use a space without total_sz"
        )
    inside = {s: j for j, s in enumerate(flips)}
    sigma = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
    unbalanced = sigma[np.sum(sigma, axis=1) != 0]
    groups: dict = {}
    for zs, c in terms:
        rest = tuple(s for s in zs if s not in inside)
        cols = [inside[s] for s in zs if s in inside]
        value = np.prod(unbalanced[:, cols], axis=1) if cols else np.ones(len(unbalanced))
        groups[rest] = groups.get(rest, 0) + c * value
    scale = max(abs(c) for _, c in terms)
    if any(np.max(np.abs(v)) > 1e-12 * scale for v in groups.values()):
        raise problem


def _padded(rows: list[list[int]], fill: int, width: int | None = None) -> np.ndarray:
    width = max([len(r) for r in rows] + [1]) if width is None else width
    out = np.full((len(rows), width), fill, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class PauliOperator(AbstractDiscreteHamiltonian):
    """An `Operator` bound to a two-level space with values `+1, -1` (spin 1/2):
    padded connected elements.

    The Pauli strings of the operator are grouped by their flip pattern (the
    sites carrying `X` or `Y`). Row `x` connects to `x` itself (the diagonal
    strings, if any) and to one configuration per distinct off-diagonal
    pattern, so `max_conn_size = (1 if diagonal terms) + n_patterns`: the
    number of distinct connected configurations, however the operator was
    written. A string `X^a Z^b` contributes `c prod_{i in b} x'_i` at
    `x' = flip_a(x)`; per pattern the strings are a padded table of site
    indices and coefficients, and the products are gathers (static shapes, no
    loop over samples). With a fixed `total_sz` the operator must conserve
    it (checked exactly at construction), and elements leaving the sector are
    exactly 0.

    **Arguments:**

    - `space`: a two-level space with local values `(+1, -1)` (e.g. `SpinHalf`).
    - `operator`: the `Operator`.
    """

    space: AbstractDiscreteSpace
    operator: object = eqx.field(static=True)
    has_diagonal: bool = eqx.field(static=True)
    fixed_sz: bool = eqx.field(static=True)
    diag_sites: Array
    diag_coeffs: Array
    flip_signs: Array
    flip_sites: Array
    off_sites: Array
    off_coeffs: Array

    def __init__(self, space, operator):
        _check_operator("PauliOperator", operator)
        if tuple(check_binding("PauliOperator", space, operator)) != (1.0, -1.0):
            raise TypeError(f"PauliOperator needs a space with local values (+1, -1), got {space!r}")
        n = space.size
        groups: dict[tuple, list] = {}
        for key, c in operator.terms.items():
            flips = tuple(s for s, a, _ in key if a)
            zs = tuple(s for s, _, b in key if b)
            # prod_{b} x'_i = (-1)^{|a & b|} prod_{b} x_i with x' = flip_a(x)
            sign = -1 if len(set(flips) & set(zs)) % 2 else 1
            groups.setdefault(flips, []).append((zs, c * sign))
        diag = groups.pop((), [])
        patterns = sorted(groups, key=lambda f: (len(f), f))
        fixed = space.constraint is not None
        if fixed:
            for f in patterns:
                _check_conserves("SpinOperator", space, f, groups[f])
        self.space = space
        self.operator = operator
        self.fixed_sz = fixed
        self.has_diagonal = bool(diag) or not patterns
        coeffs = [c for _, c in diag] + [c for f in patterns for _, c in groups[f]]
        cdtype = np.float64 if all(complex(c).imag == 0 for c in coeffs) else np.complex128
        k = max([len(z) for z, _ in diag] + [len(z) for f in patterns for z, _ in groups[f]] + [1])
        # index n points at an appended constant: 1 for products, 0 for sums
        self.diag_sites = jnp.asarray(_padded([list(z) for z, _ in diag], n, k))
        dc = np.array([c for _, c in diag], dtype=complex)
        self.diag_coeffs = jnp.asarray(dc.real if cdtype == np.float64 else dc)
        mask = np.zeros((len(patterns), n))
        for m, f in enumerate(patterns):
            mask[m, list(f)] = 1.0
        self.flip_signs = jnp.asarray(1.0 - 2.0 * mask)
        self.flip_sites = jnp.asarray(_padded([list(f) for f in patterns], n))
        width = max([len(groups[f]) for f in patterns] + [1])
        off_sites = np.full((len(patterns), width, k), n, dtype=np.int32)
        off_coeffs = np.zeros((len(patterns), width), dtype=cdtype)
        for m, f in enumerate(patterns):
            for t, (z, c) in enumerate(groups[f]):
                off_sites[m, t, : len(z)] = z
                off_coeffs[m, t] = c.real if cdtype == np.float64 else c
        self.off_sites = jnp.asarray(off_sites)
        self.off_coeffs = jnp.asarray(off_coeffs)

    def to_operator(self):
        """The `Operator` this was compiled from."""
        return self.operator

    @property
    def max_conn_size(self) -> int:
        return int(self.has_diagonal) + int(self.flip_signs.shape[0])

    def connected(self, x):
        x = jnp.asarray(x, dtype=self.space.dtype)
        if jnp.iscomplexobj(self.off_coeffs):
            cdtype = jnp.complex128 if x.dtype == jnp.float64 else jnp.complex64
        else:
            cdtype = x.dtype
        x1 = jnp.concatenate([x, jnp.ones((1,), x.dtype)])
        xps, mels = [], []
        if self.has_diagonal:
            mono = jnp.prod(x1[self.diag_sites], axis=-1).astype(cdtype)
            xps.append(x[None, :])
            mels.append(jnp.sum(self.diag_coeffs.astype(cdtype) * mono)[None])
        if self.flip_signs.shape[0]:
            mono = jnp.prod(x1[self.off_sites], axis=-1).astype(cdtype)
            off = jnp.sum(self.off_coeffs.astype(cdtype) * mono, axis=-1)
            if self.fixed_sz:
                x0 = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])
                balanced = jnp.sum(x0[self.flip_sites], axis=-1) == 0
                off = jnp.where(balanced, off, jnp.zeros((), cdtype))
            xps.append(x[None, :] * self.flip_signs.astype(x.dtype))
            mels.append(off)
        return jnp.concatenate(xps, axis=0), jnp.concatenate(mels)


class LocalOperator(AbstractDiscreteHamiltonian):
    """An `Operator` bound to a local space of any dimension `d`: padded
    connected elements from exact tables.

    The Weyl strings of the operator are grouped by their shift pattern (the
    shift `a_i` of every site, `X^a` moving the local basis state `j` to
    `j + a mod d`). Row `x` connects to one configuration per pattern,
    `x' = x` shifted by `-a` site by site, so
    `max_conn_size = (1 if diagonal terms) + n_patterns`. Within a pattern the
    strings are grouped by the sites they act on (a cluster, usually one or
    two sites), and each cluster's matrix element is tabulated, at
    construction, over the local states of its sites: `<x|O|x'>` is then a sum
    of table look-ups. The tables are summed and cleaned in NumPy (entries
    below `1e-13` times the operator's coefficient sum are exact zeros), so
    the "wrap-around" elements a shift modulo `d` would produce (e.g. `S^+` on
    `m = S`) are exact zeros, not rounding noise, and real operators give real
    elements. With a constraint (`SumConstraint`, e.g. a fixed total S^z) the
    operator must conserve it: every non-zero table entry is checked at
    construction.

    **Arguments:**

    - `space`: an `nqs_core.AbstractLocalSpace` of the operator's local dimension.
    - `operator`: the `Operator`.
    """

    space: AbstractDiscreteSpace
    operator: object = eqx.field(static=True)
    values: Array
    shifts: Array
    cluster_sites: Array
    cluster_strides: Array
    cluster_offsets: Array
    tables: Array

    def __init__(self, space, operator):
        _check_operator("LocalOperator", operator)
        values = check_binding("LocalOperator", space, operator)
        d = operator.local_dim
        n = space.size
        v = np.asarray(values, dtype=np.float64)
        groups: dict[tuple, dict[tuple, list]] = {}
        for key, c in operator.terms.items():
            pattern = tuple((s, a) for s, a, _ in key if a)
            support = tuple(s for s, _, _ in key)
            groups.setdefault(pattern, {}).setdefault(support, []).append((key, c))
        patterns = sorted(groups, key=lambda f: (len(f) > 0, len(f), f))
        if not patterns:
            patterns, groups = [()], {(): {}}
        tol = 1e-13 * sum(abs(c) for c in operator.terms.values())
        phases = np.array([[_phase(d, k) for k in range(d)]], dtype=complex)[0]
        flat = [np.zeros(1, dtype=complex)]  # entry 0: the zero of padded clusters
        offset = 1
        rows = []  # per pattern: list of (sites, strides, offset)
        for pattern in patterns:
            row = []
            for support, terms in groups[pattern].items():
                k = len(support)
                grids = np.indices((d,) * k).reshape(k, -1) if k else np.zeros((0, 1), dtype=int)
                table = np.zeros(grids.shape[1], dtype=complex)
                for key, c in terms:
                    expo = sum(b * grids[support.index(s)] for s, _, b in key)
                    table += c * phases[np.asarray(expo) % d]  # source states j' of the cluster
                table.real[np.abs(table.real) <= tol] = 0.0
                table.imag[np.abs(table.imag) <= tol] = 0.0
                if space.constraint is not None and pattern:
                    change = sum(
                        v[(grids[support.index(s)] + a) % d] - v[grids[support.index(s)]] for s, a in pattern
                    )
                    if np.any((table != 0) & (np.abs(change) > 1e-9)):
                        raise ValueError(
                            f"LocalOperator: the operator does not conserve the constraint of {space!r} "
                            f"(it changes the sum of the values on sites {[s for s, _ in pattern]}); "
                            "use a space without a constraint (e.g. without total_sz)"
                        )
                if not np.any(table):
                    continue
                strides = d ** np.arange(k - 1, -1, -1, dtype=np.int64)
                row.append((support, strides, offset))
                flat.append(table)
                offset += len(table)
            rows.append(row)
        keep = [i for i, (p, r) in enumerate(zip(patterns, rows)) if r or not p]
        patterns = [patterns[i] for i in keep]
        rows = [rows[i] for i in keep]
        width = max([len(r) for r in rows] + [1])
        kmax = max([len(s) for r in rows for s, _, _ in r] + [1])
        sites = np.zeros((len(rows), width, kmax), dtype=np.int32)
        strides = np.zeros((len(rows), width, kmax), dtype=np.int32)
        offsets = np.zeros((len(rows), width), dtype=np.int32)
        for g, row in enumerate(rows):
            for w, (support, st, off) in enumerate(row):
                sites[g, w, : len(support)] = support
                strides[g, w, : len(support)] = st
                offsets[g, w] = off
        shifts = np.zeros((len(patterns), n), dtype=np.int32)
        for g, pattern in enumerate(patterns):
            for s, a in pattern:
                shifts[g, s] = a
        tables = np.concatenate(flat)
        if np.all(tables.imag == 0):
            tables = tables.real.copy()
        self.space = space
        self.operator = operator
        self.values = jnp.asarray(v)
        self.shifts = jnp.asarray(shifts)
        self.cluster_sites = jnp.asarray(sites)
        self.cluster_strides = jnp.asarray(strides)
        self.cluster_offsets = jnp.asarray(offsets)
        self.tables = jnp.asarray(tables)

    def to_operator(self):
        """The `Operator` this was compiled from."""
        return self.operator

    @property
    def max_conn_size(self) -> int:
        return int(self.shifts.shape[0])

    def connected(self, x):
        x = jnp.asarray(x, dtype=self.space.dtype)
        d = self.values.shape[0]
        j = values_to_indices(x, self.values)
        jp = (j[None, :] - self.shifts) % d  # (patterns, n): source states x'
        local = jp[jnp.arange(jp.shape[0], dtype=jnp.int32)[:, None, None], self.cluster_sites]  # (patterns, clusters, k)
        index = self.cluster_offsets + jnp.sum(local * self.cluster_strides, axis=-1, dtype=jnp.int32)
        mels = jnp.sum(self.tables[index], axis=-1)
        if not jnp.iscomplexobj(mels):
            mels = mels.astype(x.dtype)
        return self.values.astype(x.dtype)[jp], mels


def bind_operator(operator, space) -> AbstractDiscreteHamiltonian:
    """Compile `operator` for `space`: a `PauliOperator` when the space is a
    two-level space with local values `(+1, -1)` (spin 1/2), else a
    `LocalOperator`.

    **Arguments:**

    - `operator`: the `Operator`.
    - `space`: a local space (`nqs_core.AbstractLocalSpace`) or a spin-1/2 space.

    **Returns:** an `nqs_core.AbstractDiscreteHamiltonian` with `to_operator()`.
    """
    if tuple(local_values_of(space)) == (1.0, -1.0):
        return PauliOperator(space, operator)
    return LocalOperator(space, operator)
