"""The spins plugin: registers lattices, the spin-1/2 space, spin Hamiltonians,
Metropolis samplers and the exact-diagonalisation reference solver with nqs."""

import nqs_core

from ._exact import exact_solver
from ._system import Heisenberg, Ising, J1J2, SpinModel
from ._space import SpinHalf
from ._lattice import Chain, Graph, Honeycomb, Kagome, Ladder, Square, Triangular
from ._sampler import MetropolisExchange, MetropolisLocal
from ._observables import Correlation, Dimer, Magnetization, StaggeredMagnetization, StructureFactor, UserOperator

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("lattice", "chain", Chain),
    ("lattice", "square", Square),
    ("lattice", "triangular", Triangular),
    ("lattice", "honeycomb", Honeycomb),
    ("lattice", "kagome", Kagome),
    ("lattice", "ladder", Ladder),
    ("lattice", "graph", Graph),
    ("space", "spin_half", SpinHalf),
    ("system", "ising", Ising),
    ("system", "heisenberg", Heisenberg),
    ("system", "j1j2", J1J2),
    ("system", "spin_model", SpinModel),
    ("sampler", "metropolis_local", MetropolisLocal),
    ("sampler", "metropolis_exchange", MetropolisExchange),
    ("exact", "exact_diagonalization", exact_solver),
    ("observable", "magnetization", Magnetization),
    ("observable", "staggered_magnetization", StaggeredMagnetization),
    ("observable", "correlation", Correlation),
    ("observable", "structure_factor", StructureFactor),
    ("observable", "dimer", Dimer),
    ("observable", "operator", UserOperator),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the spin components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
