"""Shared pieces of the built-in networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DTYPES = {"float64": jnp.float64, "complex128": jnp.complex128, "float32": jnp.float32, "complex64": jnp.complex64}


def resolve_dtype(name: str):
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown param_dtype {name!r}; valid: {', '.join(DTYPES)}") from None


def normal(key, shape, dtype, std):
    """Normal initialisation; complex dtypes get independent real and imaginary
    parts, each with standard deviation `std / sqrt(2)`."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        kr, ki = jax.random.split(key)
        z = jax.lax.complex(jax.random.normal(kr, shape, jnp.float64), jax.random.normal(ki, shape, jnp.float64))
        return (z * float(std / np.sqrt(2))).astype(dtype)
    return (jax.random.normal(key, shape, jnp.float64) * float(std)).astype(dtype)


def log_cosh(z):
    """`log(cosh(z))`, stable for large |z|, for real and complex z."""
    s = jnp.where(jnp.real(z) < 0, -z, z)
    return s + jnp.log1p(jnp.exp(-2.0 * s)) - float(np.log(2.0))


_BLOCK = 64  # factors per product in sum_log_cosh: each is in (1, 2], so a block is < 2**64


@jax.custom_jvp
def sum_log_cosh(x):
    """`sum(log(cosh(x)), axis=-1)` for real `x`, with one logarithm per block
    of 64 entries instead of one per entry.

    `log cosh x = |x| - log 2 + log(1 + exp(-2|x|))`; the last terms of a block
    are summed as the logarithm of the product of the `1 + exp(-2|x|)`, each in
    `(1, 2]` (no overflow). The logarithm is the costly part of `log_cosh` on
    the CPU (a sequential Metropolis chain of a real RBM spends most of its time
    there). Agrees with `jnp.sum(log_cosh(x), -1)` to a few ulp per block. The
    derivative is `tanh(x)`, from the same exponentials.
    """
    a = jnp.abs(x)
    return jnp.sum(a, axis=-1) + _log_block_products(jnp.exp(-2.0 * a)) - x.shape[-1] * float(np.log(2.0))


def _log_block_products(e):
    n = e.shape[-1]
    if n <= _BLOCK:
        return jnp.log(jnp.prod(1.0 + e, axis=-1))
    n_blocks = -(-n // _BLOCK)
    pad = n_blocks * _BLOCK - n
    if pad:
        e = jnp.concatenate([e, jnp.zeros(e.shape[:-1] + (pad,), e.dtype)], axis=-1)
    factors = (1.0 + e).reshape(e.shape[:-1] + (n_blocks, _BLOCK))
    return jnp.sum(jnp.log(jnp.prod(factors, axis=-1)), axis=-1)


@sum_log_cosh.defjvp
def _sum_log_cosh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    a = jnp.abs(x)
    e = jnp.exp(-2.0 * a)
    value = jnp.sum(a, axis=-1) + _log_block_products(e) - x.shape[-1] * float(np.log(2.0))
    tanh = jnp.sign(x) * (1.0 - e) / (1.0 + e)
    return value, jnp.sum(tanh * dx, axis=-1)


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "log_cosh": log_cosh,
    "silu": jax.nn.silu,
}


#: activations that are holomorphic functions of a complex argument (an MLP
#: of complex parameters built from them has a holomorphic `log psi`)
HOLOMORPHIC_ACTIVATIONS = ("tanh", "log_cosh")


def resolve_activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None


ENCODINGS = ("value", "one_hot")


def input_encoding(space, encoding: str) -> tuple[int, tuple[float, ...] | None]:
    """The input encoding of a network on `space`: `"value"` feeds the raw
    configuration values (`+-1` for spin 1/2, `2m` for spin S); `"one_hot"`
    feeds, per site, one indicator per local state (`d` inputs per site;
    discrete spaces only).

    **Arguments:**

    - `space`: the configuration space.
    - `encoding`: `"value"` or `"one_hot"`.

    **Returns:** `(n_inputs, local_states)`: the input size and, for
    `"one_hot"`, the local states (else `None`).
    """
    import nqs_core

    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if encoding == "value":
        return space.size, None
    if not isinstance(space, nqs_core.AbstractDiscreteSpace):
        raise ValueError(f"encoding = \"one_hot\" needs a discrete space, got {space!r}")
    states = tuple(float(v) for v in space.local_states)
    return space.size * len(states), states


def encode(x, states: tuple[float, ...] | None):
    """`x` flattened, one-hot encoded over `states` when given (see `input_encoding`)."""
    x = x.reshape(-1)
    if states is None:
        return x
    return (x[:, None] == jnp.asarray(states, dtype=x.dtype)).reshape(-1).astype(x.dtype)
