"""The one-hidden-layer network for the S and D waves of the deuteron."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


class DeuteronNetwork(eqx.Module):
    """`psi_L(k) = sum_i W2_{L,i} softplus(W1_i k + b_i)`, `L = S, D` (Keeble and Rios 2020).

    One hidden layer of `n_hidden` softplus units shared by both outputs, no
    output bias: `4 n_hidden` parameters. Initialised as in Keeble and Rios 2020:
    `W1 ~ U[-1, 0)`, `b ~ U[-1, 1)`, `W2 ~ U[0, 1)`.

    **Arguments:** `n_hidden` (hidden units), `key` (PRNG key).

    Calling it on one momentum `k` (fm^-1) returns `(psi_S(k), psi_D(k))`;
    `on_mesh(k)` evaluates a vector of momenta.
    """

    w1: Array
    b1: Array
    w2: Array

    def __init__(self, n_hidden: int = 20, *, key: PRNGKeyArray):
        if not isinstance(n_hidden, int) or n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive integer, got {n_hidden!r}")
        k1, k2, k3 = jax.random.split(key, 3)
        self.w1 = jax.random.uniform(k1, (n_hidden,), jnp.float64, -1.0, 0.0)
        self.b1 = jax.random.uniform(k2, (n_hidden,), jnp.float64, -1.0, 1.0)
        self.w2 = jax.random.uniform(k3, (2, n_hidden), jnp.float64, 0.0, 1.0)

    @property
    def n_hidden(self) -> int:
        return int(self.w1.shape[0])

    def __call__(self, k):
        h = jax.nn.softplus(self.w1 * k + self.b1)
        out = self.w2 @ h
        return out[0], out[1]

    def on_mesh(self, k):
        """`(psi_S, psi_D)` at the momenta `k` (shape `(n,)` each)."""
        return jax.vmap(self)(jnp.asarray(k))
