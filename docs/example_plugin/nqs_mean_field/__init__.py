"""Example nqs plugin: a product-state (mean-field) wave function for spin 1/2.

    log psi(s) = sum_i log phi_i(s_i),   phi_i(+1) = exp(a_i), phi_i(-1) = exp(b_i)

Install with `pip install -e docs/example_plugin` and it appears in
`nqs list ansatz` as `mean_field`.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import nqs_core


class MeanField(nqs_core.AbstractAnsatz):
    """Product state: one real log-amplitude per site and spin value (a positive state).

    **Arguments:**

    - `space`: the configuration space (injected from `[space]`).
    - `init_std`: standard deviation of the random initial log-amplitudes.
    - `key`: PRNG key (injected from the run seed).
    """

    up: Array
    down: Array

    def __init__(self, space: nqs_core.AbstractSpace, init_std: float = 0.1, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        n = space.size
        self.up = jax.random.normal(k1, (n,)) * init_std
        self.down = jax.random.normal(k2, (n,)) * init_std

    def __call__(self, x):
        up = (1.0 + x) / 2.0
        return jnp.sum(up * self.up + (1.0 - up) * self.down)


@nqs_core.hookimpl
def nqs_register(registry):
    registry.add("ansatz", "mean_field", MeanField)
