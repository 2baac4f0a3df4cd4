"""Spinless fermions in a one-dimensional harmonic trap with a Gaussian interaction."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Scalar

import nqs_core

from ._common import as_float
from ._space import Particles1D


class TrappedFermions1D(nqs_core.AbstractContinuumHamiltonian):
    """`A` spinless fermions in a 1D harmonic trap with a finite-range Gaussian
    two-body interaction (Keeble et al. 2023), in units `hbar = m = omega = 1`:

    `H = sum_i (-1/2 d^2/dx_i^2 + x_i^2/2)
       + V0 / (sqrt(2 pi) sigma0) sum_{i<j} exp(-(x_i - x_j)^2 / (2 sigma0^2))`.

    The interaction is a normalised Gaussian of width `sigma0` times `V0`, so
    it tends to `V0 delta(x_i - x_j)` as `sigma0 -> 0`; `V0 < 0` attracts.
    (This normalisation reproduces the reference energies of
    `tests/data/reference.json`.)
    Free fermions (`V0 = 0`) have `E0 = A^2 / 2`.

    The local energy uses the core's exact forward-over-reverse Laplacian of
    `log psi` (one Jacobian-vector product per coordinate, `A` passes).

    **Arguments:**

    - `space`: a `Particles1D` space.
    - `V0`: interaction strength (default 0, free fermions).
    - `sigma0`: interaction range, > 0 (default 0.5).
    """

    space: Particles1D
    V0: float = eqx.field(static=True)
    sigma0: float = eqx.field(static=True)
    kinetic_prefactor: float = eqx.field(static=True)

    def __init__(self, space: Particles1D, V0: float = 0.0, sigma0: float = 0.5):
        if not isinstance(space, Particles1D):
            raise TypeError(f"TrappedFermions1D needs a Particles1D space, got {type(space).__name__}")
        self.space = space
        self.V0 = as_float("V0", V0)
        self.sigma0 = as_float("sigma0", sigma0, positive=True)
        self.kinetic_prefactor = 0.5

    @property
    def n_particles(self) -> int:
        return self.space.n_particles

    def trap_potential(self, x: Array) -> Scalar:
        """`sum_i x_i^2 / 2`."""
        return 0.5 * jnp.sum(x * x)

    def interaction(self, x: Array) -> Scalar:
        """`V0/(sqrt(2 pi) sigma0) sum_{i<j} exp(-(x_i-x_j)^2/(2 sigma0^2))`."""
        a = x.shape[-1]
        if a < 2 or self.V0 == 0.0:
            return jnp.zeros((), x.dtype)
        i, j = jnp.triu_indices(a, k=1)
        d = x[i] - x[j]
        pref = self.V0 / (math.sqrt(2.0 * math.pi) * self.sigma0)
        return pref * jnp.sum(jnp.exp(-(d * d) / (2.0 * self.sigma0**2)))

    def potential(self, x: Array) -> Scalar:
        """Trap plus interaction energy of one configuration."""
        return self.trap_potential(x) + self.interaction(x)
