"""Autoregressive RNN wave functions (Roth 2020): exact sampling, symmetrisation, annealing, iterative retraining."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._annealed": ["AnnealedEstimator", "adam_rsqrt"],
        "._common": ["GRUCell", "LSTMCell"],
        "._grow": ["grow", "load_params", "transfer_parameters"],
        "._rnn1d": ["GRU1D"],
        "._rnn2d": ["LSTM2D"],
        "._symmetry": ["SymmetrizedAR", "lattice_permutations"],
    },
)
