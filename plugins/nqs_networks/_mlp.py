"""Feed-forward network and Jastrow factor."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAnsatz, AbstractSpace

from ._common import HOLOMORPHIC_ACTIVATIONS, encode, input_encoding, normal, resolve_activation, resolve_dtype


class MLP(AbstractAnsatz):
    """Fully connected feed-forward network returning `log psi`.

    `x -> act(W_1 x + b_1) -> ... -> act(W_L h + b_L) -> sum` (the output is the
    sum of the last hidden layer, as in an RBM with deeper features).

    **Arguments:**

    - `space`: configuration space (injected).
    - `hidden`: widths of the hidden layers, e.g. `[32, 32]`.
    - `activation`: `"log_cosh"` (default; works for complex parameters),
      `"tanh"`, `"relu"`, `"gelu"`, `"silu"`.
    - `param_dtype`: `"float64"` or `"complex128"`.
    - `encoding`: the input encoding: `"value"` (default: the configuration
      values) or `"one_hot"` (one input per local state and site, for d-level
      sites such as spin S).
    - `key`: PRNG key (injected).

    Weights are initialised with variance `1/fan_in` (LeCun), biases at zero.
    """

    weights: list[Array]
    biases: list[Array]
    activation: str = eqx.field(static=True)
    local_states: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        hidden: tuple[int, ...] | list[int] = (32,),
        activation: str = "log_cosh",
        param_dtype: str = "float64",
        encoding: str = "value",
        *,
        key: PRNGKeyArray,
    ):
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {list(hidden)}")
        resolve_activation(activation)
        dtype = resolve_dtype(param_dtype)
        n_in, self.local_states = input_encoding(space, encoding)
        sizes = (n_in,) + hidden
        keys = jax.random.split(key, len(hidden))
        self.weights = [normal(k, (o, i), dtype, 1.0 / np.sqrt(i)) for k, i, o in zip(keys, sizes[:-1], sizes[1:])]
        self.biases = [jnp.zeros((o,), dtype) for o in sizes[1:]]
        self.activation = activation

    @property
    def holomorphic(self) -> bool:
        """`True` with complex parameters and a holomorphic activation
        (`log_cosh`, `tanh`): `log psi` is then a composition of holomorphic
        functions of the parameters."""
        return bool(jnp.iscomplexobj(self.weights[0])) and self.activation in HOLOMORPHIC_ACTIVATIONS

    def __call__(self, x):
        act = resolve_activation(self.activation)
        h = encode(x, self.local_states).astype(self.weights[0].dtype)
        for w, b in zip(self.weights, self.biases):
            h = act(w @ h + b)
        return jnp.sum(h)


class Jastrow(AbstractAnsatz):
    """Two-body Jastrow factor `log psi(s) = sum_{i<j} s_i W_ij s_j`.

    **Arguments:**

    - `space`: configuration space (injected).
    - `param_dtype`: `"float64"` or `"complex128"`.
    - `init_std`: standard deviation of the initial couplings.
    - `key`: PRNG key (injected).
    """

    couplings: Array

    def __init__(self, space: AbstractSpace, param_dtype: str = "float64", init_std: float = 0.01, *, key: PRNGKeyArray):
        n = space.size
        self.couplings = normal(key, (n * (n - 1) // 2,), resolve_dtype(param_dtype), init_std)

    @property
    def holomorphic(self) -> bool:
        """`True` with complex couplings (`log psi` is linear in them)."""
        return bool(jnp.iscomplexobj(self.couplings))

    def __call__(self, x):
        x = x.reshape(-1).astype(self.couplings.dtype)
        n = x.shape[0]
        i, j = np.triu_indices(n, k=1)
        return jnp.sum(self.couplings * x[i] * x[j])
