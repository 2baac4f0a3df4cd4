"""Behavioural contract suites for components: one call checks that a sampler,
an ansatz, a system or a preconditioner keeps the contract of its protocol.

nqs runs these suites over every registered component
(`tests/core/test_contract_suites.py`); a plugin author runs them over their
own in one line, e.g.

```python
from nqs_core import testing

def test_my_ansatz_keeps_the_contract():
    testing.check_ansatz(MyAnsatz(space, key=jax.random.PRNGKey(0)), space, jax.random.PRNGKey(1))
```

Each `check_*` function raises `AssertionError` with a message naming the
component and the broken rule, and returns nothing when the contract holds.
The checks use small systems: a discrete space up to `max_states`
configurations is enumerated (exact probabilities, exact diagonalisation).

- `check_sampler`: sample shapes, samples in the space, same key gives the
  same samples, statistics of a known distribution (total-variation distance
  to the exact probabilities on a discrete space; exact moments of a Gaussian
  on a continuous one).
- `check_ansatz`: `log psi` is a finite scalar of the declared dtype, equal
  under `jit`, `vmap` and chunking; parameters are a pytree of arrays;
  log-derivatives have one column per real parameter; the capabilities
  (`AbstractConnectedAnsatz`, `AbstractDirectSamplingAnsatz`,
  `AbstractAutoregressiveAnsatz`) agree with it.
- `check_system`: a discrete Hamiltonian is Hermitian and keeps the space, and
  the local energy of its exact ground state is constant (`E0`); a continuum
  Hamiltonian gives a known eigenstate its eigenvalue; an action is real with
  a gradient equal to autodiff.
- `check_preconditioner`: the direction is shaped like the parameters and is a
  descent direction; the state after a step has the shape of the initial one
  and survives a checkpoint round trip.
- `registered`: `(name, factory)` pairs over a registry kind, for
  `pytest.mark.parametrize`, refusing registered names without a factory or a
  reason.

Helpers with exactly known distributions: `TableAnsatz` (a wave function
given by its values on every configuration) and `Gaussian` (a normal
density on a continuous space).
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ._ansatz import AbstractAnsatz, AbstractAutoregressiveAnsatz, AbstractConnectedAnsatz, AbstractDirectSamplingAnsatz
from ._estimator import AbstractEstimator, EnergyEstimator, log_derivatives
from ._io import load_checkpoint, save_checkpoint
from ._preconditioner import AbstractPreconditioner, StepContext
from ._registry import Registry, get_registry
from ._sampler import AbstractDistribution, AbstractSampler, BoltzmannDistribution
from ._samples import Samples
from ._space import AbstractDiscreteSpace, AbstractSpace
from ._stats import statistics
from ._system import AbstractAction, AbstractDiscreteHamiltonian, AbstractHamiltonian, AbstractSystem
from ._tree import log_psi_batch, n_real_parameters, parameters, real_ravel

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


# -- ansatze ---------------------------------------------------------------------


@eqx.filter_jit
def _evaluations(ansatz, params, static, x, states):
    """The values `check_ansatz` compares, in one compiled function (one
    compilation per ansatz): `log psi` of each row on its own (recombined
    parameters) and batched, and the capabilities."""
    n = x.shape[0]
    # the configurations and (for an enumerable space) every state, batched in one vmap
    batch = x if states is None else jnp.concatenate([x, states.astype(x.dtype)])
    batched = jax.vmap(ansatz)(batch)
    out = {
        # chunks of one: `lax.map` over single configurations
        "jit": log_psi_batch(eqx.combine(params, static), x, chunk_size=1),
        "jit(vmap)": batched[:n],
    }
    if isinstance(ansatz, AbstractConnectedAnsatz):
        lx, lxp = jax.lax.map(lambda xi: ansatz.log_psi_connected(xi, x), x)
        out["log_psi_connected(x, xps)[0]"] = lx
        out["log_psi_connected"] = lxp
    if isinstance(ansatz, AbstractAutoregressiveAnsatz):
        out["conditionals"] = jax.lax.map(ansatz.conditionals, x)
    if isinstance(ansatz, AbstractDirectSamplingAnsatz):
        out["sample"] = ansatz.sample(jax.random.PRNGKey(0), 8)
        if states is not None:
            out["log psi on the space"] = batched[n:]
    return out


def check_ansatz(
    ansatz: AbstractAnsatz,
    space: AbstractSpace,
    key: PRNGKeyArray,
    *,
    dtype=None,
    n: int = 4,
    rtol: float = 1e-10,
    eager: bool = True,
    max_states: int = MAX_STATES,
) -> None:
    """Check an ansatz against the `AbstractAnsatz` contract on `n` random
    configurations of `space`.

    **Arguments:**

    - `ansatz`: the ansatz under test, with its (initial) parameters.
    - `space`: the configuration space it is defined on.
    - `key`: PRNG key for the random configurations.
    - `dtype`: the declared dtype of `log psi` (e.g. `"complex128"`), if any.
    - `n`: number of random configurations.
    - `rtol`: tolerance relative to `1 + max |log psi|`.
    - `eager`: also compare with the unjitted (op-by-op) value of one configuration.
    - `max_states`: enumerate a discrete space up to this size (normalisation of
      an autoregressive ansatz).

    **Checks:**

    - `log psi(x)` is a finite scalar of an inexact dtype (`dtype` if given;
      complex whenever a parameter is complex);
    - one configuration at a time under `jit` (`log_psi_batch` in chunks of
      one, on the parameters recombined with the static part) equals the
      unjitted value (`eager=True`; op-by-op evaluation compiles every
      operation, a few seconds for a transformer) and `jit(vmap)` (to `rtol`
      relative to `1 + max |log psi|`);
    - the parameters (`nqs_core.parameters`: the inexact arrays, split with
      `equinox.partition`) are a non-empty pytree of JAX arrays;
    - `log_derivatives` has shape `(n, n_real_parameters)` and is complex
      exactly when `log psi` is (traced through autodiff with
      `jax.eval_shape`, not compiled: the reverse pass is the costliest part
      to compile);
    - capabilities: `log_psi_connected` of an `AbstractConnectedAnsatz` equals
      `(log psi(x), vmap(log psi)(xps))`; an `AbstractAutoregressiveAnsatz` has
      conditionals normalised over the local states; an
      `AbstractDirectSamplingAnsatz` (autoregressive ones included) is
      normalised over an enumerable space, and `sample` gives configurations
      of the space.

    **Raises:** `AssertionError` naming the broken rule.
    """
    x = space.random_state(key, n)
    unjitted = ansatz(x[0]) if eager else jax.eval_shape(ansatz, x[0])
    _check(jnp.shape(unjitted) == (), ansatz, f"log psi(x) must be a scalar, got shape {jnp.shape(unjitted)}")
    _check(jnp.issubdtype(unjitted.dtype, jnp.inexact), ansatz, f"log psi is {unjitted.dtype}, expected a float or complex dtype")
    params, static = parameters(ansatz)
    enumeration = None
    if isinstance(space, AbstractDiscreteSpace) and int(space.n_states) <= max_states:
        enumeration = _Enumeration(space)
    out = _evaluations(ansatz, params, static, x, None if enumeration is None else jnp.asarray(enumeration.states))
    ref = out["jit"]
    _check(jnp.issubdtype(ref.dtype, jnp.inexact), ansatz, f"log psi is {ref.dtype}, expected a float or complex dtype")
    if dtype is not None:
        _check(ref.dtype == jnp.dtype(dtype), ansatz, f"log psi is {ref.dtype}, declared {jnp.dtype(dtype)}")
    leaves = jax.tree.leaves(params)
    _check(leaves, ansatz, "has no parameters (no inexact JAX arrays among its fields)")
    for leaf in leaves:
        _check(isinstance(leaf, jax.Array), ansatz,
               f"parameter of type {type(leaf).__name__} {np.shape(leaf)}: parameters must be JAX arrays "
               "(a NumPy array is a constant that jit bakes in; convert with jnp.asarray)")
    if any(jnp.iscomplexobj(leaf) for leaf in leaves):
        _check(jnp.iscomplexobj(ref), ansatz, f"has complex parameters but a real log psi ({ref.dtype}): the phase is lost")
    _check(np.all(np.isfinite(np.asarray(ref))), ansatz, lambda: f"log psi is not finite on random configurations: {np.asarray(ref)}")

    ref_np = np.asarray(ref)

    def close(label, values):
        values = np.asarray(values)
        _check(values.shape == ref_np.shape and values.dtype == ref_np.dtype, ansatz,
               f"{label} gives {values.dtype} {values.shape}, one at a time {ref_np.dtype} {ref_np.shape}")
        scale = 1.0 + float(np.max(np.abs(ref_np)))
        err = float(np.max(np.abs(values - ref_np)))
        _check(err <= rtol * scale, ansatz, f"{label} differs from one-at-a-time jit by {err:.3g} (> {rtol:g} x {scale:.3g})")

    if eager:
        close("the unjitted log psi", np.concatenate([np.asarray(unjitted)[None], ref_np[1:]]))
    close("jit(vmap)", out["jit(vmap)"])
    o = jax.eval_shape(log_derivatives, ansatz, x)
    p = n_real_parameters(ansatz)
    _check(o.shape == (n, p), ansatz, f"log_derivatives have shape {o.shape}, expected (n, n_real_parameters) = {(n, p)}")
    _check(jnp.iscomplexobj(o) == jnp.iscomplexobj(ref), ansatz, f"log_derivatives are {o.dtype} but log psi is {ref.dtype}")

    if isinstance(ansatz, AbstractConnectedAnsatz):
        close("log_psi_connected(x, xps)[0]", out["log_psi_connected(x, xps)[0]"])
        for lxp in np.asarray(out["log_psi_connected"]):
            close("log_psi_connected(x, xps)[1]", lxp)
    if isinstance(ansatz, AbstractDirectSamplingAnsatz):
        _check_direct_sampling(ansatz, space, out, enumeration)


def _check_direct_sampling(ansatz, space, out, enumeration):
    for c in np.asarray(out["conditionals"]) if "conditionals" in out else ():
        _check(c.ndim == 2 and c.shape[0] == space.size, ansatz,
               f"conditionals have shape {c.shape}, expected (n_sites, n_local_states)")
        # entries of -inf (a local state ruled out by a constraint) are allowed
        c = np.asarray(c)
        top = np.max(c, axis=-1, keepdims=True)
        norm = top[..., 0] + np.log(np.sum(np.exp(c - top), axis=-1))
        _check(np.all(np.abs(norm) <= 1e-9), ansatz, lambda: f"conditionals are not normalised: logsumexp = {norm}")
    samples = out["sample"]
    _check(samples.shape == (8,) + tuple(space.shape), ansatz, f"sample(key, 8) has shape {samples.shape}")
    if isinstance(space, AbstractDiscreteSpace):
        _check(bool(np.all(np.isin(np.asarray(samples), np.asarray(space.local_states)))), ansatz,
               "sample gives values that are not local states")
        if enumeration is not None:
            log_psi = out["log psi on the space"]
            total = float(np.sum(np.exp(2.0 * np.real(np.asarray(log_psi)))))
            _check(abs(total - 1.0) <= 1e-9, ansatz, f"sum_x |psi(x)|^2 = {total!r} over the space, expected 1 (normalised)")
            _, found = enumeration.index(samples)
            _check(found.all(), ansatz, "sample gives configurations outside the space (a constraint is broken)")


# -- systems ---------------------------------------------------------------------


@eqx.filter_jit
def _connected(system, xs):
    return jax.vmap(system.connected)(xs)


def dense_matrix(system: AbstractDiscreteHamiltonian, max_states: int = MAX_STATES) -> np.ndarray:
    """The Hamiltonian as a dense matrix over `system.space.all_states()`, from
    `connected`. Asserts that every connected configuration with a non-zero
    element is a configuration of the space."""
    space = system.space
    n = int(space.n_states)
    if n > max_states:
        raise ValueError(f"dense_matrix: the space has {n} states, more than max_states = {max_states}; use a smaller lattice")
    enumeration = _Enumeration(space)
    xps, mels = _connected(system, jnp.asarray(enumeration.states))
    k = system.max_conn_size
    _check(xps.shape == (n, k) + tuple(space.shape) and mels.shape == (n, k), system,
           f"connected gives {xps.shape} and {mels.shape}, expected (max_conn_size, *shape) and (max_conn_size,) per row, "
           f"max_conn_size = {k}")
    column, found = enumeration.index(np.asarray(xps).reshape((n * k,) + tuple(space.shape)))
    column = column.reshape(n, k)
    mels = np.asarray(mels)
    outside = (mels != 0) & ~found.reshape(n, k)
    _check(not outside.any(), system,
           f"{int(outside.sum())} non-zero matrix elements lead out of the space (a constraint is not conserved)")
    h = np.zeros((n, n), dtype=np.result_type(mels.dtype, np.float64))
    np.add.at(h, (np.repeat(np.arange(n), k), column.reshape(-1)), np.where(mels != 0, mels, 0).reshape(-1))
    return h


@eqx.filter_jit
def _local_energies(system, log_psi, xs):
    """Local energies three ways: compacted / batched, with `log_psi_xs`, padded one at a time."""
    return (
        system.local_energies(log_psi, xs),
        system.local_energies(log_psi, xs, jax.vmap(log_psi)(xs)),
        jax.vmap(lambda x: system.local_energy(log_psi, x))(xs),
    )


def check_system(
    system: AbstractSystem,
    key: PRNGKeyArray | None = None,
    *,
    eigenstate: tuple[Callable[[Array], Any], float] | None = None,
    n: int = 4,
    atol: float = 1e-10,
    max_states: int = MAX_STATES,
) -> None:
    """Check a system against its protocol.

    **Arguments:**

    - `system`: a Hamiltonian or an action.
    - `key`: PRNG key for random configurations (continuum, actions).
    - `eigenstate`: `(log_psi, energy)`, a known eigenstate, for Hamiltonians that
      cannot be diagonalised here; for a discrete one it replaces the exact ground state.
    - `n`: number of random configurations.
    - `atol`: tolerance on local energies, relative to `max(1, |E|)`.
    - `max_states`: largest discrete space that is diagonalised.

    **Checks:**

    - `AbstractDiscreteHamiltonian` on an enumerable space: `connected` has the
      padded shapes, never leaves the space; the dense matrix is Hermitian;
      its exact ground state (by dense diagonalisation), wrapped as a
      `TableAnsatz`, has the local energy `E0` on every configuration where
      it does not vanish, through `local_energies` (compacted, with and without
      `log_psi_xs`) and `local_energy` (padded), to `atol * max(1, |E0|)`.
    - `AbstractContinuumHamiltonian` (or any other Hamiltonian): needs a known
      `eigenstate = (log_psi, energy)`; the local energy equals `energy` on `n`
      random configurations.
    - `AbstractAction`: `S[phi]` is a finite real scalar, `grad` equals
      `jax.grad` of the action, and `jit` does not change either.

    **Raises:** `AssertionError` naming the broken rule; `ValueError` when the
    system cannot be checked as given (space too large, no eigenstate).
    """
    key = jax.random.PRNGKey(0) if key is None else key
    if isinstance(system, AbstractAction):
        _check_action(system, key, n)
        return
    if not isinstance(system, AbstractHamiltonian):
        raise TypeError(f"check_system checks a Hamiltonian or an action, got {_name(system)}")
    if isinstance(system, AbstractDiscreteHamiltonian) and eigenstate is None:
        h = dense_matrix(system, max_states)
        scale = max(1.0, float(np.max(np.abs(h))))
        asym = float(np.max(np.abs(h - h.conj().T)))
        _check(asym <= 1e-12 * scale, system, f"the matrix is not Hermitian: max |H - H^dagger| = {asym:.3g}")
        energies, vectors = np.linalg.eigh(h)
        e0, v0 = float(energies[0]), vectors[:, 0]
        v0 = v0 / v0[np.argmax(np.abs(v0))]  # largest entry real and positive
        with np.errstate(divide="ignore"):
            log_v = np.log(np.abs(v0)) + (1j * np.angle(v0) if np.iscomplexobj(v0) or np.any(v0 < 0) else 0.0)
        table = TableAnsatz(system.space, jnp.asarray(log_v))
        states = jnp.asarray(system.space.all_states())
        support = np.abs(v0) >= 1e-4
        local = dict(zip(("local_energies", "local_energies(log_psi_xs=...)", "local_energy"),
                         _local_energies(system, table, states)))
        for label, values in local.items():
            err = float(np.max(np.abs(np.asarray(values)[support] - e0)))
            _check(err <= atol * max(1.0, abs(e0)), system,
                   f"{label} of the exact ground state (E0 = {e0:.12g}) are not constant: max |E_loc - E0| = {err:.3g}")
        return
    if eigenstate is None:
        raise ValueError(
            f"check_system: {_name(system)} is not a discrete Hamiltonian on an enumerable space; pass a known "
            "eigenstate=(log_psi, energy)"
        )
    log_psi, energy = eigenstate
    x = system.space.random_state(key, n)
    values, _, single = _local_energies(system, log_psi, x)
    for label, v in (("local_energies", np.asarray(values)), ("local_energy", np.asarray(single))):
        _check(v.shape == (n,), system, f"{label} of {n} configurations has shape {v.shape}")
        err = float(np.max(np.abs(v - energy)))
        _check(err <= atol * max(1.0, abs(energy)), system,
               f"{label} of the eigenstate (energy {energy}) are not constant: max |E_loc - E| = {err:.3g}")


def _check_action(action: AbstractAction, key, n):
    phi = action.space.random_state(key, n)
    for i in range(n):
        s = action(phi[i])
        _check(jnp.shape(s) == () and jnp.isrealobj(s), action, f"S[phi] must be a real scalar, got {jnp.asarray(s).dtype} {jnp.shape(s)}")
        _check(bool(jnp.isfinite(s)), action, "S[phi] is not finite on a random configuration")
        g = action.grad(phi[i])
        auto = jax.grad(lambda f: action(f))(phi[i])
        _check(g.shape == phi[i].shape, action, f"grad has shape {g.shape}, a configuration {phi[i].shape}")
        err = float(jnp.max(jnp.abs(g - auto)))
        _check(err <= 1e-10 * (1.0 + float(jnp.max(jnp.abs(auto)))), action, f"grad differs from jax.grad of the action by {err:.3g}")
        sj, gj = eqx.filter_jit(lambda a, f: (a(f), a.grad(f)))(action, phi[i])
        _check(abs(float(sj) - float(s)) <= 1e-10 * (1.0 + abs(float(s))), action, "S[phi] changes under jit")
        _check(float(jnp.max(jnp.abs(gj - g))) <= 1e-10 * (1.0 + float(jnp.max(jnp.abs(g)))), action, "grad changes under jit")
    d = BoltzmannDistribution(action)
    _check(abs(float(d.log_prob(phi[0])) + float(action(phi[0]))) <= 1e-12 * (1 + abs(float(action(phi[0])))), action,
           "BoltzmannDistribution(action).log_prob != -S")


# -- preconditioners -------------------------------------------------------------


@eqx.filter_jit
def _context(estimator, system, ansatz, samples):
    return StepContext(system, ansatz, samples, estimator(ansatz, system, samples), estimator)


@eqx.filter_jit
def _gradient(context):
    return context.gradient()


@eqx.filter_jit
def _precondition(preconditioner, context, state):
    return preconditioner(context, state)


def _same_template(a, b) -> str | None:
    """`None` if the pytrees `a` and `b` have the same structure, leaf shapes and
    dtypes; else what differs."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return f"structure {jax.tree.structure(a)} != {jax.tree.structure(b)}"
    for i, (u, v) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b))):
        if jnp.shape(u) != jnp.shape(v) or jnp.result_type(u) != jnp.result_type(v):
            return f"leaf {i}: {jnp.result_type(u)} {jnp.shape(u)} != {jnp.result_type(v)} {jnp.shape(v)}"
    return None


def check_preconditioner(
    preconditioner: AbstractPreconditioner,
    system: AbstractHamiltonian,
    ansatz: AbstractAnsatz,
    samples: Array,
    *,
    estimator: AbstractEstimator | None = None,
) -> None:
    """Check a preconditioner against the `AbstractPreconditioner` contract at
    one optimisation step on `samples` `(n_chains, n_per_chain, *shape)`.

    - the direction has the structure, shapes and dtypes of the parameters,
      is finite, and is a descent direction: `<grad E, direction> > 0` over
      the real parameters (the optax optimizer moves *against* the direction,
      so a positive overlap lowers the energy);
    - `info` is a dict;
    - resume: the state after the step has the structure, shapes and dtypes of
      `init`'s (the checkpoint template); it survives `save_checkpoint` /
      `load_checkpoint` with the initial state as template unchanged, and the
      next step from the loaded state equals the next step from the original.

    **Arguments:** the preconditioner, the `system` whose energy is minimised,
    the `ansatz` at the current parameters, the `samples` of this step and the
    `estimator` (default `EnergyEstimator()`).

    **Raises:** `AssertionError` naming the broken rule.
    """
    estimator = EnergyEstimator() if estimator is None else estimator
    state0 = preconditioner.init(ansatz, samples)
    context = _context(estimator, system, ansatz, samples)
    direction, state1, info = _precondition(preconditioner, context, state0)
    params, _ = parameters(ansatz)
    diff = _same_template(direction, params)
    _check(diff is None, preconditioner, f"the direction is not shaped like the parameters: {diff}")
    d, _ = real_ravel(direction)
    _check(bool(jnp.all(jnp.isfinite(d))), preconditioner, "the direction is not finite")
    g, _ = real_ravel(_gradient(context))
    overlap = float(jnp.dot(g, d))
    _check(overlap > 0, preconditioner,
           f"not a descent direction: <grad E, direction> = {overlap:.4g} <= 0 (the optimizer moves against the direction)")
    _check(isinstance(info, dict), preconditioner, f"info must be a dict, got {type(info).__name__}")
    diff = _same_template(state1, state0)
    _check(diff is None, preconditioner,
           f"the state after a step differs from init's, so a checkpoint does not fit its template: {diff}")
    with tempfile.TemporaryDirectory() as tmp:
        # in a tuple: load_checkpoint compares a `step` field of the saved object with the meta's
        save_checkpoint(tmp, (state1,), {"step": 0})
        (loaded,), _ = load_checkpoint(tmp, (state0,))
    for u, v in zip(jax.tree.leaves(state1), jax.tree.leaves(loaded)):
        _check(np.array_equal(np.asarray(u), np.asarray(v)), preconditioner, "the state changes in a checkpoint round trip")
    again, _, _ = _precondition(preconditioner, context, state1)
    resumed, _, _ = _precondition(preconditioner, context, loaded)
    for u, v in zip(jax.tree.leaves(again), jax.tree.leaves(resumed)):
        _check(np.array_equal(np.asarray(u), np.asarray(v)), preconditioner,
               "the step after loading a checkpoint differs from the step without (the state does not hold everything)")


# -- the registry ----------------------------------------------------------------


def registered(
    kind: str,
    factories: Mapping[str, Callable[[], Any]] | None = None,
    *,
    default: Callable[[str], Any] | None = None,
    uncovered: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> list[tuple[str, Callable[[], Any]]]:
    """`(name, factory)` for every registered component of `kind`, for
    `pytest.mark.parametrize("name, factory", registered(...))`.

    Every registered name must be covered: by `factories[name]` (a
    zero-argument callable building what the test needs), else by
    `default(name)` (called lazily, e.g. building a small config with that
    name), or be listed in `uncovered` with the reason it is not checked.

    **Raises:** `ValueError` for a registered name that is not covered, an
    empty reason, or a name in `factories` / `uncovered` that is not
    registered (a stale table).
    """
    registry = get_registry() if registry is None else registry
    factories = dict(factories or {})
    uncovered = dict(uncovered or {})
    names = registry.names(kind)
    stale = sorted((set(factories) | set(uncovered)) - set(names))
    if stale:
        raise ValueError(f"registered({kind!r}): {', '.join(stale)} are not registered {kind} names; remove them from the table")
    out = []
    for name in names:
        if name in uncovered:
            if not str(uncovered[name]).strip():
                raise ValueError(f"registered({kind!r}): {name} is uncovered without a reason; give one")
            continue
        if name in factories:
            out.append((name, factories[name]))
        elif default is not None:
            out.append((name, lambda name=name: default(name)))
        else:
            raise ValueError(
                f"registered({kind!r}): {kind} {name!r} has no factory; add one (or a default), "
                "or list it in uncovered with the reason"
            )
    return out
