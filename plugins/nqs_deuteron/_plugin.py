"""Registers the deuteron components with nqs: the quadrature training driver and the `nqs deuteron` command."""

import nqs_core

from ._cli import deuteron
from ._driver import DeuteronDriver

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("driver", "deuteron", DeuteronDriver),
    ("command", "deuteron", deuteron),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the deuteron components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
