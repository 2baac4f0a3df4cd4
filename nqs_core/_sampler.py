"""Target distributions and samplers."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, Scalar

from ._ansatz import AbstractAnsatz, AbstractDirectSamplingAnsatz
from ._samples import Samples
from ._space import AbstractDiscreteSpace, AbstractSpace
from ._system import AbstractAction
from ._tree import batch_apply
from ._validate import check_chains, check_int, check_memory


class AbstractDistribution(eqx.Module):
    """An unnormalised probability density on configurations."""

    @abc.abstractmethod
    def log_prob(self, x: Array) -> Scalar:
        """Unnormalised `log p(x)` of one configuration (real)."""
        raise NotImplementedError


class BornDistribution(AbstractDistribution):
    """`p(x) = |psi(x)|^2` of an ansatz: `log p = 2 Re log psi`.

    Samplers that need the ansatz itself (`DirectSampler`) match this type
    and read `ansatz`.
    """

    ansatz: AbstractAnsatz

    def log_prob(self, x):
        return 2.0 * jnp.real(self.ansatz(x))


class BoltzmannDistribution(AbstractDistribution):
    """`p(phi) = exp(-S[phi])` of a classical action.

    Samplers that need the action itself (its force or local terms) match
    this type and read `action`.
    """

    action: AbstractAction

    def log_prob(self, x):
        return -self.action(x)


class AbstractSampler(eqx.Module):
    """Draws configurations from a distribution; state is carried explicitly.

    `sample` returns samples shaped `(n_chains, n_samples_per_chain, *shape)`
    so that statistics can compare chains (R-hat), the new state, and a dict of
    scalar diagnostics (at least `"acceptance"` where it has a meaning).

    The samples are a bare array when every sample counts equally (draws from
    the distribution: Metropolis, direct and exact sampling), or
    `nqs_core.Samples` with normalised weights (`exact=True` for a sum over
    every configuration of the support, as the `full_sum` sampler; `False`
    for self-normalised importance sampling). Estimators, `nqs_core.expect`
    and `nqs_core.measure` honour the weights, so a weighted sampler needs
    nothing else from the core.

    **Class attribute:** `default_estimator`, the registry name of the
    estimator a config uses when it has no `[estimator]` table (default
    `"energy"`, which honours weights; the `full_sum` sampler names its
    look-up estimator).
    """

    space: eqx.AbstractVar[AbstractSpace]
    n_samples: eqx.AbstractVar[int]
    n_chains: eqx.AbstractVar[int]
    #: the estimator a config builds for this sampler when `[estimator]` is left out
    default_estimator: ClassVar[str] = "energy"

    @abc.abstractmethod
    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> Any:
        """Initial sampler state (a pytree of arrays: chains, keys, step sizes)."""
        raise NotImplementedError

    @abc.abstractmethod
    def sample(
        self, distribution: AbstractDistribution, state: Any
    ) -> tuple[Array | Samples, Any, dict[str, Array]]:
        """`(samples, new_state, info)`; `samples` an array or `Samples` (weights)."""
        raise NotImplementedError

    @property
    def n_samples_per_chain(self) -> int:
        return -(-self.n_samples // self.n_chains)


class DirectState(eqx.Module):
    """State of a `DirectSampler` or an `ExactSampler`: only a PRNG key (legacy `uint32[2]`, saves to npz)."""

    key: Array


class DirectSampler(AbstractSampler):
    """Exact, independent samples from a normalised ansatz (no Markov chain).

    Works with any ansatz implementing `AbstractDirectSamplingAnsatz`
    (autoregressive models and their symmetrised mixtures): it calls
    `ansatz.sample(key, n)`, which for an autoregressive model draws each site
    from its normalised conditional given the previous ones. Samples are independent, so the
    autocorrelation time is 1 and nothing is discarded; the "chains" are only
    groups used for the R-hat diagnostic.

    **Arguments:**

    - `space`: the configuration space (for shape checks).
    - `n_samples`: samples per call (default 1024).
    - `n_chains`: groups the samples are split into (default 16).
    """

    space: AbstractSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)

    def __init__(self, space: AbstractSpace, n_samples: int = 1024, n_chains: int = 16):
        for name, v in (("n_samples", n_samples), ("n_chains", n_chains)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        check_chains(n_samples, n_chains)
        self.space = space
        self.n_samples = n_samples
        self.n_chains = n_chains

    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> DirectState:
        key = legacy_key(key)
        _ansatz_of(distribution)  # fail early with a clear message
        return DirectState(key=key)

    def sample(self, distribution: AbstractDistribution, state: DirectState):
        ansatz = _ansatz_of(distribution)
        return _direct_sample(self, ansatz, state)


def _ansatz_of(distribution):
    if not isinstance(distribution, BornDistribution):
        raise TypeError(f"DirectSampler samples a BornDistribution of an ansatz, got {type(distribution).__name__}")
    if not isinstance(distribution.ansatz, AbstractDirectSamplingAnsatz):
        raise TypeError(
            "DirectSampler needs a normalised ansatz with exact samples (autoregressive; one implementing "
            f"AbstractDirectSamplingAnsatz); got {type(distribution.ansatz).__name__}. "
            "Use a Metropolis sampler for this ansatz."
        )
    return distribution.ansatz


@eqx.filter_jit
def _direct_sample(sampler, ansatz, state):
    key, sub = jax.random.split(state.key)
    per = sampler.n_samples_per_chain
    x = ansatz.sample(sub, sampler.n_chains * per)
    x = x.reshape((sampler.n_chains, per) + x.shape[1:])
    return x, DirectState(key=key), {"acceptance": jnp.ones((), dtype=jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)}


class ExactSampler(AbstractSampler):
    """Independent samples from any distribution on a small discrete space, by
    enumerating every configuration (no Markov chain).

    Each call evaluates `log p` on all `space.n_states` configurations (in
    chunks of `chunk_size`) and draws `n_samples` of them i.i.d. by inverse
    transform sampling: one cumulative sum of the normalised weights, then a
    sorted search (`jnp.searchsorted`) of one uniform number per sample, so
    a call costs `O(n_states + n_samples log n_states)` instead of one random
    number per state per sample. There is no autocorrelation, no thermalisation
    and no bias from chains that have not mixed, at the price of one
    evaluation per configuration of the space per step: for 4x4 spins at
    `S^z = 0` (12870 states) this is cheaper than the local energies of 1024
    samples. The "chains" are only groups for the R-hat diagnostic.

    **Arguments:**

    - `space`: a discrete space that can enumerate its states (`all_states`).
    - `n_samples`: samples per call (default 1024).
    - `n_chains`: groups the samples are split into (default 16).
    - `chunk_size`: evaluate `log p` on at most this many states at once
      (`None`: all together).
    - `max_states`: refuse spaces with more states than this (default 2^20),
      with an error naming the alternative, instead of running out of memory.
    """

    space: AbstractDiscreteSpace
    states: Array
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        n_samples: int = 1024,
        n_chains: int = 16,
        chunk_size: int | None = None,
        max_states: int = 2**20,
    ):
        for name, v in (("n_samples", n_samples), ("n_chains", n_chains), ("max_states", max_states)):
            check_int(name, v, minimum=1)
        check_chains(n_samples, n_chains)
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        if not isinstance(space, AbstractDiscreteSpace):
            raise TypeError(
                f"ExactSampler needs a discrete space that can list its states; got {type(space).__name__}"
            )
        n = int(space.n_states)
        if n > max_states:
            raise ValueError(
                f"ExactSampler: the space has {n} states, more than max_states = {max_states}; "
                "use a Metropolis sampler (or raise max_states if the memory allows)"
            )
        # the states, their log p, weights and cumulative sum (8 bytes a number)
        check_memory(8.0 * n * (int(space.size) + 4), f"ExactSampler over {n} states")
        self.space = space
        self.states = jnp.asarray(space.all_states())
        self.n_samples = n_samples
        self.n_chains = n_chains
        self.chunk_size = chunk_size

    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> DirectState:
        return DirectState(key=legacy_key(key))

    def sample(self, distribution: AbstractDistribution, state: DirectState):
        return _exact_sample(self, distribution, state)


@eqx.filter_jit
def _exact_sample(sampler, distribution, state):
    key, sub = jax.random.split(state.key)
    per = sampler.n_samples_per_chain
    log_p = batch_apply(distribution.log_prob, sampler.states, sampler.chunk_size)
    idx = inverse_cdf_indices(sub, log_p, sampler.n_chains * per)
    x = sampler.states[idx].reshape((sampler.n_chains, per) + sampler.states.shape[1:])
    return x, DirectState(key=key), {"acceptance": jnp.ones((), dtype=log_p.dtype)}


def inverse_cdf_indices(key: PRNGKeyArray, log_p: Array, n: int) -> Array:
    """`n` i.i.d. indices `i` drawn with probability `exp(log_p[i]) / sum_j exp(log_p[j])`
    by inverse transform sampling: `u * C[-1]` (`u` uniform in `[0, 1)`) is looked up
    in the cumulative sum `C` of the weights `exp(log_p - max log_p)` by a sorted search.

    Entries with zero weight (`log_p = -inf`) are never drawn: a draw lands on the
    first index whose cumulative sum exceeds `u * C[-1]` (`side="right"`), and
    the rare `u * C[-1]` that rounds up to `C[-1]` is mapped to the last
    index of non-zero weight.

    **Returns:** int32 indices, shape `(n,)`.
    """
    w = jnp.exp(log_p - jnp.max(log_p))
    cdf = jnp.cumsum(w)
    u = jax.random.uniform(key, (n,), dtype=cdf.dtype) * cdf[-1]
    idx = jnp.searchsorted(cdf, u, side="right").astype(jnp.int32)
    last = (w.shape[0] - 1 - jnp.argmax((w > 0)[::-1])).astype(jnp.int32)
    return jnp.minimum(idx, last)


def legacy_key(key) -> Array:
    """A PRNG key as a raw `uint32[2]` array (typed keys are converted), the form
    sampler states keep so that they save to npz checkpoints."""
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return key


def metropolis_sweep(log_prob, propose, x: Array, lp: Array, moves, key: PRNGKeyArray):
    """`n` Metropolis-Hastings steps with symmetric proposals for every chain,
    vectorised over chains (one `jax.lax.scan`), shared by the plugins' samplers.

    **Arguments:**

    - `log_prob`: batched `log p`, `(n_chains, *shape) -> (n_chains,)`.
    - `propose`: `propose(x, move) -> x'` for all chains at once.
    - `x`, `lp`: current chains `(n_chains, *shape)` and their cached `log p`.
    - `moves`: pytree of proposal parameters with leading axes `(n, n_chains)`.
    - `key`: for the `n x n_chains` uniform numbers of the accept test.

    **Returns:** `(x, lp, n_accepted)` with `n_accepted` per chain (int64).
    """
    n, n_chains = jax.tree.leaves(moves)[0].shape[:2]
    log_u = jnp.log(jax.random.uniform(key, (n, n_chains), dtype=lp.dtype))
    return metropolis_steps(log_prob, propose, x, lp, moves, log_u)


def metropolis_steps(log_prob, propose, x: Array, lp: Array, moves, log_u: Array, log_ratio=None):
    """`metropolis_sweep` with the accept-test numbers drawn beforehand:
    `log_u` is `log` of `(n, n_chains)` uniform numbers in `[0, 1)`. A proposal
    is accepted when `log_u < log p(x') - log p(x)`, plus `log_ratio(x, x', move)`
    (the Hastings correction `log q(x|x') - log q(x'|x)`) when given."""
    n_chains = log_u.shape[1]

    def step(carry, inputs):
        x, lp, acc = carry
        move, lu = inputs
        xn = propose(x, move)
        lpn = log_prob(xn)
        log_a = lpn - lp if log_ratio is None else lpn - lp + log_ratio(x, xn, move).astype(lp.dtype)
        accept = lu < log_a
        mask = accept.reshape((n_chains,) + (1,) * (x.ndim - 1))
        return (jnp.where(mask, xn, x), jnp.where(accept, lpn, lp), acc + accept.astype(acc.dtype)), None

    (x, lp, acc), _ = jax.lax.scan(step, (x, lp, jnp.zeros(n_chains, jnp.int64)), (moves, log_u))
    return x, lp, acc
