"""Example nqs plugin: the spin-1/2 XXZ Hamiltonian on the bonds of any lattice.

    H = J sum_<ij> [ S^x_i S^x_j + S^y_i S^y_j + delta S^z_i S^z_j ]
      = J sum_<ij> [ (S^+_i S^-_j + S^-_i S^+_j) / 2 + delta S^z_i S^z_j ]

in spin units (`S = sigma / 2`). `delta = 1` is the Heisenberg model, `delta = 0`
the XX model (free fermions on a chain). Install with `pip install -e
docs/example_hamiltonian_plugin` and it appears in `nqs list system` as `xxz`.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import nqs_core


class XXZ(nqs_core.AbstractDiscreteHamiltonian):
    """Spin-1/2 XXZ model `H = J sum_<ij> [S^x_i S^x_j + S^y_i S^y_j + delta S^z_i S^z_j]` on nearest-neighbour bonds.

    Spin units (`S = sigma / 2`); configurations hold `+1` (up) and `-1`
    (down). Row `x` of `H` has the diagonal element `J delta / 4 sum_<ij> x_i x_j`
    and, for every anti-aligned bond, the element `J / 2` to the
    configuration with the two spins exchanged, so `max_conn_size = 1 +
    n_bonds` (an aligned bond gives `x` back with element 0: padding for
    free). Conserves `S^z`: use a space with `total_sz = 0` for the ground state.

    **Arguments:**

    - `space`: a spin-1/2 space on the lattice's sites (injected from `[space]`).
    - `lattice`: its nearest-neighbour bonds `lattice.edges(1)` carry the
      coupling (injected from `[lattice]`).
    - `J`: exchange coupling (`J > 0`: antiferromagnet).
    - `delta`: anisotropy of the `S^z S^z` term.
    """

    space: nqs_core.AbstractDiscreteSpace
    lattice: nqs_core.AbstractLattice
    J: float = eqx.field(static=True)
    delta: float = eqx.field(static=True)
    bonds: Array
    perms: Array

    def __init__(self, space: nqs_core.AbstractDiscreteSpace, lattice: nqs_core.AbstractLattice,
                 J: float = 1.0, delta: float = 1.0):
        if space.size != lattice.n_sites:
            raise ValueError(f"xxz: the space has {space.size} sites but the lattice {lattice.n_sites}")
        bonds = np.asarray(lattice.edges(1), dtype=np.int32).reshape(-1, 2)
        if len(bonds) == 0:
            raise ValueError(f"xxz: the lattice {lattice!r} has no nearest-neighbour bonds")
        perms = np.tile(np.arange(space.size, dtype=np.int32), (len(bonds), 1))
        rows = np.arange(len(bonds))
        perms[rows, bonds[:, 0]], perms[rows, bonds[:, 1]] = bonds[:, 1], bonds[:, 0]
        self.space, self.lattice = space, lattice
        self.J, self.delta = float(J), float(delta)
        self.bonds, self.perms = jnp.asarray(bonds), jnp.asarray(perms)

    @property
    def max_conn_size(self) -> int:
        return 1 + int(self.bonds.shape[0])

    def connected(self, x):
        x = jnp.asarray(x, dtype=self.space.dtype)
        xi, xj = x[self.bonds[:, 0]], x[self.bonds[:, 1]]
        diag = (0.25 * self.J * self.delta) * jnp.sum(xi * xj)
        off = jnp.where(xi != xj, 0.5 * self.J, 0.0).astype(x.dtype)
        xps = jnp.concatenate([x[None, :], x[self.perms]], axis=0)
        return xps, jnp.concatenate([diag[None], off])


@nqs_core.hookimpl
def nqs_register(registry):
    registry.add("system", "xxz", XXZ)
