"""nqs_spins: lattices, the spin-1/2 space, spin Hamiltonians, Metropolis
samplers and exact diagonalisation.

Everything public is re-exported here; implementations live in `_*.py` modules.
"""

import nqs_core as _nqs_core  # noqa: F401  (enables float64 before anything else)

from ._exact import (
    exact_energy as exact_energy,
    exact_solver as exact_solver,
    ground_state as ground_state,
    ground_state_energy as ground_state_energy,
    to_dense as to_dense,
    to_sparse as to_sparse,
)
from ._system import Heisenberg as Heisenberg, Ising as Ising, J1J2 as J1J2, SpinModel as SpinModel
from . import operators as operators
from ._space import SpinHalf as SpinHalf
from nqs_core import AbstractLattice as AbstractLattice
from ._lattice import (
    Chain as Chain,
    Graph as Graph,
    Honeycomb as Honeycomb,
    Kagome as Kagome,
    LEG as LEG,
    Ladder as Ladder,
    RUNG as RUNG,
    Square as Square,
    Triangular as Triangular,
)
from ._sampler import (
    ExchangeRule as ExchangeRule,
    LocalFlipRule as LocalFlipRule,
    MetropolisExchange as MetropolisExchange,
    MetropolisLocal as MetropolisLocal,
    MetropolisState as MetropolisState,
)
from ._observables import (
    Correlation as Correlation,
    Dimer as Dimer,
    Magnetization as Magnetization,
    StaggeredMagnetization as StaggeredMagnetization,
    StructureFactor as StructureFactor,
    UserOperator as UserOperator,
)
