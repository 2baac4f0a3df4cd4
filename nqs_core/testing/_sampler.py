"""The sampler contract suite (`check_sampler`)."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._sampler import AbstractDistribution, AbstractSampler
from .._samples import Samples
from .._space import AbstractDiscreteSpace
from .._stats import statistics
from ._common import (
    MAX_STATES,
    _check,
    _Enumeration,
    gaussian_moments,
)

# -- samplers --------------------------------------------------------------------


def expected_tv_distance(p, n_effective: float) -> float:
    """Expected total-variation distance between `p` and the histogram of
    `n_effective` independent samples from it (large-`n` limit):
    `1/2 sum_x sqrt(2 p(1-p) / (pi n))`."""
    p = np.asarray(p, dtype=np.float64)
    return float(0.5 * np.sum(np.sqrt(2.0 * p * (1.0 - p) / (math.pi * n_effective))))


@eqx.filter_jit
def _sample(sampler, distribution, state):
    return sampler.sample(distribution, state)


@eqx.filter_jit
def _init(sampler, distribution, key):
    return sampler.init(distribution, key)


@eqx.filter_jit
def _log_probs(distribution, xs):
    return jax.vmap(distribution.log_prob)(xs)


_statistics = jax.jit(statistics)


def _draw(sampler, distribution, key, n_calls):
    state = _init(sampler, distribution, key)
    out = []
    for call in range(n_calls):
        samples, state, info = _sample(sampler, distribution, state)
        if isinstance(samples, Samples):  # weighted samples: the weights' contract, then the configurations
            _check_weights(sampler, samples, call)
            samples = samples.x
        out.append((samples, info))
    return out


def _check_weights(sampler, samples, call) -> None:
    """`Samples.weights`: `None`, or `(n_chains, n_per_chain)`, finite, non-negative, summing to 1 (one process)."""
    if samples.weights is None:
        return
    w = np.asarray(samples.weights)
    where = f"call {call + 1}"
    _check(w.shape == tuple(samples.x.shape[:2]), sampler, f"{where}: weights have shape {w.shape}, expected {samples.x.shape[:2]}")
    _check(bool(np.all(np.isfinite(w)) and np.all(w >= 0)), sampler, f"{where}: weights must be finite and non-negative")
    _check(abs(float(w.sum()) - 1.0) <= 1e-9, sampler, f"{where}: weights sum to {float(w.sum())!r}, not 1")


def check_sampler(
    sampler: AbstractSampler,
    distribution: AbstractDistribution,
    key: PRNGKeyArray,
    *,
    n_calls: int = 4,
    statistics_check: bool = True,
    moments: tuple[Any, Any] | None = None,
    tolerance_factor: float = 3.0,
    z: float = 5.0,
    max_states: int = MAX_STATES,
) -> None:
    """Check a sampler against the `AbstractSampler` contract on `distribution`.

    - `sample` returns `(samples, state, info)` with samples (or, for
      weighted samples, `Samples.x`; its weights finite, non-negative,
      shaped `(n_chains, n_samples_per_chain)` and summing to 1) shaped
      `(n_chains, n_samples_per_chain, *space.shape)` of the space's dtype and
      `info` a dict (an `"acceptance"` entry lies in `[0, 1]`);
    - samples lie in the space: finite; on a discrete space every entry is a
      local state, the space's declared `constraint` (a fixed sum such as the
      magnetisation) holds and, when the space is enumerable (at most
      `max_states` configurations), every sample is one of `space.all_states()`;
    - the same key gives the same samples (over `n_calls` calls), another key
      other samples;
    - statistics (`statistics_check=True`) of the samples of `n_calls` calls:
      on an enumerable discrete space the total-variation distance between
      their histogram and the exact probabilities (`log_prob` on every state)
      stays below `tolerance_factor` times its expected value for the number
      of effective samples (samples over `1 + 2 tau`, `tau` the integrated
      autocorrelation time of `log p` along the chains); on a continuous
      space the mean, the variance and the Mahalanobis distance of the
      samples agree with the exact Gaussian moments (`moments = (mean,
      covariance)`, default from `gaussian_moments`) within `z` error bars.

    **Arguments:**

    - `sampler`: the sampler under test.
    - `distribution`: the target; for the statistics a density with known
      probabilities (a `BornDistribution` on an enumerable space, e.g. of a
      `TableAnsatz.random`) or moments (a `Gaussian`).
    - `key`: PRNG key for `sampler.init`.
    - `n_calls`: `sample` calls (chained through the state) that are checked
      and pooled for the statistics.
    - `statistics_check`: `False` for a sampler that does not draw from the
      distribution (the full-sum enumeration, weighed by its estimator); it
      also skips the other-key check.
    - `moments`: `(mean, covariance)` of a continuous target, if not Gaussian
      (scalars broadcast; the covariance over the flattened configuration).
    - `tolerance_factor`: the total-variation bound in units of its expected value.
    - `z`: the moment bound in error bars (`nqs_core.statistics`, which
      accounts for the autocorrelation along and the scatter between chains).
    - `max_states`: largest discrete space that is enumerated.

    **Raises:** `AssertionError` naming the broken rule.
    """
    space = sampler.space
    per = sampler.n_samples_per_chain
    draws = _draw(sampler, distribution, key, n_calls)
    expected = (sampler.n_chains, per) + tuple(space.shape)
    levels = np.asarray(space.local_states) if isinstance(space, AbstractDiscreteSpace) else None
    enumerable = isinstance(space, AbstractDiscreteSpace) and int(space.n_states) <= max_states
    constraint = space.constraint if isinstance(space, AbstractDiscreteSpace) else None
    if enumerable:
        enumeration = _Enumeration(space)
    for call, (samples, info) in enumerate(draws):
        where = f"call {call + 1}"
        _check(samples.shape == expected, sampler,
               f"{where}: samples have shape {samples.shape}, expected (n_chains, n_samples_per_chain, *space.shape) = {expected}")
        _check(samples.dtype == jnp.dtype(space.dtype), sampler,
               f"{where}: samples are {samples.dtype}, the space's configurations {jnp.dtype(space.dtype)}")
        _check(isinstance(info, dict), sampler, f"{where}: info must be a dict of diagnostics, got {type(info).__name__}")
        if "acceptance" in info:
            acc = float(info["acceptance"])
            _check(0.0 <= acc <= 1.0, sampler, f"{where}: acceptance {acc} is not in [0, 1]")
        x = np.asarray(samples).reshape((-1,) + tuple(space.shape))
        _check(np.all(np.isfinite(x)), sampler, f"{where}: samples are not all finite")
        if levels is not None:
            bad = ~np.isin(x, levels)
            _check(not bad.any(), sampler, lambda:
                   f"{where}: sample values {sorted(set(x[bad].tolist()))[:5]} are not local states {tuple(levels.tolist())}")
        if constraint is not None:
            sums = x.reshape(x.shape[0], -1).sum(axis=-1)
            off = np.abs(sums - constraint.total) > 1e-9
            _check(not off.any(), sampler, lambda:
                   f"{where}: {int(off.sum())} samples break the space's constraint sum(x) = {constraint.total:g} "
                   f"(e.g. sum {sums[off][0]:g})")
        if enumerable:
            _, found = enumeration.index(x)
            _check(found.all(), sampler, lambda:
                   f"{where}: {int(np.sum(~found))} samples are not configurations of the space "
                   f"(e.g. {x[~found][0].tolist()}): a constraint is broken")
    again = _draw(sampler, distribution, key, n_calls)
    for call, ((a, _), (b, _)) in enumerate(zip(draws, again)):
        _check(np.array_equal(np.asarray(a), np.asarray(b)), sampler,
               f"call {call + 1}: the same key gave different samples (the state must carry all randomness)")
    if not statistics_check:
        return
    other = _draw(sampler, distribution, jax.random.fold_in(key, 1), n_calls)
    _check(not all(np.array_equal(np.asarray(a), np.asarray(b)) for (a, _), (b, _) in zip(draws, other)), sampler,
           "another key gave the same samples (the key is ignored)")
    chains = np.concatenate([np.asarray(s) for s, _ in draws], axis=1)  # (n_chains, n_calls * per, *shape)
    flat = chains.reshape((-1,) + tuple(space.shape))
    if enumerable:
        log_p = np.asarray(_log_probs(distribution, jnp.asarray(enumeration.states)))
        p = np.exp(log_p - log_p.max())
        p /= p.sum()
        index, _ = enumeration.index(flat)
        hist = np.bincount(index, minlength=p.size) / index.size
        tv = 0.5 * float(np.sum(np.abs(hist - p)))
        lp_chain = log_p[index].reshape(chains.shape[:2])
        tau = float(_statistics(jnp.asarray(lp_chain)).tau_corr) if np.ptp(lp_chain) > 0 else 0.0
        n_eff = index.size / (1.0 + 2.0 * max(tau, 0.0))
        tol = tolerance_factor * expected_tv_distance(p, n_eff)
        _check(tv <= tol, sampler,
               f"total-variation distance {tv:.4f} between the histogram of {index.size} samples and the exact "
               f"probabilities exceeds {tol:.4f} ({tolerance_factor} x its expected value for {n_eff:.0f} effective samples)")
        return
    if isinstance(space, AbstractDiscreteSpace):
        raise ValueError(
            f"check_sampler: the space has {int(space.n_states)} states, more than max_states = {max_states}; "
            "use a smaller space for the statistics, or statistics_check=False"
        )
    mean, cov = gaussian_moments(distribution, space) if moments is None else (np.asarray(moments[0]), np.asarray(moments[1]))
    mean = np.broadcast_to(mean, (space.size,)).astype(np.float64)
    cov = np.broadcast_to(cov, (space.size, space.size)).astype(np.float64)
    sd = np.sqrt(np.diag(cov))
    d = chains.reshape(chains.shape[:2] + (space.size,)) - mean
    whitened = np.linalg.solve(np.linalg.cholesky(cov), d[..., None])[..., 0]
    observables = {
        "mean of (x - mu) / sigma": ((d / sd).mean(axis=-1), 0.0),
        "mean of (x - mu)^2 / sigma^2": (((d / sd) ** 2).mean(axis=-1), 1.0),
        "Mahalanobis distance (x - mu)^T C^-1 (x - mu) / size": ((whitened**2).mean(axis=-1), 1.0),
    }
    for label, (values, exact) in observables.items():
        st = _statistics(jnp.asarray(values))
        m, err = float(st.mean), float(st.error_of_mean)
        _check(abs(m - exact) <= z * err + 1e-12, sampler,
               f"{label} = {m:.5f} +/- {err:.5f} over {values.size} samples, exact {exact} (more than {z} error bars off)")
