"""Shared pieces of the autoregressive networks: cells, readout, U(1) masks."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import nqs_core


def dense_init(key: PRNGKeyArray, n_out: int, n_in: int, scale: float = 1.0) -> Array:
    """Normal weights with standard deviation `scale / sqrt(n_in)` (float64)."""
    return jax.random.normal(key, (n_out, n_in), jnp.float64) * float(scale / math.sqrt(n_in))


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def spin_space_info(owner: str, space) -> tuple[int, int | None]:
    """`(n_sites, n_up or None)` of a spin-1/2 space; `TypeError` for anything else."""
    if (
        not isinstance(space, nqs_core.AbstractDiscreteSpace)
        or tuple(space.local_states) != (-1.0, 1.0)
        or len(space.shape) != 1
    ):
        raise TypeError(
            f"{owner} needs a spin-1/2 space (local states (-1, 1), configurations of shape (n_sites,)), got {space!r}"
        )
    n_sites = int(space.shape[0])
    constraint = space.constraint  # sum(s) = n_up - (n_sites - n_up)
    n_up = None if constraint is None else int(round((n_sites + constraint.total) / 2))
    return n_sites, n_up


class GRUCell(eqx.Module):
    """The gated recurrent unit of Roth 2020, Eqs. 19-21:
    `i = tanh(W_i [s, h] + b_i)`, `u = sigmoid(W_u [s, h] + b_u)`,
    `h' = (1 - u) * h + u * i`. Works on a trailing feature axis (any batch shape)."""

    weight: Array  # (2H, D + H)
    bias: Array  # (2H,)

    def __init__(self, n_in: int, n_hidden: int, *, key: PRNGKeyArray):
        self.weight = dense_init(key, 2 * n_hidden, n_in + n_hidden)
        self.bias = jnp.zeros((2 * n_hidden,), jnp.float64)

    def __call__(self, h: Array, s: Array) -> Array:
        z = jnp.concatenate([s, h], axis=-1) @ self.weight.T + self.bias
        i, u = jnp.split(z, 2, axis=-1)
        u = jax.nn.sigmoid(u)
        return (1.0 - u) * h + u * jnp.tanh(i)


class LSTMCell(eqx.Module):
    """The long short-term memory cell of Roth 2020, Eqs. 13-18; the state is
    `(h, c)`. Works on a trailing feature axis (any batch shape)."""

    weight: Array  # (4H, D + H)
    bias: Array  # (4H,)

    def __init__(self, n_in: int, n_hidden: int, *, key: PRNGKeyArray):
        self.weight = dense_init(key, 4 * n_hidden, n_in + n_hidden)
        # forget-gate bias 1: remember by default
        self.bias = jnp.zeros((4 * n_hidden,), jnp.float64).at[n_hidden : 2 * n_hidden].set(1.0)

    def __call__(self, state: tuple[Array, Array], s: Array) -> tuple[Array, Array]:
        h, c = state
        z = jnp.concatenate([s, h], axis=-1) @ self.weight.T + self.bias
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c


class FeedForward(eqx.Module):
    """Two-layer feed-forward network `W2 act(W1 x + b1) + b2` on a trailing axis."""

    w1: Array
    b1: Array
    w2: Array
    b2: Array

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, key: PRNGKeyArray, out_scale: float = 1.0):
        k1, k2 = jax.random.split(key)
        self.w1 = dense_init(k1, n_hidden, n_in)
        self.b1 = jnp.zeros((n_hidden,), jnp.float64)
        self.w2 = dense_init(k2, n_out, n_hidden, out_scale)
        self.b2 = jnp.zeros((n_out,), jnp.float64)

    def __call__(self, x: Array) -> Array:
        return jnp.tanh(x @ self.w1.T + self.b1) @ self.w2.T + self.b2


class Readout(eqx.Module):
    """Conditional wave function from a hidden vector (Roth 2020, Eq. 8): log-probabilities
    of the two local states by a softmax and, optionally, their phases from a
    `(sin phi, cos phi)` two-vector (`phi = atan2`)."""

    net: FeedForward
    phase: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_hidden: int, phase: bool, *, key: PRNGKeyArray):
        self.phase = phase
        # small output weights: the untrained model is close to the uniform distribution
        net = FeedForward(n_in, n_hidden, 6 if phase else 2, key=key, out_scale=0.1)
        if phase:  # cos-components start at 1 so that atan2 is smooth (phi ~ 0)
            net = eqx.tree_at(lambda m: m.b2, net, net.b2.at[4:].set(1.0))
        self.net = net

    def __call__(self, h: Array, mask: Array | None) -> tuple[Array, Array | None]:
        """`(log p (..., 2), phase (..., 2) or None)`; `mask` (..., 2) bool marks allowed states."""
        out = self.net(h)
        logits = out[..., :2]
        if mask is not None:
            logits = jnp.where(mask, logits, -jnp.inf)
        logp = jax.nn.log_softmax(logits, axis=-1)
        if not self.phase:
            return logp, None
        return logp, jnp.arctan2(out[..., 2:4], out[..., 4:6])


def u1_mask(n_up_before: Array, site: Array | int, n_sites: int, n_up: int | None) -> Array | None:
    """Allowed local states `(down, up)` at raster position `site` when `n_up_before`
    spins before it are up, so that exactly `n_up` up spins remain reachable."""
    if n_up is None:
        return None
    n_up_before = jnp.asarray(n_up_before).astype(jnp.int32)
    remaining = n_sites - jnp.asarray(site).astype(jnp.int32)  # sites from this one to the end
    up_ok = n_up_before < n_up
    down_ok = (n_up - n_up_before) <= remaining - 1
    return jnp.stack([down_ok, up_ok], axis=-1)


def log_psi_from(logp: Array, phase: Array | None, x: Array) -> Array:
    """`sum_i [log p_i(x_i) / 2 + i phi_i(x_i)]` from per-site conditionals."""
    idx = (x > 0).astype(jnp.int32)
    lp = jnp.take_along_axis(logp, idx[:, None], axis=1)[:, 0]
    out = 0.5 * jnp.sum(lp)
    if phase is None:
        return out
    ph = jnp.take_along_axis(phase, idx[:, None], axis=1)[:, 0]
    return jax.lax.complex(out, jnp.sum(ph))


def one_hot(s: Array) -> Array:
    """Spin values `±1.0` -> one-hot `(down, up)` float64 vectors (zeros stay zeros)."""
    return jnp.stack([(s < 0).astype(jnp.float64), (s > 0).astype(jnp.float64)], axis=-1)


def spin_of(idx: Array) -> Array:
    """Local-state index (0: down, 1: up) -> spin value `-1.0 / +1.0`."""
    return jnp.where(idx > 0, 1.0, -1.0).astype(jnp.float64)
