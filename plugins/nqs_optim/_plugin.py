"""Registers the built-in preconditioners and optimizers."""

from nqs_core import hookimpl

from ._optimizers import adam, adamw, rmsprop, sgd
from ._sr import SR


@hookimpl
def nqs_register(registry):
    registry.add("preconditioner", "sr", SR)
    for fn in (sgd, adam, adamw, rmsprop):
        registry.add("optimizer", fn.__name__, fn)
