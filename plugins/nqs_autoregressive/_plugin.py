"""Registers the autoregressive components with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("ansatz", "ar_gru", "nqs_autoregressive._rnn1d:GRU1D"),
    ("ansatz", "ar_lstm2d", "nqs_autoregressive._rnn2d:LSTM2D"),
    ("ansatz", "ar_symmetrized", "nqs_autoregressive._symmetry:SymmetrizedAR"),
    ("estimator", "annealed", "nqs_autoregressive._annealed:AnnealedEstimator"),
    ("optimizer", "adam_rsqrt", "nqs_autoregressive._annealed:adam_rsqrt"),
    ("command", "grow", "nqs_autoregressive._cli:grow_command"),
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
