"""Registers the TDVP driver and the integrators with nqs."""

import nqs_core

#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("driver", "tdvp", "nqs_dynamics._tdvp:TDVP"),
    ("integrator", "euler", "nqs_dynamics._integrators:Euler"),
    ("integrator", "heun", "nqs_dynamics._integrators:Heun"),
    ("integrator", "rk4", "nqs_dynamics._integrators:RK4"),
    ("integrator", "rk23", "nqs_dynamics._integrators:RK23"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the TDVP driver and the integrators to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
