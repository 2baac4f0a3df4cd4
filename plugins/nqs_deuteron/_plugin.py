"""Registers the deuteron components with nqs: the quadrature training driver and the `nqs deuteron` command."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("driver", "deuteron", "nqs_deuteron._driver:DeuteronDriver"),
    ("command", "deuteron", "nqs_deuteron._cli:deuteron"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the deuteron components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
