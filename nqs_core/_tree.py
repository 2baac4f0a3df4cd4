"""Pytree helpers: parameters as real vectors, chunked batching."""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def parameters(model):
    """Split a module into `(params, static)`: params are its inexact arrays."""
    return eqx.partition(model, eqx.is_inexact_array)


def _split_complex(tree):
    return jax.tree.map(lambda a: (a.real, a.imag) if jnp.iscomplexobj(a) else a, tree)


def real_ravel(params) -> tuple[jax.Array, Callable]:
    """Flatten a parameter pytree into one real vector.

    Complex leaves become two real blocks (real and imaginary part), as in
    Rende et al. 2024, Eqs. 2-8: every complex parameter counts as two real ones,
    so natural-gradient formulas need no holomorphy assumption.

    **Returns:** `(vector, unravel)` with `unravel(vector)` rebuilding the
    original pytree (complex leaves reassembled as `re + 1j * im`).
    """
    leaves, treedef = jax.tree.flatten(params)
    is_c = [jnp.iscomplexobj(a) for a in leaves]
    vec, unravel_split = ravel_pytree(_split_complex(params))

    def unravel(v):
        split = unravel_split(v)
        split_leaves = jax.tree.leaves(split)
        out, i = [], 0
        for c in is_c:
            if c:
                out.append(jax.lax.complex(split_leaves[i], split_leaves[i + 1]))
                i += 2
            else:
                out.append(split_leaves[i])
                i += 1
        return jax.tree.unflatten(treedef, out)

    return vec, unravel


class HolomorphicLayout(eqx.Module):
    """Where the complex parameters of a pytree sit in `real_ravel` order.

    `real_ravel` writes each complex leaf as its real block followed by its
    imaginary block. For a holomorphic `log psi` (`AbstractAnsatz.holomorphic`)
    the log-derivative of the imaginary part of a parameter is `i` times that
    of its real part, so the `(n, P)` log-derivative matrix of the real
    parameters is `[A_1, i A_1, A_2, i A_2, ...]` with `A` the `(n, P / 2)`
    matrix of the complex derivatives `d log psi / d theta_c` (in the order of
    `jax.flatten_util.ravel_pytree` on the complex leaves).

    **Arguments:** `params`, a pytree whose leaves are all complex.

    **Raises:** `ValueError` if a leaf is real.
    """

    blocks: tuple[tuple[int, int], ...] = eqx.field(static=True)

    def __init__(self, params):
        blocks, offset = [], 0
        for leaf in jax.tree.leaves(params):
            if not jnp.iscomplexobj(leaf):
                raise ValueError("a holomorphic parameter layout needs complex parameters only")
            blocks.append((offset, int(leaf.size)))
            offset += 2 * int(leaf.size)
        self.blocks = tuple(blocks)

    def complex_columns(self, y):
        """`A` from the real-parameter matrix `y` (`(n, P)` -> `(n, P / 2)`):
        the columns of the real parts."""
        return jnp.concatenate([y[..., o : o + n] for o, n in self.blocks], axis=-1)

    def real_vector(self, z):
        """The real vector (`real_ravel` order) of the complex vector `z`."""
        parts, start = [], 0
        for _, n in self.blocks:
            parts += [jnp.real(z[start : start + n]), jnp.imag(z[start : start + n])]
            start += n
        return jnp.concatenate(parts)

    def real_columns(self, a):
        """The real-parameter matrix `[A_1, i A_1, A_2, i A_2, ...]` of the
        complex one `A` (`(..., P / 2)` -> `(..., P)`): the inverse of
        `complex_columns` for a holomorphic `log psi`."""
        parts, start = [], 0
        for _, n in self.blocks:
            blk = a[..., start : start + n]
            parts += [blk, 1j * blk]
            start += n
        return jnp.concatenate(parts, axis=-1)

    def complex_vector(self, v):
        """The complex vector of the real vector `v` (`real_ravel` order)."""
        return jnp.concatenate([jax.lax.complex(v[o : o + n], v[o + n : o + 2 * n]) for o, n in self.blocks])


def n_real_parameters(model) -> int:
    """Number of real parameters (complex ones count twice)."""
    params, _ = parameters(model)
    return int(sum(a.size * (2 if jnp.iscomplexobj(a) else 1) for a in jax.tree.leaves(params)))


def batch_apply(f: Callable, xs, chunk_size: int | None = None):
    """`vmap(f)(xs)` over the leading axis, in chunks of `chunk_size` to bound
    memory (`None`: one chunk)."""
    n = jax.tree.leaves(xs)[0].shape[0]
    if chunk_size is None or chunk_size >= n:
        return jax.vmap(f)(xs)
    return jax.lax.map(f, xs, batch_size=chunk_size)


def log_psi_batch(model, xs, chunk_size: int | None = None):
    """`log psi` of a batch of configurations `(n, *shape)`."""
    return batch_apply(model, xs, chunk_size)
