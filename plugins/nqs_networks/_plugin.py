"""Registers the built-in networks."""

from nqs_core import hookimpl

from ._mlp import MLP, Jastrow
from ._rbm import RBM
from ._symmetry import Symmetrized
from ._vit import ViT


@hookimpl
def nqs_register(registry):
    registry.add("ansatz", "rbm", RBM)
    registry.add("ansatz", "mlp", MLP)
    registry.add("ansatz", "jastrow", Jastrow)
    registry.add("ansatz", "vit", ViT)
    registry.add("ansatz", "symmetrized", Symmetrized)
