"""Continuum systems (Keeble et al. 2023): 1D trapped fermions, permutation-equivariant determinant ansatz, grid solvers, observables.

Everything public is re-exported here; implementations live in `_*.py` modules.
"""

import nqs_core as _nqs_core  # noqa: F401  (enables float64 before anything else)

from ._ansatz import (
    EquivariantSlater as EquivariantSlater,
    hermite_polynomials as hermite_polynomials,
    ho_orbitals as ho_orbitals,
    pretrain_to_ho as pretrain_to_ho,
)
from ._exact import (
    exact_solver as exact_solver,
    free_energy as free_energy,
    grid_energy_three_body as grid_energy_three_body,
    grid_energy_two_body as grid_energy_two_body,
)
from ._observables import (
    Density as Density,
    PairDistribution as PairDistribution,
    free_density as free_density,
    free_pair_distribution as free_pair_distribution,
    one_body_density as one_body_density,
    pair_distribution as pair_distribution,
    plot_density as plot_density,
    plot_pair_distribution as plot_pair_distribution,
)
from ._sampler import GaussianMetropolis as GaussianMetropolis, GaussianMetropolisState as GaussianMetropolisState, GaussianRule as GaussianRule
from ._space import Particles1D as Particles1D
from ._system import TrappedFermions1D as TrappedFermions1D
