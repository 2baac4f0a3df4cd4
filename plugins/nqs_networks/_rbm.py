"""Restricted Boltzmann machine."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAnsatz, AbstractSpace

from ._common import encode, input_encoding, log_cosh, normal, resolve_dtype, sum_log_cosh


class RBM(AbstractAnsatz):
    """Restricted Boltzmann machine (Carleo & Troyer 2017).

    `log psi(s) = a . s + sum_j log cosh(b_j + W_j . s)` with `alpha * N` hidden units.

    **Arguments:**

    - `space`: the configuration space (gives `N`, injected from `[space]`).
    - `alpha`: hidden-unit density (`n_hidden = alpha * N`).
    - `param_dtype`: `"float64"` (real, positive wave functions) or `"complex128"`
      (sign and phase structure).
    - `use_visible_bias`, `use_hidden_bias`: include `a` and `b`.
    - `init_std`: standard deviation of the normal initialisation.
    - `encoding`: the input encoding: `"value"` (default: the configuration
      values, `s`) or `"one_hot"` (per site one input per local state, `d N`
      visible units; for d-level sites such as spin S).
    - `key`: PRNG key for the initialisation (injected from the run seed).
    """

    weights: Array
    hidden_bias: Array | None
    visible_bias: Array | None
    local_states: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        alpha: int = 1,
        param_dtype: str = "float64",
        use_visible_bias: bool = True,
        use_hidden_bias: bool = True,
        init_std: float = 0.01,
        encoding: str = "value",
        *,
        key: PRNGKeyArray,
    ):
        if alpha < 1:
            raise ValueError(f"alpha must be a positive integer, got {alpha}")
        dtype = resolve_dtype(param_dtype)
        n = space.size
        n_in, self.local_states = input_encoding(space, encoding)
        kw, kb, ka = jax.random.split(key, 3)
        self.weights = normal(kw, (alpha * n, n_in), dtype, init_std)
        self.hidden_bias = normal(kb, (alpha * n,), dtype, init_std) if use_hidden_bias else None
        self.visible_bias = normal(ka, (n_in,), dtype, init_std) if use_visible_bias else None

    def __call__(self, x):
        x = encode(x, self.local_states).astype(self.weights.dtype)
        theta = self.weights @ x
        if self.hidden_bias is not None:
            theta = theta + self.hidden_bias
        # real parameters: one logarithm per 64 hidden units (sum_log_cosh)
        out = jnp.sum(log_cosh(theta)) if jnp.iscomplexobj(theta) else sum_log_cosh(theta)
        if self.visible_bias is not None:
            out = out + jnp.sum(self.visible_bias * x)  # fuses with the rest (a dot is its own kernel)
        return out
