"""Exact (grid) ground-state energies of trapped 1D spinless fermions for A = 2, 3."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ._common import as_float, as_int


def _sine_dvr(n: int, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Sine discrete-variable representation on `(0, length)` with Dirichlet
    ends: the matrix of `-d^2/dx^2` (exact on the sine basis) and the points."""
    k = np.arange(1, n + 1)
    s = math.sqrt(2.0 / (n + 1)) * np.sin(np.outer(k, k) * math.pi / (n + 1))
    return (s * (k * math.pi / length) ** 2) @ s.T, k * length / (n + 1)


def _prefactor(V0: float, sigma0: float) -> float:
    return V0 / (math.sqrt(2.0 * math.pi) * sigma0)


def grid_energy_two_body(
    V0: float, sigma0: float = 0.5, n_points: int = 200, box: float = 10.0
) -> float:
    """Exact ground-state energy of two spinless fermions in the trap (`TrappedFermions1D`, A = 2).

    The Hamiltonian separates in `X = (x1 + x2)/sqrt(2)` (a free oscillator,
    energy 1/2) and `r = (x1 - x2)/sqrt(2)`:
    `-1/2 d^2/dr^2 + r^2/2 + V0/(sqrt(2 pi) sigma0) exp(-r^2/sigma0^2)`.
    Antisymmetry makes the relative wave function odd, i.e. zero at `r = 0`,
    so the relative problem is solved on `(0, box)` with Dirichlet ends in a
    sine DVR (spectrally accurate; the defaults converge to about 1e-9).

    **Arguments:**

    - `V0`, `sigma0`: interaction strength and range.
    - `n_points`: grid points on `(0, box)` (default 200).
    - `box`: extent of the relative-coordinate grid (default 10).

    **Returns:** the ground-state energy (relative + 1/2), a float.
    """
    V0 = as_float("V0", V0)
    sigma0 = as_float("sigma0", sigma0, positive=True)
    n = as_int("n_points", n_points, 4)
    box = as_float("box", box, positive=True)
    k, r = _sine_dvr(n, box)
    h = 0.5 * k + np.diag(0.5 * r**2 + _prefactor(V0, sigma0) * np.exp(-(r**2) / sigma0**2))
    e = scipy.linalg.eigh(h, eigvals_only=True, subset_by_index=(0, 0))[0]
    return float(e) + 0.5


def grid_energy_three_body(
    V0: float,
    sigma0: float = 0.5,
    n_rho: int = 80,
    n_theta: int = 28,
    box: float = 8.0,
) -> float:
    """Exact ground-state energy of three spinless fermions in the trap (`TrappedFermions1D`, A = 3).

    After removing the centre of mass (energy 1/2) the relative motion lives
    in the plane of the Jacobi coordinates `y1 = (x1 - x2)/sqrt(2)`,
    `y2 = (x1 + x2 - 2 x3)/sqrt(6)`, written in polar form
    `(rho, theta)`. The pair distances are
    `|x_i - x_j| = sqrt(2) rho |cos(theta - c_ij)|`, `c_ij in {0, pi/3, 2pi/3}`.
    The fermionic ground state is the Dirichlet ground state of the ordered
    sector `x1 < x2 < x3`, the wedge `7pi/6 < theta < 3pi/2`. With
    `u = sqrt(rho) psi` the wedge Hamiltonian is
    `-1/2 d^2/drho^2 - 1/(8 rho^2) - 1/(2 rho^2) d^2/dtheta^2 + rho^2/2 + V`,
    discretised with sine DVRs in `rho in (0, box)` and `theta` (both with
    Dirichlet ends) and solved with Lanczos (`scipy.sparse.linalg.eigsh`).
    The defaults converge to about 1e-6 for `|V0| <= 10` (1e-4 at
    `V0 = -20`); raise `n_rho`, `n_theta` to check.

    **Arguments:**

    - `V0`, `sigma0`: interaction strength and range.
    - `n_rho`, `n_theta`: grid points in the hyperradius and the angle.
    - `box`: extent of the hyperradial grid (default 8).

    **Returns:** the ground-state energy (relative + 1/2), a float.
    """
    V0 = as_float("V0", V0)
    sigma0 = as_float("sigma0", sigma0, positive=True)
    n_rho = as_int("n_rho", n_rho, 4)
    n_theta = as_int("n_theta", n_theta, 4)
    box = as_float("box", box, positive=True)
    k_rho, rho = _sine_dvr(n_rho, box)
    k_theta, theta = _sine_dvr(n_theta, math.pi / 3.0)
    theta = theta + 7.0 * math.pi / 6.0
    rr, tt = np.meshgrid(rho, theta, indexing="ij")
    pair = sum(np.exp(-((rr * np.cos(tt - c)) ** 2) / sigma0**2) for c in (0.0, math.pi / 3.0, 2.0 * math.pi / 3.0))
    diag = -1.0 / (8.0 * rr**2) + 0.5 * rr**2 + _prefactor(V0, sigma0) * pair
    centrifugal = 1.0 / (2.0 * rho**2)
    half_k_rho = 0.5 * k_rho

    def matvec(v):
        p = v.reshape(n_rho, n_theta)
        return (half_k_rho @ p + centrifugal[:, None] * (p @ k_theta) + diag * p).ravel()

    size = n_rho * n_theta
    op = spla.LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    v0 = (np.exp(-0.5 * rr**2) * rr**3.5 * np.sin(3.0 * (tt - 7.0 * math.pi / 6.0))).ravel()
    e = spla.eigsh(op, k=1, which="SA", tol=1e-12, ncv=min(size - 1, 60), v0=v0, return_eigenvectors=False)
    return float(e[0]) + 0.5


def free_energy(n_particles: int) -> float:
    """Ground-state energy `A^2/2` of `A` free spinless fermions in the trap."""
    a = as_int("n_particles", n_particles, 1)
    return 0.5 * a * a


def exact_solver(system, max_states: int | None = None) -> float | None:
    """Exact ground-state energy of `TrappedFermions1D` for the core's automatic
    reference (registry kind `exact`): `A^2/2` when free, the grid solvers for
    `A = 2, 3`, `None` for anything else (`max_states` is not used: the grids
    are small)."""
    from ._system import TrappedFermions1D

    if not isinstance(system, TrappedFermions1D):
        return None
    a = system.n_particles
    if system.V0 == 0.0 or a == 1:
        return free_energy(a)
    if a == 2:
        return grid_energy_two_body(system.V0, system.sigma0)
    if a == 3:
        return grid_energy_three_body(system.V0, system.sigma0)
    return None
