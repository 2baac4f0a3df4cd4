"""The core's own plugin: the VMC driver and the energy estimator."""

from ._registry import hookimpl


@hookimpl
def nqs_register(registry):
    pass
