"""Shared helpers of the contract suites and the exactly known states and densities."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._ansatz import (
    AbstractAnsatz,
)
from .._sampler import AbstractDistribution
from .._space import AbstractDiscreteSpace, AbstractSpace

#: Largest discrete space the suites enumerate (exact probabilities, dense matrices).
MAX_STATES = 4096


def _name(obj) -> str:
    return type(obj).__name__


def _fail(obj, message: str) -> None:
    raise AssertionError(f"{_name(obj)}: {message}")


def _check(condition, obj, message) -> None:
    """Fail with `message` (a string, or a callable giving it) unless `condition`."""
    if not bool(condition):
        _fail(obj, message() if callable(message) else message)


# -- exactly known states and densities ----------------------------------------


def _codes(space: AbstractDiscreteSpace, xs, xp=jnp):
    """Integer code of every configuration of `xs` `(n, *shape)` (base
    `len(local_states)`, site 0 least significant) and whether every entry
    is one of the local states; `xp` is `jax.numpy` (traceable) or `numpy`."""
    levels = xp.asarray(space.local_states, dtype=xs.dtype)
    flat = xs.reshape(xs.shape[0], -1)
    index = xp.argmin(xp.abs(flat[..., None] - levels), axis=-1)
    valid = xp.all(levels[index] == flat, axis=-1)
    base = xp.asarray(len(space.local_states), dtype=xp.int64) ** xp.arange(flat.shape[1], dtype=xp.int64)
    return xp.sum(index.astype(xp.int64) * base, axis=-1), valid


def _state_index(space: AbstractDiscreteSpace, codes, xs, xp=jnp):
    """`(index into the sorted codes, found)` of every configuration of `xs`,
    given the sorted codes of `all_states`."""
    c, valid = _codes(space, xs, xp)
    i = xp.clip(xp.searchsorted(codes, c), 0, codes.shape[0] - 1)
    return i, valid & (codes[i] == c)


class _Enumeration:
    """The configurations of an enumerable space with a NumPy lookup
    (configuration -> position in `all_states()`)."""

    def __init__(self, space: AbstractDiscreteSpace):
        self.space = space
        self.states = np.asarray(space.all_states())
        codes, _ = _codes(space, self.states, np)
        self.order = np.argsort(codes)
        self.codes = codes[self.order]

    def index(self, xs) -> tuple[np.ndarray, np.ndarray]:
        """`(position in all_states, found)` of every configuration of `xs`."""
        i, found = _state_index(self.space, self.codes, np.asarray(xs), np)
        return self.order[i], found


class TableAnsatz(AbstractAnsatz):
    """An exact wave function on a small discrete space: one `log psi` value per
    configuration of `space.all_states()` (the table is the parameter vector).

    Configurations outside the space (a broken constraint, a value that is not a
    local state) get `log psi = -inf`, i.e. `psi = 0`. Used to wrap an exact
    eigenvector as an ansatz (`check_system`) and as a Born distribution with
    exactly known probabilities (`check_sampler`).

    **Arguments:**

    - `space`: an enumerable discrete space.
    - `log_values`: `log psi` of every configuration of `space.all_states()`, in
      that order (real or complex; `-inf` for zero amplitudes).
    """

    space: AbstractDiscreteSpace
    log_values: Array
    codes: Array
    order: Array

    def __init__(self, space: AbstractDiscreteSpace, log_values):
        if not isinstance(space, AbstractDiscreteSpace):
            raise TypeError(f"TableAnsatz needs a discrete space that can list its states, got {_name(space)}")
        enumeration = _Enumeration(space)
        n = enumeration.states.shape[0]
        log_values = jnp.asarray(log_values)
        if log_values.shape != (n,) or not jnp.issubdtype(log_values.dtype, jnp.inexact):
            raise ValueError(
                f"TableAnsatz needs one float or complex log psi per state, shape ({n},), "
                f"got {log_values.dtype} {log_values.shape}"
            )
        self.space = space
        self.log_values = log_values
        self.codes = jnp.asarray(enumeration.codes)
        self.order = jnp.asarray(enumeration.order)

    @classmethod
    def random(cls, space: AbstractDiscreteSpace, key: PRNGKeyArray, scale: float = 1.0, phases: bool = True):
        """A random table: `log |psi|` normal with standard deviation `scale`
        (so `|psi|^2` is far from uniform for `scale ~ 1`) and, if `phases`,
        uniform random phases (a complex table)."""
        k1, k2 = jax.random.split(key)
        n = int(space.n_states)
        amplitude = scale * jax.random.normal(k1, (n,), jnp.float64)
        if not phases:
            return cls(space, amplitude)
        return cls(space, jax.lax.complex(amplitude, jax.random.uniform(k2, (n,), jnp.float64, -math.pi, math.pi)))

    def __call__(self, x):
        i, found = _state_index(self.space, self.codes, x[None])
        value = self.log_values[self.order[i[0]]]
        return jnp.where(found[0], value, jnp.asarray(-jnp.inf, value.dtype))


class Gaussian(AbstractDistribution):
    """The normal density `log p(x) = -sum_i (x_i - mean)^2 / (2 std^2)` on a
    continuous space (independent coordinates), whose moments `check_sampler`
    knows exactly.

    **Arguments:**

    - `space`: the continuous space (for the shape).
    - `mean`, `std`: scalars or arrays broadcastable to `space.shape`.
    """

    mean: Array
    std: Array

    def __init__(self, space: AbstractSpace, mean=0.0, std=1.0):
        self.mean = jnp.broadcast_to(jnp.asarray(mean, jnp.float64), space.shape)
        self.std = jnp.broadcast_to(jnp.asarray(std, jnp.float64), space.shape)
        if not bool(jnp.all(self.std > 0)):
            raise ValueError("Gaussian: std must be positive")

    def log_prob(self, x):
        z = (x - self.mean.astype(x.dtype)) / self.std.astype(x.dtype)
        return -0.5 * jnp.sum(z * z)


def gaussian_moments(distribution: AbstractDistribution, space: AbstractSpace) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of a distribution whose `log p` is quadratic
    (a `Gaussian`, a free-field action), from the Hessian of `log p`.

    **Returns:** `(mean, covariance)`, shapes `(size,)` and `(size, size)` over
    the flattened configuration.

    **Raises:** `ValueError` if `log p` is not quadratic (its Hessian differs
    between two points) or not normalisable.
    """
    shape, size = space.shape, space.size

    def log_p(v):
        return distribution.log_prob(v.reshape(shape))

    zero = jnp.zeros(size, jnp.float64)
    other = jax.random.normal(jax.random.PRNGKey(0), (size,), jnp.float64)
    hessian = jax.jit(jax.hessian(log_p))  # one compilation for both points
    h0 = -np.asarray(hessian(zero))
    h1 = -np.asarray(hessian(other))
    if not np.allclose(h0, h1, rtol=1e-10, atol=1e-12):
        raise ValueError(
            f"{_name(distribution)}: log p is not quadratic, so its moments are not known; "
            "pass moments=(mean, covariance) to check_sampler, or statistics=False"
        )
    h0 = 0.5 * (h0 + h0.T)
    if np.linalg.eigvalsh(h0)[0] <= 0:
        raise ValueError(f"{_name(distribution)}: log p is quadratic but not normalisable (its Hessian is not negative definite)")
    covariance = np.linalg.inv(h0)
    mean = covariance @ np.asarray(jax.jit(jax.grad(log_p))(zero))
    return mean, covariance
