"""Autoregressive RNN wave functions (Roth 2020): exact sampling, symmetrisation, annealing, iterative retraining."""

from ._annealed import AnnealedEstimator as AnnealedEstimator, adam_rsqrt as adam_rsqrt
from ._common import GRUCell as GRUCell, LSTMCell as LSTMCell
from ._grow import grow as grow, load_params as load_params, transfer_parameters as transfer_parameters
from ._rnn1d import GRU1D as GRU1D
from ._rnn2d import LSTM2D as LSTM2D
from ._symmetry import SymmetrizedAR as SymmetrizedAR, lattice_permutations as lattice_permutations
