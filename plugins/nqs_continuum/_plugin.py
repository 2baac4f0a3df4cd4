"""Registers the continuum components with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("space", "particles_1d", "nqs_continuum._space:Particles1D"),
    ("system", "trapped_fermions_1d", "nqs_continuum._system:TrappedFermions1D"),
    ("ansatz", "equivariant_slater", "nqs_continuum._ansatz:EquivariantSlater"),
    ("sampler", "gaussian_metropolis", "nqs_continuum._sampler:GaussianMetropolis"),
    ("exact", "trapped_fermions_grid", "nqs_continuum._exact:exact_solver"),
    ("rule", "gaussian", "nqs_continuum._rules:gaussian"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the continuum components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
