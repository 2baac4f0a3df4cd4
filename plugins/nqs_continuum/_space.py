"""Configuration space of A particles on a line."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

import nqs_core

from ._common import as_int


class Particles1D(nqs_core.AbstractContinuousSpace):
    """Positions of `n_particles` particles on the real line.

    A configuration is a float array `x` of shape `(n_particles,)`, `x[i]`
    the position of particle `i` (in oscillator lengths for the trapped
    systems). `random_state` draws independent standard normal positions,
    about the size of a harmonic-oscillator ground state.

    **Arguments:**

    - `n_particles`: number of particles `A >= 1`.
    """

    n_particles: int = eqx.field(static=True)

    def __init__(self, n_particles: int):
        self.n_particles = as_int("n_particles", n_particles, 1)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_particles,)

    def random_state(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` configurations with standard normal positions, shape `(n, n_particles)`."""
        return jax.random.normal(key, (n, self.n_particles), dtype=self.dtype)
