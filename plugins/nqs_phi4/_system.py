"""The lattice phi^4 action in 1+1 D (the system; its field space is in `_space.py`)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

import nqs_core

from ._space import Phi4Field


def _real(name: str, v, *, nonneg: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    v = float(v)
    if nonneg and v < 0.0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return v


class Phi4Action(nqs_core.AbstractAction):
    """Euclidean lattice action of phi^4 theory in 1+1 D (Bedaque and Oh 2024, Eq. 14), periodic.

    `S = sum_x [ sum_mu (phi_{x+mu} - phi_x)^2 / 2 + m2/2 phi_x^2 + lam/4! phi_x^4 ]`
    with `mu` = time (axis 0) and space (axis 1), lattice spacing 1. The mass and
    quartic terms are counted once per site (the convention that reproduces the
    mass m = 0.194 of Bedaque and Oh 2024, Table II, at `m2 = 0.01, lam = 0.1` on 40x10);
    the force is `dS/dphi_x = sum_mu (2 phi_x - phi_{x+mu} - phi_{x-mu}) + m2 phi_x
    + lam/6 phi_x^3`.

    **Arguments:**

    - `space`: a `Phi4Field` (built from `L0, L1` when not given).
    - `L0`, `L1`: lattice size (time x space), used when `space` is not given.
    - `m2`: bare mass squared `m^2` (may be negative: broken phase).
    - `lam`: quartic coupling `lambda >= 0`.
    """

    space: Phi4Field
    m2: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)

    def __init__(self, space: Phi4Field | None = None, L0: int = 40, L1: int = 10, m2: float = 0.01, lam: float = 0.1):
        if space is None:
            space = Phi4Field(L0, L1)
        if not isinstance(space, Phi4Field):
            raise TypeError(f"space must be a Phi4Field (name 'phi4_field'), got {type(space).__name__}")
        self.space = space
        self.m2 = _real("m2", m2)
        self.lam = _real("lam", lam, nonneg=True)

    @property
    def shape(self) -> tuple[int, int]:
        return self.space.shape

    def _check(self, phi):
        if phi.shape[-2:] != self.shape:
            raise ValueError(f"phi must have trailing shape {self.shape}, got {phi.shape}")

    def __call__(self, phi: Array) -> Array:
        """`S[phi]` of one configuration `(L0, L1)` (or a batch: sums the last two axes)."""
        self._check(phi)
        kin = 0.0
        for axis in (-2, -1):
            d = jnp.roll(phi, -1, axis=axis) - phi
            kin = kin + 0.5 * d * d
        pot = (0.5 * self.m2) * phi * phi + (self.lam / 24.0) * phi**4
        return jnp.sum(kin + pot, axis=(-2, -1))

    def grad(self, phi: Array) -> Array:
        """Force `dS/dphi` (closed form), same shape as `phi`."""
        self._check(phi)
        lap = 4.0 * phi
        for axis in (-2, -1):
            lap = lap - jnp.roll(phi, 1, axis=axis) - jnp.roll(phi, -1, axis=axis)
        return lap + self.m2 * phi + (self.lam / 6.0) * phi**3

    def local_action(self, phi: Array, value: Array) -> Array:
        """Terms of `S` that depend on the site values if they were `value` (same
        shape as `phi`), the neighbours held at `phi`: `2 v^2 - v * sum_nn phi
        + m2/2 v^2 + lam/24 v^4`, site by site (for local Metropolis)."""
        nn = jnp.zeros_like(phi)
        for axis in (-2, -1):
            nn = nn + jnp.roll(phi, 1, axis=axis) + jnp.roll(phi, -1, axis=axis)
        v = value
        return (2.0 + 0.5 * self.m2) * v * v - v * nn + (self.lam / 24.0) * v**4
