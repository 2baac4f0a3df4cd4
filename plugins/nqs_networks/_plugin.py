"""Registers the networks with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("ansatz", "rbm", "nqs_networks._rbm:RBM"),
    ("ansatz", "mlp", "nqs_networks._mlp:MLP"),
    ("ansatz", "jastrow", "nqs_networks._mlp:Jastrow"),
    ("ansatz", "vit", "nqs_networks._vit:ViT"),
    ("ansatz", "symmetrized", "nqs_networks._symmetry:Symmetrized"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the network components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
