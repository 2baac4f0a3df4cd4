"""Registers the built-in networks."""

from nqs_core import hookimpl

from ._mlp import MLP, Jastrow
from ._rbm import RBM


@hookimpl
def nqs_register(registry):
    registry.add("ansatz", "rbm", RBM)
    registry.add("ansatz", "mlp", MLP)
    registry.add("ansatz", "jastrow", Jastrow)
