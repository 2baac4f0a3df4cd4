"""Registers the TDVP driver and the integrators with nqs."""

import nqs_core

#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS: tuple[tuple[str, str, str], ...] = ()


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the TDVP driver and the integrators to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
