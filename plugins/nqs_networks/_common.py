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


def resolve_activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None
