"""Registers the built-in preconditioners and optimizers."""

from nqs_core import hookimpl

from ._optimizers import adam, adamw, rmsprop, sgd
from ._sr import SR
from ._srt import MinSR, SRt


@hookimpl
def nqs_register(registry):
    registry.add("preconditioner", "sr", SR)
    registry.add("preconditioner", "srt", SRt)
    registry.add("preconditioner", "minsr", MinSR)
    for fn in (sgd, adam, adamw, rmsprop):
        registry.add("optimizer", fn.__name__, fn)
