"""Registers the vq components with nqs."""

import nqs_core

from ._ansatz import VQTransformer

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (("ansatz", "vq_transformer", VQTransformer),)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the vq components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
