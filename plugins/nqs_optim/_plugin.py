"""Registers the preconditioners and optimizers with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("preconditioner", "sr", "nqs_optim._sr:SR"),
    ("preconditioner", "srt", "nqs_optim._srt:SRt"),
    ("preconditioner", "minsr", "nqs_optim._srt:MinSR"),
    ("preconditioner", "kfac", "nqs_optim._kfac:KFAC"),
    ("preconditioner", "dgd", "nqs_optim._dgd:DGD"),
    ("preconditioner", "optimal_step", "nqs_optim._optimal_step:OptimalStep"),
    ("optimizer", "sgd", "nqs_optim._optimizers:sgd"),
    ("optimizer", "adam", "nqs_optim._optimizers:adam"),
    ("optimizer", "adamw", "nqs_optim._optimizers:adamw"),
    ("optimizer", "rmsprop", "nqs_optim._optimizers:rmsprop"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the preconditioners and optimizers to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
