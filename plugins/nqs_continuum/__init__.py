"""Continuum systems (Keeble et al. 2023): 1D trapped fermions, permutation-equivariant determinant ansatz, grid solvers, observables.

Everything public is re-exported here; implementations live in `_*.py` modules.
"""

import nqs_core as _nqs_core  # noqa: F401  (enables float64 before anything else)

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._ansatz": ["EquivariantSlater", "hermite_polynomials", "ho_orbitals", "pretrain_to_ho"],
        "._exact": ["exact_solver", "free_energy", "grid_energy_three_body", "grid_energy_two_body"],
        "._observables": ["Density", "PairDistribution", "free_density", "free_pair_distribution", "one_body_density", "pair_distribution", "plot_density", "plot_pair_distribution"],
        "._sampler": ["GaussianMetropolis", "GaussianMetropolisState", "GaussianRule"],
        "._space": ["Particles1D"],
        "._system": ["TrappedFermions1D"],
    },
)
