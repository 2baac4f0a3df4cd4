"""Metropolis-Hastings samplers for spin-1/2 configurations."""

from __future__ import annotations

import abc
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import nqs_core

from ._space import check_sizes, check_spin_space
from ._lattice import _as_int
from nqs_core import AbstractLattice


class MetropolisState(eqx.Module):
    """State of a Metropolis sampler, carried between `sample` calls.

    **Fields:**

    - `x`: current configurations of the chains, `(n_chains, n_sites)`.
    - `log_prob`: cached `log p(x)` of each chain, `(n_chains,)`.
    - `key`: PRNG key, a legacy `uint32` array of shape `(2,)` (saves to npz).
    - `n_accepted`: accepted moves per chain since `init`, `(n_chains,)` int64.
    - `n_steps`: proposals per chain since `init`, int64 scalar.
    """

    x: Array
    log_prob: Array
    key: Array
    n_accepted: Array
    n_steps: Array

    @property
    def acceptance(self) -> Array:
        """Fraction of moves accepted since `init`, over all chains."""
        return jnp.sum(self.n_accepted) / jnp.maximum(self.n_steps * self.n_accepted.shape[0], 1)


_legacy_key = nqs_core.legacy_key


_count = _as_int


class _AbstractMetropolis(nqs_core.AbstractSampler):
    """Metropolis-Hastings with symmetric proposals, vectorised over chains
    (private: the public classes are final).

    One call to `sample` recomputes the cached log-probabilities (the
    distribution has usually changed since the last call), runs
    `n_discard_per_chain` sweeps that are thrown away, then
    `n_samples_per_chain` sweeps, storing the configuration after each. A sweep
    is `sweep_size` proposals per chain. All chains move in lockstep: one
    vectorised evaluation of `log_prob` per proposal. The first call on fresh
    chains (from `init`, not from a checkpoint) first runs `n_thermalize`
    sweeps more, so that many chains with few samples each do not start from
    the random initial states.
    """

    space: eqx.AbstractVar[nqs_core.AbstractDiscreteSpace]
    n_samples: eqx.AbstractVar[int]
    n_chains: eqx.AbstractVar[int]
    n_discard_per_chain: eqx.AbstractVar[int]
    sweep_size: eqx.AbstractVar[int]
    n_thermalize: eqx.AbstractVar[int]

    @abc.abstractmethod
    def _moves(self, key: PRNGKeyArray, shape: tuple[int, ...]):
        """Random parameters of `shape` proposals (a pytree of arrays with
        leading dimensions `shape`)."""

    @abc.abstractmethod
    def _apply(self, x: Array, move) -> Array:
        """Apply one move per chain: `x` is `(n_chains, n_sites)`."""

    def init(self, distribution: nqs_core.AbstractDistribution, key: PRNGKeyArray) -> MetropolisState:
        """Random initial chains from `space.random_state` and their log-probabilities."""
        return _init(self, distribution, _legacy_key(key))

    def sample(
        self, distribution: nqs_core.AbstractDistribution, state: MetropolisState
    ) -> tuple[Array, MetropolisState, dict[str, Array]]:
        """Run the chains.

        **Returns:** `(samples, new_state, info)` with samples of shape
        `(n_chains, n_samples_per_chain, n_sites)` and `info["acceptance"]`
        the fraction of proposals accepted in this call.
        """
        return _sample(self, distribution, state)


@eqx.filter_jit
def _init(sampler, distribution, key):
    key, sub = jax.random.split(key)
    x = sampler.space.random_state(sub, sampler.n_chains)
    lp = jax.vmap(distribution.log_prob)(x)
    return MetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        n_accepted=jnp.zeros(sampler.n_chains, dtype=jnp.int64),
        n_steps=jnp.zeros((), dtype=jnp.int64),
    )


@eqx.filter_jit
def _sample(sampler, distribution, state):
    log_prob = jax.vmap(distribution.log_prob)
    x = state.x
    n_chains = x.shape[0]
    sweep = sampler.sweep_size
    n_keep = sampler.n_samples_per_chain
    n_discard = sampler.n_discard_per_chain
    lp = log_prob(x)  # parameters changed since the last call
    key, k_sweeps = jax.random.split(state.key)
    keys = jax.random.split(k_sweeps, n_discard + n_keep)
    n_th = sampler.n_thermalize
    if n_th:  # sweeps run only on fresh chains; their own keys, the others unchanged
        keys = jnp.concatenate([jax.random.split(jax.random.fold_in(k_sweeps, 1), n_th), keys])
    fresh = state.n_steps == 0
    counted = jnp.arange(n_th + n_discard + n_keep) >= n_th

    def one_sweep(carry, inputs):
        key, count = inputs

        def run(carry):
            x, lp, acc = carry
            k_move, k_u = jax.random.split(key)
            moves = sampler._moves(k_move, (sweep, n_chains))
            x, lp, n_acc = nqs_core.metropolis_sweep(log_prob, sampler._apply, x, lp, moves, k_u)
            return x, lp, acc + jnp.where(count, n_acc, 0)

        carry = run(carry) if not n_th else jax.lax.cond(count | fresh, run, lambda c: c, carry)
        return carry, carry[0]

    # one scan over all sweeps (one copy of the loop body to compile); the
    # configurations stored during the first n_thermalize + n_discard sweeps are dropped
    carry = (x, lp, jnp.zeros(n_chains, dtype=jnp.int64))
    carry, samples = jax.lax.scan(one_sweep, carry, (keys, counted))
    samples = samples[n_th + n_discard :]
    x, lp, acc = carry
    n_steps = (n_discard + n_keep) * sweep
    new_state = MetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        n_accepted=state.n_accepted + acc,
        n_steps=state.n_steps + n_steps,
    )
    acceptance = jnp.sum(acc).astype(lp.dtype) / (n_chains * n_steps)
    return jnp.swapaxes(samples, 0, 1), new_state, {"acceptance": acceptance}


def _sampler_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize):
    n_samples = _count("n_samples", n_samples, 1)
    n_chains = _count("n_chains", n_chains, 1)
    per_chain = -(-n_samples // n_chains)
    if n_discard_per_chain is None:
        n_discard_per_chain = per_chain // 10
    n_discard_per_chain = _count("n_discard_per_chain", n_discard_per_chain, 0)
    sweep_size = space.size if sweep_size is None else _count("sweep_size", sweep_size, 1)
    n_thermalize = _count("n_thermalize", n_thermalize, 0)
    return n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize


class MetropolisLocal(_AbstractMetropolis):
    """Metropolis sampler with single-spin-flip proposals.

    Each proposal flips one uniformly chosen spin of each chain. It changes
    the magnetisation, so a space with fixed `total_sz` is rejected (use
    `MetropolisExchange`).

    **Arguments:**

    - `space`: a spin-1/2 space without magnetisation constraint.
    - `n_samples`: total samples per call, over all chains (default 1024);
      each chain gives `ceil(n_samples / n_chains)`.
    - `n_chains`: number of parallel chains (default 16).
    - `n_discard_per_chain`: sweeps thrown away at the start of each call
      (default: `n_samples_per_chain // 10`).
    - `sweep_size`: proposals per chain between stored samples (default:
      `n_sites`).
    - `n_thermalize`: sweeps run once on fresh chains, before the first call's
      samples (default 20; chains restored from a checkpoint are not fresh).
    """

    space: nqs_core.AbstractDiscreteSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)

    def __init__(
        self,
        space,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        n_thermalize: int = 20,
    ):
        if getattr(space, "total_sz", None) is not None:
            raise ValueError(
                f"MetropolisLocal flips single spins, which changes S^z, so it cannot sample "
                f"a space with fixed total_sz={space.total_sz:g}; use MetropolisExchange"
            )
        check_spin_space("MetropolisLocal", space)
        self.space = space
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = _sampler_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)

    def _moves(self, key, shape):
        return jax.random.randint(key, shape, 0, self.space.size, dtype=jnp.int32)

    def _apply(self, x, site):
        flip = jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :] == site[:, None]
        return jnp.where(flip, -x, x)


class MetropolisExchange(_AbstractMetropolis):
    """Metropolis sampler that exchanges the spins of two sites; conserves S^z.

    Each proposal picks, per chain, a uniformly random nearest-neighbour bond
    of `lattice` (or, without a lattice, a uniformly random pair of distinct
    sites) and swaps its two spins. Chains stay in the magnetisation sector
    they start in, so use it with a space of fixed `total_sz` (on an
    unconstrained space each chain keeps the random magnetisation of its
    initial state).

    **Arguments:**

    - `space`: a spin-1/2 space, usually with fixed `total_sz`.
    - `lattice`: lattice whose bonds are proposed (default `None`: all pairs).
    - `n_samples`, `n_chains`, `n_discard_per_chain`, `sweep_size`,
      `n_thermalize`: as for `MetropolisLocal`.
    """

    space: nqs_core.AbstractDiscreteSpace
    pairs: Array
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)

    def __init__(
        self,
        space,
        lattice: AbstractLattice | None = None,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        n_thermalize: int = 20,
    ):
        check_spin_space("MetropolisExchange", space)
        if lattice is None:
            pairs = list(itertools.combinations(range(space.size), 2))
        else:
            check_sizes(space.size, lattice)
            pairs = list(lattice.edges(1))
        if not pairs:
            raise ValueError("MetropolisExchange needs at least one pair of sites to exchange")
        self.space = space
        self.pairs = jnp.asarray(np.asarray(pairs, dtype=np.int32))
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = _sampler_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)

    def _moves(self, key, shape):
        b = jax.random.randint(key, shape, 0, self.pairs.shape[0], dtype=jnp.int32)
        return self.pairs[b]

    def _apply(self, x, pair):
        i, j = pair[:, 0:1], pair[:, 1:2]
        xi = jnp.take_along_axis(x, i, axis=1)
        xj = jnp.take_along_axis(x, j, axis=1)
        sites = jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :]
        return jnp.where(sites == i, xj, jnp.where(sites == j, xi, x))
