"""The deuteron Hamiltonian on a momentum mesh: exact diagonalisation and quadrature energies."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ._mesh import HBAR2_2MU, Mesh, tangent_mesh
from ._potentials import AbstractPotential, TabulatedPotential


class MeshSolution(eqx.Module):
    """The exact ground state on the mesh.

    **Fields:** `energy` (MeV), `psi_s`, `psi_d` (wave functions at the mesh
    momenta, normalised to `sum_i w_i k_i^2 (psi_S^2 + psi_D^2) = 1`, `psi_S > 0`
    at small `k`), `d_probability`.
    """

    energy: float
    psi_s: np.ndarray
    psi_d: np.ndarray
    d_probability: float


class DeuteronHamiltonian(eqx.Module):
    """`H = hbar^2 k^2 / 2 mu + V` on a momentum mesh, in the symmetrised form
    `H_ij = (hbar^2 k_i^2 / 2 mu) delta_ij + sqrt(w_i w_j) k_i k_j V_ij`
    acting on `u_i = sqrt(w_i) k_i psi(k_i)` (S and D blocks for coupled potentials).

    **Arguments:**

    - `potential`: an `AbstractPotential` (`Yamaguchi`, `MalflietTjon`, `TabulatedPotential`).
    - `mesh`: the momentum mesh; default the potential's own mesh (tables) or `tangent_mesh(64, 500)`.
    - `hbar2_2mu`: `hbar^2 / 2 mu` in MeV fm^2 (41.4722 from the nucleon masses).

    The energy of any trial wave function is the quadrature
    `E = u^T H u / u^T u` (no sampling); `solve()` diagonalises `H` exactly.
    """

    potential: AbstractPotential
    mesh: Mesh
    matrix: np.ndarray
    hbar2_2mu: float

    def __init__(self, potential: AbstractPotential, mesh: Mesh | None = None, hbar2_2mu: float = HBAR2_2MU):
        if not isinstance(potential, AbstractPotential):
            raise TypeError(f"potential must be an AbstractPotential, got {type(potential).__name__}")
        if mesh is None:
            mesh = potential.mesh if isinstance(potential, TabulatedPotential) else tangent_mesh()
        self.potential = potential
        self.mesh = mesh
        self.hbar2_2mu = float(hbar2_2mu)
        k, w = mesh.k, mesh.w
        s = np.sqrt(w) * k
        t = np.diag(self.hbar2_2mu * k**2)
        vss, vsd, vds, vdd = potential.blocks(k)

        def sym(v):
            return s[:, None] * v * s[None, :]

        if potential.coupled:
            h = np.block([[t + sym(vss), sym(vsd)], [sym(vds), t + sym(vdd)]])
        else:
            h = t + sym(vss)
        self.matrix = 0.5 * (h + h.T)

    @property
    def coupled(self) -> bool:
        return self.potential.coupled

    def to_u(self, psi_s, psi_d=None):
        """`u = sqrt(w) k psi` (S, then D for coupled potentials); works on jax arrays."""
        s = jnp.asarray(np.sqrt(self.mesh.w) * self.mesh.k)
        u = s * psi_s
        if self.coupled:
            if psi_d is None:
                raise ValueError("a coupled potential needs psi_d")
            u = jnp.concatenate([u, s * psi_d])
        return u

    def energy(self, psi_s, psi_d=None):
        """Quadrature energy `<psi|H|psi> / <psi|psi>` (MeV) of wave functions on the mesh (jax-differentiable)."""
        u = self.to_u(psi_s, psi_d)
        return (u @ (jnp.asarray(self.matrix) @ u)) / (u @ u)

    def d_probability(self, psi_s, psi_d):
        """`P_D = <psi_D|psi_D> / <psi|psi>` (0 for uncoupled potentials)."""
        if not self.coupled:
            return jnp.zeros(())
        u = self.to_u(psi_s, psi_d)
        n = self.mesh.n
        return (u[n:] @ u[n:]) / (u @ u)

    def fidelity(self, psi_s, psi_d, exact: MeshSolution):
        """`<psi_ex|psi>^2 / (<psi_ex|psi_ex><psi|psi>)` over S and D together."""
        u = self.to_u(psi_s, psi_d)
        ue = self.to_u(jnp.asarray(exact.psi_s), jnp.asarray(exact.psi_d))
        return (u @ ue) ** 2 / ((u @ u) * (ue @ ue))

    def solve(self) -> MeshSolution:
        """Exact lowest eigenpair of the mesh Hamiltonian (scipy `eigh`)."""
        e, v = scipy.linalg.eigh(self.matrix, subset_by_index=(0, 0))
        u = v[:, 0]
        n = self.mesh.n
        s = np.sqrt(self.mesh.w) * self.mesh.k
        us, ud = u[:n], (u[n:] if self.coupled else np.zeros(n))
        sign = np.sign(us[np.argmax(np.abs(us))])
        psi_s, psi_d = sign * us / s, sign * ud / s
        return MeshSolution(float(e[0]), psi_s, psi_d, float(ud @ ud / (u @ u)))
