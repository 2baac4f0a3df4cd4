"""Built-in networks: RBM, feed-forward MLP, Jastrow."""

from ._common import log_cosh as log_cosh
from ._mlp import MLP as MLP, Jastrow as Jastrow
from ._rbm import RBM as RBM
