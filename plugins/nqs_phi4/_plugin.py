"""Registers the phi4 components with nqs: the field space, the action, the HMC and
local-Metropolis samplers, the control-variate training driver and the `nqs phi4`
command group."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("space", "phi4_field", "nqs_phi4._space:Phi4Field"),
    ("system", "phi4", "nqs_phi4._system:Phi4Action"),
    ("sampler", "hmc", "nqs_phi4._sampler:HMC"),
    ("sampler", "metropolis_field", "nqs_phi4._sampler:MetropolisField"),
    ("driver", "phi4_cv", "nqs_phi4._driver:ControlVariateDriver"),
    ("command", "phi4", "nqs_phi4._cli:app"),
    ("rule", "checkerboard", "nqs_phi4._rules:checkerboard"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the phi4 components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
