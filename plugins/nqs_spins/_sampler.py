"""Metropolis-Hastings samplers for spin-1/2 configurations."""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import nqs_core

from ._space import check_sizes, check_spin_space
from nqs_core import AbstractLattice


MetropolisState = nqs_core.MetropolisState


class LocalFlipRule(nqs_core.AbstractFixedSymmetricRule):
    """Flip one uniformly chosen spin of each chain (changes the magnetisation).

    **Arguments:**

    - `n_sites`: number of spins of a configuration.
    """

    n_sites: int = eqx.field(static=True)

    def moves(self, key, shape, x, rule_state):
        return jax.random.randint(key, shape, 0, self.n_sites, dtype=jnp.int32)

    def propose(self, x, site, rule_state):
        flip = jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :] == site[:, None]
        return jnp.where(flip, -x, x)


class LocalStateRule(nqs_core.AbstractFixedSymmetricRule):
    """Set one uniformly chosen site of each chain to one of the other `d - 1`
    local states, chosen uniformly (symmetric; changes the magnetisation).
    The move of d-level sites (spin S); for `d = 2` it is the spin flip.

    **Arguments:**

    - `n_sites`: number of sites of a configuration.
    - `values`: the `d` local values, e.g. `(-2, 0, 2)` for spin 1.
    """

    n_sites: int = eqx.field(static=True)
    values: tuple[float, ...] = eqx.field(static=True)

    def moves(self, key, shape, x, rule_state):
        k1, k2 = jax.random.split(key)
        site = jax.random.randint(k1, shape, 0, self.n_sites, dtype=jnp.int32)
        step = jax.random.randint(k2, shape, 1, len(self.values), dtype=jnp.int32)
        return jnp.stack([site, step], axis=-1)

    def propose(self, x, move, rule_state):
        d = len(self.values)
        values = jnp.asarray(self.values, dtype=x.dtype)
        j = jnp.argmax(x[..., None] == values, axis=-1).astype(jnp.int32)
        new = values[(j + move[:, 1:2]) % d]
        hit = jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :] == move[:, 0:1]
        return jnp.where(hit, new, x)


class ExchangeRule(nqs_core.AbstractFixedSymmetricRule):
    """Swap the spins of a uniformly chosen pair of sites of each chain (conserves S^z).

    **Arguments:**

    - `pairs`: the pairs of sites that may be exchanged, `(n_pairs, 2)` int32.
    """

    pairs: Array

    def moves(self, key, shape, x, rule_state):
        b = jax.random.randint(key, shape, 0, self.pairs.shape[0], dtype=jnp.int32)
        return self.pairs[b]

    def propose(self, x, pair, rule_state):
        i, j = pair[:, 0:1], pair[:, 1:2]
        xi = jnp.take_along_axis(x, i, axis=1)
        xj = jnp.take_along_axis(x, j, axis=1)
        sites = jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :]
        return jnp.where(sites == i, xj, jnp.where(sites == j, xi, x))


class MetropolisLocal(nqs_core.AbstractMetropolisSampler):
    """Metropolis sampler with single-spin-flip proposals.

    Each proposal flips one uniformly chosen spin of each chain. It changes
    the magnetisation, so a space with fixed `total_sz` is rejected (use
    `MetropolisExchange`).

    **Arguments:**

    - `space`: a spin-1/2 space without magnetisation constraint.
    - `n_samples`: total samples per call, over all chains (default 1024);
      a multiple of `n_chains` (`nqs_core.check_chains`): each chain gives `n_samples / n_chains`.
    - `n_chains`: number of parallel chains (default 16).
    - `n_discard_per_chain`: sweeps thrown away at the start of each call
      (default: `n_samples_per_chain // 10`).
    - `sweep_size`: proposals per chain between stored samples (default:
      `n_sites`).
    - `n_thermalize`: sweeps run once on fresh chains, before the first call's
      samples (default 20; chains restored from a checkpoint are not fresh),
      rounded up to whole blocks of the random draws (a divisor of the
      discarded + stored sweeps per call).
    """

    space: nqs_core.AbstractDiscreteSpace
    rule: LocalFlipRule
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
        check_spin_space("MetropolisLocal", space)
        if space.constraint is not None:
            raise ValueError(
                f"MetropolisLocal flips single spins, which changes S^z, so it cannot sample "
                f"a space with fixed total_sz={space.constraint.total / 2:g}; use MetropolisExchange"
            )
        self.space = space
        self.rule = LocalFlipRule(space.size)
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = nqs_core.metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)


class MetropolisExchange(nqs_core.AbstractMetropolisSampler):
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
    rule: ExchangeRule
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
        self.rule = ExchangeRule(jnp.asarray(np.asarray(pairs, dtype=np.int32)))
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = nqs_core.metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)
