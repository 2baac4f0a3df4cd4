"""The core's own plugin: the VMC driver, the energy estimator and the identity preconditioner."""

from __future__ import annotations

from ._preconditioner import AbstractPreconditioner
from ._registry import hookimpl


class IdentityPreconditioner(AbstractPreconditioner):
    """No preconditioning: the direction is the energy gradient."""

    def init(self, params):
        return None

    def __call__(self, ansatz, samples, estimate, estimator, state):
        return estimator.gradient(ansatz, samples, estimate), state, {}


@hookimpl
def nqs_register(registry):
    from ._driver import VMC
    from ._sampler import DirectSampler, ExactSampler
    from ._vmc import EnergyEstimator

    registry.add("driver", "vmc", VMC)
    registry.add("estimator", "energy", EnergyEstimator)
    registry.add("preconditioner", "identity", IdentityPreconditioner)
    registry.add("sampler", "direct", DirectSampler)
    registry.add("sampler", "exact", ExactSampler)
