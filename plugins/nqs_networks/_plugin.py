"""Registers the networks with nqs."""

import nqs_core

from ._mlp import MLP, Jastrow
from ._rbm import RBM
from ._symmetry import Symmetrized
from ._vit import ViT

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("ansatz", "rbm", RBM),
    ("ansatz", "mlp", MLP),
    ("ansatz", "jastrow", Jastrow),
    ("ansatz", "vit", ViT),
    ("ansatz", "symmetrized", Symmetrized),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the network components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
