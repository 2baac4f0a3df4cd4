"""Samples with optional weights: the contract between samplers and what consumes their output.

A sampler returns configurations shaped `(n_chains, n_per_chain, *shape)`,
either as a bare array (Monte Carlo draws from the target distribution: every
sample counts equally) or as `Samples`, which adds normalised weights. Every
estimator, `nqs_core.expect` / `expect_many` and `nqs_core.measure` honour the
weights, so an exact sum over every configuration (weights `|psi|^2 / Z`), or
an importance sampler (self-normalised weights `|psi|^2 / q`), is an ordinary
sampler: nothing in the core asks which sampler produced the samples.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._distributed import sum_over_ranks
from ._stats import Stats


class Samples(eqx.Module):
    """Configurations with weights (what a sampler returns when its samples do
    not count equally).

    **Fields:**

    - `x`: the configurations, `(n_chains, n_per_chain, *shape)` (under MPI
      this rank's share).
    - `weights`: `(n_chains, n_per_chain)`, non-negative, summing to 1 over
      every rank's samples; `None`: equal weights (plain Monte Carlo).
    - `exact`: `True` when `sum_i weights_i f(x_i)` is the exact average (the
      configurations enumerate the support of the distribution, e.g. a full
      sum with `|psi|^2` weights): statistics then have error 0, tau 0 and
      R-hat 1. `False`: weighted independent draws (importance sampling): the
      error is `sqrt(sum_i w_i^2 |f(x_i) - mean|^2)`, tau 0, R-hat 1.
    - `lookup`: optional, for exact enumerations only: an object whose
      `lookup_tables(operators)` gives, per operator, `(rows, mels)` (the row
      of the flattened `x` holding each connected configuration, and its
      matrix element; see `nqs_core._fullsum.lookup_table`) or `None`, so that
      local values are gathered instead of evaluated. A static field (hashed
      by identity).

    Samplers that draw from the target distribution keep returning bare
    arrays: the weighted paths cost nothing there.
    """

    x: Array
    weights: Array | None = None
    exact: bool = eqx.field(static=True, default=False)
    lookup: Any = eqx.field(static=True, default=None)


def sample_array(samples) -> Array:
    """The configurations of a sampler's output (a bare array or `Samples.x`)."""
    return samples.x if isinstance(samples, Samples) else samples


def sample_weights(samples) -> Array | None:
    """The weights of a sampler's output, `None` for equal weights."""
    return samples.weights if isinstance(samples, Samples) else None


def is_weighted(samples) -> bool:
    """Whether a sampler's output carries weights (a static, trace-time answer)."""
    return isinstance(samples, Samples) and samples.weights is not None


def is_exact(samples) -> bool:
    """Whether a sampler's output is an exact weighted sum (a static answer)."""
    return isinstance(samples, Samples) and samples.weights is not None and samples.exact


def exact_statistics(p: Array, values: Array) -> Stats:
    """`Stats` of an exact average `sum_x p(x) v(x)` over ranks: the mean, the
    variance `sum_x p(x) |v(x) - mean|^2`, error of the mean 0, tau 0, R-hat 1.

    `values` has shape `(n, *value_shape)`; the fields have shape `value_shape`.
    Rows with `p = 0` do not contribute (even when their values are not finite).
    """
    return weighted_statistics(p, values, exact=True)


def weighted_statistics(w: Array, values: Array, exact: bool = True) -> Stats:
    """`Stats` of a weighted average `sum_i w_i v_i` (weights normalised over
    ranks): the mean, the variance `sum_i w_i |v_i - mean|^2`, tau 0, R-hat 1,
    and the error of the mean 0 when `exact`, else (self-normalised importance
    sampling) `sqrt(sum_i w_i^2 |v_i - mean|^2)`.

    `values` has shape `(n, *value_shape)`, `w` shape `(n,)`; rows with
    `w = 0` do not contribute (even when their values are not finite).
    """
    w = w.reshape(w.shape + (1,) * (values.ndim - 1))
    live = w > 0
    dtype = values.dtype
    mean = sum_over_ranks(jnp.sum(jnp.where(live, w.astype(dtype) * values, jnp.zeros((), dtype)), axis=0))
    dev = jnp.where(live, jnp.abs(values - mean) ** 2, 0.0)
    variance = sum_over_ranks(jnp.sum(w * dev, axis=0))
    zero = jnp.zeros(variance.shape, variance.dtype)
    error = zero if exact else jnp.sqrt(sum_over_ranks(jnp.sum(w**2 * dev, axis=0)))
    return Stats(mean=mean, error_of_mean=error, variance=variance, tau_corr=zero, R_hat=zero + 1.0)


class AbstractEnumeration(eqx.Module):
    """A fixed set of configurations whose weights follow from the wave function
    (an exact sum over a space: `nqs_core.FullSumState`); `nqs_core.expect`
    accepts one in place of samples."""

    @abc.abstractmethod
    def samples(self, ansatz, chunk_size: int | None = None) -> Samples:
        """The configurations with their `|psi|^2` weights for `ansatz`."""
        raise NotImplementedError
