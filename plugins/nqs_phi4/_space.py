"""The field space of lattice phi^4 in 1+1 D: a real scalar field on a periodic lattice."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

import nqs_core


class Phi4Field(nqs_core.AbstractContinuousSpace):
    """Real scalar field on a periodic `L0 x L1` lattice (axis 0 is Euclidean time).

    A configuration is a float array of shape `(L0, L1)`.

    **Arguments:**

    - `L0`: number of time slices (>= 2).
    - `L1`: number of spatial sites (>= 2).
    """

    L0: int = eqx.field(static=True)
    L1: int = eqx.field(static=True)

    def __init__(self, L0: int = 40, L1: int = 10):
        self.L0 = nqs_core.check_int("L0", L0, 2)
        self.L1 = nqs_core.check_int("L1", L1, 2)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.L0, self.L1)

    def random_state(self, key: PRNGKeyArray, n: int) -> Array:
        return 0.1 * jax.random.normal(key, (n, self.L0, self.L1), dtype=self.dtype)
