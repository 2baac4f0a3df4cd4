"""nqs_spins: the spin-1/2 and spin-S spaces (the lattices, re-exported, live in nqs_core), spin Hamiltonians, Metropolis
samplers and exact diagonalisation.

Everything public is re-exported here; implementations live in `_*.py` modules.
"""

import nqs_core as _nqs_core  # noqa: F401  (enables float64 before anything else)

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._exact": ["exact_energy", "exact_solver", "ground_state", "ground_state_energy", "to_dense", "to_sparse"],
        "._system": ["Heisenberg", "Ising", "J1J2", "SpinModel"],
        "._space": ["Spin", "SpinHalf", "spin_matrices"],
        "nqs_core": ["AbstractLattice", "Chain", "Graph", "Honeycomb", "Kagome", "LEG", "Ladder", "RUNG", "Square", "Triangular"],
        "._sampler": ["ExchangeRule", "LocalFlipRule", "LocalStateRule", "MetropolisExchange", "MetropolisLocal", "MetropolisState"],
        "._observables": ["ClusterMomentumWarning", "Correlation", "Dimer", "Magnetization", "StaggeredMagnetization", "StructureFactor", "UserOperator"],
    },
    submodules=["operators"],
)
