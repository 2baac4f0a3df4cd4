"""Registers the autoregressive components with nqs."""

import nqs_core

from ._annealed import AnnealedEstimator, AnnealedVMC, adam_rsqrt
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
    ("driver", "annealed_vmc", AnnealedVMC),
    ("optimizer", "adam_rsqrt", adam_rsqrt),
    ("command", "grow", grow_command),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the autoregressive components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
