"""Local values of many spin-1/2 operators in one pass: the union of their
connected configurations, each evaluated once.

`O_loc(x) = sum_x' <x|O|x'> psi(x') / psi(x)` for a list of operators bound to
the same two-level space (`PauliOperator`, what `Operator.on(space)` gives for
spin 1/2). The Pauli strings of all operators are grouped by their flip
pattern (the sites carrying `X` or `Y`); every distinct pattern is one
connected configuration `x' = flip(x)` shared by every operator and string
that has it, so `log psi` is evaluated once per (sample, pattern) where some
string is non-zero (compacted: only those entries, in fixed-size blocks, as
`nqs_core._system.compacted_local_energies`). The strings are then summed per
operator. Samples are processed in chunks (`lax.map`) to bound memory: the
term values of a chunk, `chunk x n_strings`, are the largest array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._operator_bind import PauliOperator
from ._system import AbstractDiscreteHamiltonian

#: Per chunk of samples, at most this many (sample, string, site) entries.
_CHUNK_BUDGET = 1 << 22
#: The needed (sample, pattern) entries of a chunk are evaluated in this many blocks at most.
_N_BLOCKS = 16


def pauli_operator(op) -> PauliOperator | None:
    """The `PauliOperator` behind `op` (itself, or the compiled form a wrapper
    such as `nqs_spins.SpinOperator` delegates `connected` to), or `None` when
    `op` computes its local values some other way."""
    if isinstance(op, PauliOperator):
        return op
    inner = getattr(op, "compiled", None)
    if (
        isinstance(inner, PauliOperator)
        and isinstance(op, AbstractDiscreteHamiltonian)
        and type(op).local_energies is AbstractDiscreteHamiltonian.local_energies
        and type(op).local_energy is AbstractDiscreteHamiltonian.local_energy
    ):
        return inner
    return None


class PauliUnion:
    """The strings of several `PauliOperator`s on one space as flat tables
    (NumPy, static): `n_ops` operators, `n_patterns` distinct flip patterns,
    `n_terms` (operator, pattern, Z-sites, coefficient) strings.

    **Arguments:**

    - `operators`: `PauliOperator`s bound to equal spaces.
    """

    def __init__(self, operators):
        first = operators[0]
        n = int(first.space.size)
        self.n_sites = n
        self.n_ops = len(operators)
        self.fixed_sz = bool(first.fixed_sz)
        patterns: dict[tuple, int] = {(): 0}
        rows, zs_all, coeffs = [], [], []
        for o, op in enumerate(operators):
            for key, c in op.operator.terms.items():
                flips = tuple(s for s, a, _ in key if a)
                zs = tuple(s for s, _, b in key if b)
                sign = -1 if len(set(flips) & set(zs)) % 2 else 1  # as PauliOperator: Z after the flip
                p = patterns.setdefault(flips, len(patterns))
                rows.append((o, p))
                zs_all.append(zs)
                coeffs.append(complex(c) * sign)
        self.n_patterns = len(patterns)
        k = max([len(z) for z in zs_all] + [1])
        self.term_op = np.array([r[0] for r in rows], dtype=np.int32)
        self.term_pattern = np.array([r[1] for r in rows], dtype=np.int32)
        sites = np.full((len(rows), k), n, dtype=np.int32)
        for t, z in enumerate(zs_all):
            sites[t, : len(z)] = z
        self.term_sites = sites
        c = np.asarray(coeffs, dtype=complex)
        self.term_coeff = c.real.copy() if np.all(c.imag == 0) else c
        signs = np.ones((self.n_patterns, n))
        flip_sites = np.full((self.n_patterns, max([len(f) for f in patterns] + [1])), n, dtype=np.int32)
        for f, p in patterns.items():
            signs[p, list(f)] = -1.0
            flip_sites[p, : len(f)] = f
        self.signs = signs
        self.flip_sites = flip_sites

    def chunk(self, chunk_size: int | None) -> int:
        """Samples per chunk: within `_CHUNK_BUDGET` entries, at most `chunk_size`."""
        c = max(1, _CHUNK_BUDGET // max(1, self.term_sites.size))
        return c if chunk_size is None else max(1, min(c, int(chunk_size)))


def union_local_values(union: PauliUnion, log_psi, xs, log_psi_xs, chunk_size: int | None = None):
    """The local values of every operator of `union`, shape `(n, n_ops)`, of
    the configurations `xs` (`(n, n_sites)`) with `log_psi_xs = log_psi(xs)`.

    Equal to each operator's `local_energies` up to rounding.
    """
    n = xs.shape[0]
    c = min(union.chunk(chunk_size), n)
    n_chunks = -(-n // c)
    pad = n_chunks * c - n
    if pad:
        xs = jnp.concatenate([xs, jnp.repeat(xs[:1], pad, axis=0)])
        log_psi_xs = jnp.concatenate([log_psi_xs, jnp.repeat(log_psi_xs[:1], pad, axis=0)])
    out = jax.lax.map(
        lambda a: _chunk_values(union, log_psi, a[0], a[1]),
        (xs.reshape((n_chunks, c) + xs.shape[1:]), log_psi_xs.reshape(n_chunks, c)),
    )
    return out.reshape((n_chunks * c,) + out.shape[2:])[:n]


def _chunk_values(union: PauliUnion, log_psi, xs, lx):
    c, n = xs.shape
    P = union.n_patterns
    x1 = jnp.concatenate([xs, jnp.ones((c, 1), xs.dtype)], axis=1)  # index n: the constant 1 of padded strings
    cdtype = np.promote_types(np.float64, union.term_coeff.dtype)
    tv = jnp.asarray(union.term_coeff).astype(cdtype) * jnp.prod(x1[:, union.term_sites], axis=-1).astype(cdtype)  # (c, T)
    pattern = jnp.asarray(union.term_pattern)
    if union.fixed_sz:  # a flip that leaves the sector has element 0 (as PauliOperator)
        x0 = jnp.concatenate([xs, jnp.zeros((c, 1), xs.dtype)], axis=1)
        balanced = jnp.sum(x0[:, union.flip_sites], axis=-1) == 0  # (c, P); pattern 0 (no flip) is balanced
        tv = jnp.where(balanced[:, pattern], tv, jnp.zeros((), cdtype))
    # a (sample, pattern) entry is needed if one of its strings is non-zero (pattern 0: x itself, never)
    nonzero = (tv != 0).astype(jnp.int32)
    need = jax.ops.segment_max(nonzero.T, pattern, num_segments=P).T > 0  # (c, P)
    need = need.at[:, 0].set(False)
    total = c * P
    width = max(1, min(total, -(-total // _N_BLOCKS)))
    n_slots = -(-total // width) * width
    flat = need.reshape(-1)
    pos = jnp.cumsum(flat.astype(jnp.int32)) - 1
    count = jnp.sum(flat, dtype=jnp.int32)
    entry = jnp.zeros(n_slots, jnp.int32).at[jnp.where(flat, pos, n_slots)].set(jnp.arange(total, dtype=jnp.int32), mode="drop")
    signs = jnp.asarray(union.signs).astype(xs.dtype)
    out = jax.eval_shape(log_psi, xs[0])

    def cond(carry):
        return carry[0] * width < count

    def body(carry):
        i, buf = carry
        e = jax.lax.dynamic_slice(entry, (i * width,), (width,))
        block = xs[e // P] * signs[e % P]
        return i + 1, jax.lax.dynamic_update_slice(buf, jax.vmap(log_psi)(block).astype(out.dtype), (i * width,))

    _, buf = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), jnp.zeros(n_slots, out.dtype)))
    lxp = buf[jnp.where(flat, pos, 0)].reshape(c, P)
    ratio = jnp.exp(lxp - lx[:, None].astype(out.dtype))
    dtype = np.promote_types(cdtype, ratio.dtype)
    ratio = jnp.where(need, ratio.astype(dtype), jnp.zeros((), dtype)).at[:, 0].set(1)
    terms = tv.astype(dtype) * ratio[:, pattern]  # (c, T); vanishing strings contribute exactly 0
    terms = jnp.where(tv != 0, terms, jnp.zeros((), dtype))
    return jax.ops.segment_sum(terms.T, jnp.asarray(union.term_op), num_segments=union.n_ops).T  # (c, n_ops)

