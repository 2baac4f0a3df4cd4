"""Random-walk Metropolis with Gaussian proposals and an adaptive width."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

import nqs_core

from ._common import as_float, as_int


class GaussianMetropolisState(eqx.Module):
    """State of a `GaussianMetropolis` sampler, carried between `sample` calls.

    **Fields:**

    - `x`: current configurations of the chains, `(n_chains, *shape)`.
    - `log_prob`: cached `log p(x)` of each chain, `(n_chains,)`.
    - `key`: PRNG key, a legacy `uint32[2]` array (saves to npz).
    - `step_size`: current proposal width (scalar, adapted during discards).
    - `n_accepted`: accepted moves per chain since `init`, `(n_chains,)` int64.
    - `n_steps`: proposals per chain since `init`, int64 scalar.
    """

    x: Array
    log_prob: Array
    key: Array
    step_size: Array
    n_accepted: Array
    n_steps: Array

    @property
    def acceptance(self) -> Array:
        """Fraction of moves accepted since `init`, over all chains."""
        return jnp.sum(self.n_accepted) / jnp.maximum(self.n_steps * self.n_accepted.shape[0], 1)


_legacy_key = nqs_core.legacy_key


class GaussianMetropolis(nqs_core.AbstractSampler):
    """Random-walk Metropolis for continuous configurations: every proposal
    moves all coordinates of a chain at once, `x' = x + step_size * N(0, 1)`.

    The width adapts on the fly to reach `target_acceptance`: after each
    discarded sweep, `log step_size += adapt_rate * (acceptance_of_sweep -
    target_acceptance)` (acceptance over all chains). While samples are stored
    the width is fixed, so the stored chain satisfies detailed balance for the
    target density. The width lives in the sampler state and carries over to
    the next call (and into checkpoints), so it keeps tracking a changing wave
    function during an optimisation.

    **Arguments:**

    - `space`: a continuous space (e.g. `Particles1D`).
    - `n_samples`: total samples per call, over all chains (default 1024);
      each chain gives `ceil(n_samples / n_chains)`.
    - `n_chains`: number of parallel chains (default 16).
    - `step_size`: initial proposal width (default 0.5).
    - `target_acceptance`: acceptance rate the width adapts to, in (0, 1)
      (default 0.5).
    - `n_discard_per_chain`: sweeps thrown away (and used for adaptation) at
      the start of each call (default: `max(n_samples_per_chain // 10, 5)`).
    - `sweep_size`: proposals per chain between stored samples (default: the
      number of coordinates, `space.size`).
    - `adapt_rate`: gain of the width adaptation (default 1.0; 0 disables it).
    """

    space: nqs_core.AbstractContinuousSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    step_size: float = eqx.field(static=True)
    target_acceptance: float = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    adapt_rate: float = eqx.field(static=True)

    def __init__(
        self,
        space: nqs_core.AbstractContinuousSpace,
        n_samples: int = 1024,
        n_chains: int = 16,
        step_size: float = 0.5,
        target_acceptance: float = 0.5,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        adapt_rate: float = 1.0,
    ):
        if not isinstance(space, nqs_core.AbstractContinuousSpace):
            raise TypeError(
                f"GaussianMetropolis needs a continuous space (AbstractContinuousSpace), got {type(space).__name__}"
            )
        self.space = space
        self.n_samples = as_int("n_samples", n_samples, 1)
        self.n_chains = as_int("n_chains", n_chains, 1)
        self.step_size = as_float("step_size", step_size, positive=True)
        self.target_acceptance = as_float("target_acceptance", target_acceptance, lo=0.0, hi=1.0)
        per_chain = -(-self.n_samples // self.n_chains)
        if n_discard_per_chain is None:
            n_discard_per_chain = max(per_chain // 10, 5)
        self.n_discard_per_chain = as_int("n_discard_per_chain", n_discard_per_chain, 0)
        self.sweep_size = space.size if sweep_size is None else as_int("sweep_size", sweep_size, 1)
        self.adapt_rate = as_float("adapt_rate", adapt_rate)
        if self.adapt_rate < 0.0:
            raise ValueError(f"adapt_rate must be >= 0, got {self.adapt_rate}")

    def init(self, distribution: nqs_core.AbstractDistribution, key: PRNGKeyArray) -> GaussianMetropolisState:
        """Random initial chains from `space.random_state`, their log-probabilities
        and the initial width."""
        return _init(self, distribution, _legacy_key(key))

    def sample(
        self, distribution: nqs_core.AbstractDistribution, state: GaussianMetropolisState
    ) -> tuple[Array, GaussianMetropolisState, dict[str, Array]]:
        """Adapt the width during `n_discard_per_chain` sweeps, then store
        `n_samples_per_chain` sweeps at fixed width.

        **Returns:** `(samples, new_state, info)`, samples of shape
        `(n_chains, n_samples_per_chain, *shape)`; `info["acceptance"]` is the
        acceptance of the stored sweeps, `info["step_size"]` the width used.
        """
        return _sample(self, distribution, state)


@eqx.filter_jit
def _init(sampler, distribution, key):
    key, sub = jax.random.split(key)
    x = sampler.space.random_state(sub, sampler.n_chains)
    lp = jax.vmap(distribution.log_prob)(x)
    return GaussianMetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        step_size=jnp.asarray(sampler.step_size, dtype=x.dtype),
        n_accepted=jnp.zeros(sampler.n_chains, dtype=jnp.int64),
        n_steps=jnp.zeros((), dtype=jnp.int64),
    )


@eqx.filter_jit
def _sample(sampler, distribution, state):
    log_prob = jax.vmap(distribution.log_prob)
    x = state.x
    n_chains = x.shape[0]
    sweep = sampler.sweep_size
    dtype = x.dtype
    lp = log_prob(x)  # the distribution has usually changed since the last call
    key, k_discard, k_keep = jax.random.split(state.key, 3)

    def one_sweep(carry, key):
        x, lp, acc, step = carry
        k_move, k_u = jax.random.split(key)
        noise = jax.random.normal(k_move, (sweep,) + x.shape, dtype=dtype)
        x, lp, n_acc = nqs_core.metropolis_sweep(log_prob, lambda x, eps: x + step * eps, x, lp, noise, k_u)
        return (x, lp, acc + n_acc, step), (x, n_acc)

    def adapt_sweep(carry, key):
        carry, (_, n_acc) = one_sweep(carry, key)
        x, lp, acc, step = carry
        rate = jnp.sum(n_acc).astype(dtype) / (n_chains * sweep)
        step = step * jnp.exp(sampler.adapt_rate * (rate - sampler.target_acceptance))
        step = jnp.clip(step, 1e-6, 1e3)
        return (x, lp, acc, step), None

    zeros = jnp.zeros(n_chains, dtype=jnp.int64)
    carry = (x, lp, zeros, state.step_size)
    if sampler.n_discard_per_chain > 0:
        carry, _ = jax.lax.scan(adapt_sweep, carry, jax.random.split(k_discard, sampler.n_discard_per_chain))
    x, lp, acc_discard, step = carry
    carry = (x, lp, zeros, step)
    carry, (samples, _) = jax.lax.scan(one_sweep, carry, jax.random.split(k_keep, sampler.n_samples_per_chain))
    x, lp, acc_keep, step = carry
    n_steps = (sampler.n_discard_per_chain + sampler.n_samples_per_chain) * sweep
    new_state = GaussianMetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        step_size=step,
        n_accepted=state.n_accepted + acc_discard + acc_keep,
        n_steps=state.n_steps + n_steps,
    )
    acceptance = jnp.sum(acc_keep).astype(dtype) / (n_chains * sampler.n_samples_per_chain * sweep)
    return jnp.swapaxes(samples, 0, 1), new_state, {"acceptance": acceptance, "step_size": step}
