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
