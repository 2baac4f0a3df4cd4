"""Registers the built-in preconditioners and optimizers."""

from nqs_core import hookimpl

from ._optimizers import adam, adamw, rmsprop, sgd
from ._sr import SR
from ._srt import MinSR, SRt
from ._dgd import DGD
from ._kfac import KFAC
from ._optimal_step import OptimalStep


@hookimpl
def nqs_register(registry):
    registry.add("preconditioner", "sr", SR)
    registry.add("preconditioner", "srt", SRt)
    registry.add("preconditioner", "minsr", MinSR)
    registry.add("preconditioner", "kfac", KFAC)
    registry.add("preconditioner", "dgd", DGD)
    registry.add("preconditioner", "optimal_step", OptimalStep)
    for fn in (sgd, adam, adamw, rmsprop):
        registry.add("optimizer", fn.__name__, fn)
