"""The core's own plugin: registers the VMC driver, the energy estimator, the
identity preconditioner and the direct and exact samplers."""

from __future__ import annotations

from ._registry import hookimpl

#: `(kind, config name, "module:Name")` for everything the core provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("lattice", "chain", "nqs_core._lattices:Chain"),
    ("lattice", "square", "nqs_core._lattices:Square"),
    ("lattice", "triangular", "nqs_core._lattices:Triangular"),
    ("lattice", "honeycomb", "nqs_core._lattices:Honeycomb"),
    ("lattice", "kagome", "nqs_core._lattices:Kagome"),
    ("lattice", "ladder", "nqs_core._lattices:Ladder"),
    ("lattice", "graph", "nqs_core._lattices:Graph"),
    ("driver", "vmc", "nqs_core._driver:VMC"),
    ("estimator", "energy", "nqs_core._estimator:EnergyEstimator"),
    ("preconditioner", "identity", "nqs_core._preconditioner:IdentityPreconditioner"),
    ("sampler", "direct", "nqs_core._sampler:DirectSampler"),
    ("sampler", "exact", "nqs_core._sampler:ExactSampler"),
    ("sampler", "full_sum", "nqs_core._fullsum:FullSumSampler"),
    ("sampler", "metropolis", "nqs_core._mixture:MetropolisMixture"),
    ("sampler", "parallel_tempering", "nqs_core._tempering:ParallelTempering"),
    ("estimator", "full_sum", "nqs_core._fullsum:FullSumEstimator"),
)


@hookimpl
def nqs_register(registry):
    """Add the core's components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
