"""Local Hilbert spaces: a discrete space of `n_sites` identical sites, each a
`d`-dimensional local Hilbert space with a declared basis and local operators.

This is what the operator language (`nqs_core.Operator`) binds to: spin 1/2 is
one instance (`d = 2`, values `+1, -1`), spin S another (`d = 2S + 1`, values
`2m`), bosons with a cutoff `n_max` a third (`d = n_max + 1`, values `n`).
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

from ._space import AbstractDiscreteSpace


class AbstractLocalSpace(AbstractDiscreteSpace):
    """A discrete space of `n_sites` sites that each carry the same
    `d`-dimensional local Hilbert space.

    A configuration has shape `(n_sites,)` and holds, per site, the value
    `local_values[j]` of that site's local basis state `j`. The local basis
    order `j = 0 .. d - 1` is the row/column order of the local operator
    matrices (`local_matrix`) and of `nqs_core.local_operator`: spin S uses
    `m = S, S - 1, ..., -S` (so spin 1/2 is `(up, down)`), stored as the values
    `2m`; bosons use `n = 0 .. n_max`.

    Implement `local_values`, `local_matrix`, `local_operator_names` and the
    members of `nqs_core.AbstractDiscreteSpace`. `local_states` (the sorted
    values) must hold the same values as `local_values`.
    """

    @property
    @abc.abstractmethod
    def local_values(self) -> tuple[float, ...]:
        """The configuration value of local basis state `j`, for `j = 0 .. d-1`
        (distinct numbers, in the order of the local operator matrices)."""

    @abc.abstractmethod
    def local_matrix(self, name: str) -> np.ndarray:
        """The `d x d` matrix of the local operator `name` (one of
        `local_operator_names`) in the local basis: element `[r, c]` is
        `<r|O|c>`. Raise `ValueError` naming the valid names otherwise."""

    @property
    @abc.abstractmethod
    def local_operator_names(self) -> tuple[str, ...]:
        """The names `local_matrix` accepts, e.g. `("sx", "sy", "sz", "sp", "sm")`."""

    @property
    def local_dim(self) -> int:
        """The local dimension `d` (number of local basis states)."""
        return len(self.local_values)


def local_values_of(space) -> tuple[float, ...]:
    """The local basis values of `space`: `space.local_values` for an
    `AbstractLocalSpace`; for another discrete space with one-dimensional
    configurations, its `local_states` in descending order (the spin
    convention: basis state 0 is the largest value, e.g. `(+1, -1)` for spin 1/2).

    **Arguments:**

    - `space`: a discrete space.

    **Returns:** a tuple of `d` floats.
    """
    if isinstance(space, AbstractLocalSpace):
        return tuple(float(v) for v in space.local_values)
    if not isinstance(space, AbstractDiscreteSpace) or len(space.shape) != 1:
        raise TypeError(
            f"operators act on discrete spaces with configurations of shape (n_sites,), got {space!r}"
        )
    return tuple(sorted((float(v) for v in space.local_states), reverse=True))


def values_to_indices(x, values):
    """Local basis indices of configuration values (NumPy or JAX; jit-able):
    `j` with `values[j] == x`, elementwise.

    **Arguments:**

    - `x`: an array of configuration values.
    - `values`: the local basis values (`local_values_of(space)`).

    **Returns:** an int32 array of the shape of `x`.
    """
    xp = jnp if isinstance(x, jax.Array) else np
    v = values if isinstance(values, jax.Array) else xp.asarray(np.asarray(values, dtype=np.float64))
    v = v.astype(x.dtype)
    return xp.argmax(x[..., None] == v, axis=-1).astype(xp.int32)
