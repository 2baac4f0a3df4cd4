"""The core's own plugin: registers the VMC driver, the energy estimator, the
identity preconditioner and the direct and exact samplers."""

from __future__ import annotations

from ._driver import VMC
from ._estimator import EnergyEstimator
from ._fullsum import FullSumEstimator, FullSumSampler
from ._preconditioner import IdentityPreconditioner
from ._registry import hookimpl
from ._sampler import DirectSampler, ExactSampler

#: `(kind, config name, class)` for everything the core provides.
COMPONENTS = (
    ("driver", "vmc", VMC),
    ("estimator", "energy", EnergyEstimator),
    ("preconditioner", "identity", IdentityPreconditioner),
    ("sampler", "direct", DirectSampler),
    ("sampler", "exact", ExactSampler),
    ("sampler", "full_sum", FullSumSampler),
    ("estimator", "full_sum", FullSumEstimator),
)


@hookimpl
def nqs_register(registry):
    """Add the core's components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
