"""Registers the preconditioners and optimizers with nqs."""

import nqs_core

from ._dgd import DGD
from ._kfac import KFAC
from ._optimal_step import OptimalStep
from ._optimizers import adam, adamw, rmsprop, sgd
from ._sr import SR
from ._srt import MinSR, SRt

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("preconditioner", "sr", SR),
    ("preconditioner", "srt", SRt),
    ("preconditioner", "minsr", MinSR),
    ("preconditioner", "kfac", KFAC),
    ("preconditioner", "dgd", DGD),
    ("preconditioner", "optimal_step", OptimalStep),
    ("optimizer", "sgd", sgd),
    ("optimizer", "adam", adam),
    ("optimizer", "adamw", adamw),
    ("optimizer", "rmsprop", rmsprop),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the preconditioners and optimizers to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
