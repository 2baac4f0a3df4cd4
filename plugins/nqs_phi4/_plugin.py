"""Registers the phi4 components with nqs: the field space, the action, the HMC and
local-Metropolis samplers, the control-variate training driver and the `nqs phi4`
command group."""

import nqs_core

from ._space import Phi4Field
from ._system import Phi4Action
from ._cli import app
from ._driver import ControlVariateDriver
from ._sampler import HMC, MetropolisField

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("space", "phi4_field", Phi4Field),
    ("system", "phi4", Phi4Action),
    ("sampler", "hmc", HMC),
    ("sampler", "metropolis_field", MetropolisField),
    ("driver", "phi4_cv", ControlVariateDriver),
    ("command", "phi4", app),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the phi4 components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
