"""Registers the continuum components with nqs."""

import nqs_core

from ._ansatz import EquivariantSlater
from ._exact import exact_solver
from ._sampler import GaussianMetropolis
from ._space import Particles1D
from ._system import TrappedFermions1D

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("space", "particles_1d", Particles1D),
    ("system", "trapped_fermions_1d", TrappedFermions1D),
    ("ansatz", "equivariant_slater", EquivariantSlater),
    ("sampler", "gaussian_metropolis", GaussianMetropolis),
    ("exact", "trapped_fermions_grid", exact_solver),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the continuum components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
