"""Registers the autoregressive components with nqs."""

import nqs_core

from ._annealed import AnnealedEstimator, adam_rsqrt
from ._cli import grow_command
from ._rnn1d import GRU1D
from ._rnn2d import LSTM2D
from ._symmetry import SymmetrizedAR

#: `(kind, config name, object)` for everything this plugin provides.
COMPONENTS = (
    ("ansatz", "ar_gru", GRU1D),
    ("ansatz", "ar_lstm2d", LSTM2D),
    ("ansatz", "ar_symmetrized", SymmetrizedAR),
    ("estimator", "annealed", AnnealedEstimator),
    ("optimizer", "adam_rsqrt", adam_rsqrt),
    ("command", "grow", grow_command),
)

#: `(kind, old name, new name)`: old names kept for configs written before a rename.
ALIASES = (
    # the core VMC driver hands the step to every estimator, so `annealed` runs under `vmc`
    ("driver", "annealed_vmc", "vmc"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the autoregressive components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
    for kind, old, new in ALIASES:
        registry.alias(kind, old, new)
