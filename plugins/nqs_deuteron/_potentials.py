"""Nucleon-nucleon potentials in the 3S1-3D1 channel, as matrices on a momentum mesh.

Convention: `V_{LL'}(k, k')` in MeV fm^3 with the measure `int dk' k'^2`, so that
the Schroedinger equation reads
`(hbar^2 k^2 / 2 mu) psi_L(k) + sum_L' int dk' k'^2 V_{LL'}(k, k') psi_L'(k') = E psi_L(k)`.
"""

from __future__ import annotations

import abc
import pathlib

import equinox as eqx
import numpy as np

from ._mesh import HBAR2_2MU, HBARC, Mesh, tangent_mesh


class AbstractPotential(eqx.Module):
    """A potential in the coupled 3S1-3D1 channel.

    `blocks(k)` returns the four `(n, n)` matrices `(V_SS, V_SD, V_DS, V_DD)` on
    the momenta `k` (MeV fm^3); `coupled` is `False` for S-wave-only potentials
    (the D blocks are then zero and the D wave decouples).
    """

    @property
    @abc.abstractmethod
    def coupled(self) -> bool:
        """Whether the potential has a D-wave part."""

    @abc.abstractmethod
    def blocks(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(V_SS, V_SD, V_DS, V_DD)` on the momenta `k`, MeV fm^3."""


class Yamaguchi(AbstractPotential):
    """Yamaguchi's rank-one separable S-wave potential `V(k, k') = -lambda g(k) g(k')`,
    `g(k) = 1 / (k^2 + beta^2)`.

    The bound state is known in closed form:
    `psi(k) ~ 1 / ((k^2 + beta^2)(k^2 + alpha^2))` with `alpha = sqrt(2 mu B) / hbar`,
    and `lambda = 4 (hbar^2 / 2 mu) beta (alpha + beta)^2 / pi` fixes the binding energy `B`.

    **Arguments:**

    - `beta`: range parameter, fm^-1 (default 1.4488).
    - `binding_energy`: `B` in MeV (2.224575); `lambda` follows (216.024 MeV fm).
    """

    beta: float = 1.4488
    binding_energy: float = 2.224575

    def __check_init__(self):
        if not (self.beta > 0 and self.binding_energy > 0):
            raise ValueError(f"beta and binding_energy must be positive, got {self.beta}, {self.binding_energy}")

    @property
    def coupled(self) -> bool:
        return False

    @property
    def alpha(self) -> float:
        """`sqrt(2 mu B) / hbar` in fm^-1."""
        return float(np.sqrt(self.binding_energy / HBAR2_2MU))

    @property
    def strength(self) -> float:
        """`lambda` in MeV fm (with `g` in fm^2)."""
        return 4.0 * HBAR2_2MU * self.beta * (self.alpha + self.beta) ** 2 / np.pi

    def exact_energy(self) -> float:
        """The closed-form bound-state energy `-B` (MeV)."""
        return -float(self.binding_energy)

    def exact_wave_function(self, k: np.ndarray) -> np.ndarray:
        """The unnormalised closed-form S wave `1 / ((k^2 + beta^2)(k^2 + alpha^2))`."""
        k = np.asarray(k, dtype=np.float64)
        return 1.0 / ((k**2 + self.beta**2) * (k**2 + self.alpha**2))

    def blocks(self, k):
        k = np.asarray(k, dtype=np.float64)
        g = 1.0 / (k**2 + self.beta**2)
        v = -self.strength * np.outer(g, g)
        z = np.zeros_like(v)
        return v, z, z, z


class MalflietTjon(AbstractPotential):
    """Malfliet-Tjon III (triplet) potential `V(r) = V_R e^{-mu_R r}/r - V_A e^{-mu_A r}/r`,
    projected on the S wave in closed form:
    `V_0(k, k') = sum_i V_i / (2 pi k k') ln[(mu_i^2 + (k + k')^2) / (mu_i^2 + (k - k')^2)]`.

    **Arguments:** `v_repulsive` (MeV fm, 1438.720), `mu_repulsive` (fm^-1, 3.11),
    `v_attractive` (MeV fm, 626.885), `mu_attractive` (fm^-1, 1.55).
    E_d = -2.23012 MeV in r space; -2.23099 MeV on the 64-point mesh.
    """

    v_repulsive: float = 1438.720
    mu_repulsive: float = 3.11
    v_attractive: float = 626.885
    mu_attractive: float = 1.55

    def __check_init__(self):
        if not (self.mu_repulsive > 0 and self.mu_attractive > 0):
            raise ValueError("the Yukawa ranges mu_repulsive and mu_attractive must be positive")

    @property
    def coupled(self) -> bool:
        return False

    def blocks(self, k):
        k = np.asarray(k, dtype=np.float64)
        kk, kp = np.meshgrid(k, k, indexing="ij")

        def yukawa(v, mu):
            return v / (2.0 * np.pi * kk * kp) * np.log((mu**2 + (kk + kp) ** 2) / (mu**2 + (kk - kp) ** 2))

        v = yukawa(self.v_repulsive, self.mu_repulsive) - yukawa(self.v_attractive, self.mu_attractive)
        z = np.zeros_like(v)
        return v, z, z, z


class TabulatedPotential(AbstractPotential):
    """A coupled-channel potential given as matrices on a fixed momentum mesh
    (e.g. the Entem-Machleidt N3LO table of `tests/data/deuteron`).

    **Fields:** `mesh` (the table's `Mesh`), `vss`, `vsd`, `vds`, `vdd` (`(n, n)`, MeV fm^3).
    `blocks(k)` only accepts the table's own momenta. Build it with `load_potential_table`.
    """

    mesh: Mesh
    vss: np.ndarray
    vsd: np.ndarray
    vds: np.ndarray
    vdd: np.ndarray

    @property
    def coupled(self) -> bool:
        return True

    def blocks(self, k):
        k = np.asarray(k, dtype=np.float64)
        if k.shape != self.mesh.k.shape or not np.allclose(k, self.mesh.k, rtol=1e-10):
            raise ValueError("a tabulated potential is only known on its own mesh; use potential.mesh")
        return self.vss, self.vsd, self.vds, self.vdd


def load_potential_table(path, k_max: float | None = None) -> TabulatedPotential:
    """Read a momentum-space table in the format of `tests/data/deuteron/n3lo_J1_vnn.dat.gz`.

    `n^2` rows `k, k', (two unused), V_SS, V_DD, V_SD, V_DS` with `V` in MeV^-2
    (multiplied by `(hbar c)^3` to MeV fm^3). The mesh must be the tangent-mapped
    Gauss-Legendre mesh (`tangent_mesh(n, k_max)`, `k_max` the largest `k` of the
    file unless given); its weights are rebuilt and the nodes checked against the file.

    **Returns:** a `TabulatedPotential`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"potential table not found: {path}")
    try:
        data = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"malformed potential table {path}: {exc}") from None
    if data.ndim != 2 or data.shape[1] != 8:
        raise ValueError(f"potential table {path} must have 8 columns, got shape {data.shape}")
    n = int(round(np.sqrt(data.shape[0])))
    if n * n != data.shape[0]:
        raise ValueError(f"potential table {path} has {data.shape[0]} rows, not a square number n x n")
    k = data[::n, 0]
    if not np.allclose(data[:n, 1], k, rtol=1e-4):
        raise ValueError(f"potential table {path}: rows must run over k' fastest with the same mesh as k")
    mesh = tangent_mesh(n, float(k[-1]) if k_max is None else k_max)
    if not np.allclose(mesh.k, k, rtol=1e-4):
        raise ValueError(f"potential table {path}: its momenta are not the tangent-mapped Gauss-Legendre mesh")
    scale = HBARC**3
    cols = [data[:, c].reshape(n, n) * scale for c in (4, 6, 7, 5)]  # SS, SD, DS, DD
    return TabulatedPotential(mesh, *cols)


POTENTIALS = ("yamaguchi", "malfliet-tjon", "table")


def make_potential(potential: str, table: str | pathlib.Path | None = None):
    """The potential named `potential` (`yamaguchi`, `malfliet-tjon`, or `table`
    read from the file `table`)."""
    if potential == "yamaguchi":
        return Yamaguchi()
    if potential == "malfliet-tjon":
        return MalflietTjon()
    if potential == "table":
        if table is None:
            raise ValueError("potential 'table' needs --table PATH (e.g. tests/data/deuteron/n3lo_J1_vnn.dat.gz)")
        return load_potential_table(table)
    raise ValueError(f"unknown potential {potential!r}; valid: {', '.join(POTENTIALS)}")
