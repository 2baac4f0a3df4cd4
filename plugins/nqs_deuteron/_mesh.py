"""Gauss-Legendre momentum mesh with the tangent map, and physical constants."""

from __future__ import annotations

import equinox as eqx
import numpy as np

#: hbar c in MeV fm (the value of the N3LO table's README).
HBARC = 197.32968
#: Proton and neutron masses in MeV.
M_PROTON = 938.272
M_NEUTRON = 939.5653
#: Reduced np mass (MeV) and the kinetic prefactor hbar^2 / (2 mu) in MeV fm^2 (= 41.4722).
REDUCED_MASS = M_PROTON * M_NEUTRON / (M_PROTON + M_NEUTRON)
HBAR2_2MU = HBARC**2 / (2.0 * REDUCED_MASS)


class Mesh(eqx.Module):
    """A momentum quadrature mesh `k_i` (fm^-1) with weights `w_i` for `int_0^inf dk`.

    **Fields:** `k`, `w` (NumPy float64 arrays of length `n`).
    """

    k: np.ndarray = eqx.field(converter=lambda a: np.asarray(a, dtype=np.float64))
    w: np.ndarray = eqx.field(converter=lambda a: np.asarray(a, dtype=np.float64))

    def __check_init__(self):
        if self.k.ndim != 1 or self.k.shape != self.w.shape:
            raise ValueError(f"k and w must be 1D arrays of equal length, got {self.k.shape} and {self.w.shape}")
        if np.any(self.k <= 0) or np.any(self.w <= 0):
            raise ValueError("mesh points and weights must be positive")

    @property
    def n(self) -> int:
        return int(self.k.size)


def tangent_mesh(n: int = 64, k_max: float = 500.0) -> Mesh:
    """The `n`-point Gauss-Legendre mesh mapped to `[0, inf)` by the tangent map.

    Gauss-Legendre nodes `x_i` in `(0, 1)` are mapped by `k = c tan(pi x / 2)`
    (equivalently `k = c tan(pi/4 (1 + x))` for nodes on `(-1, 1)`), with `c`
    chosen so that the last node sits at `k_max`; the weights become
    `w_i (pi c / 2) / cos^2(pi x_i / 2)`. With `n = 64`, `k_max = 500` fm^-1
    this is the mesh of the N3LO table in `tests/data/deuteron`.

    **Arguments:** `n` (number of points), `k_max` (largest momentum, fm^-1).

    **Returns:** a `Mesh`.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not k_max > 0:
        raise ValueError(f"k_max must be positive, got {k_max!r}")
    x, wx = np.polynomial.legendre.leggauss(int(n))
    x, wx = 0.5 * (x + 1.0), 0.5 * wx
    c = k_max / np.tan(0.5 * np.pi * x[-1])
    k = c * np.tan(0.5 * np.pi * x)
    w = wx * (0.5 * np.pi * c) / np.cos(0.5 * np.pi * x) ** 2
    return Mesh(k, w)
