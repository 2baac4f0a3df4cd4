"""Registers the vq components with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (("ansatz", "vq_transformer", "nqs_vq._ansatz:VQTransformer"),)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the vq components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
