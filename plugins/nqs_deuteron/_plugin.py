"""Registers the deuteron components with nqs."""

import nqs_core

from ._cli import deuteron

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (("command", "deuteron", deuteron),)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the deuteron components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
