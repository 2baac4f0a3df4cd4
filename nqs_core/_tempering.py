"""Parallel tempering (replica exchange) Metropolis over any rule.

Each physical chain has `n_replicas` replicas at inverse temperatures
`1 = beta_0 > beta_1 > ... > beta_{R-1} = beta_min`; replica `r` samples
`p(x)^beta_r` (for a Born distribution `|psi(x)|^(2 beta_r)`) with the rule, and
after every `swap_every` sweeps neighbouring replicas exchange their
configurations with probability
`min(1, exp((beta_r - beta_{r+1}) (log p(x_{r+1}) - log p(x_r))))`
(Swendsen & Wang 1986, Replica Monte Carlo simulation of spin glasses, Phys. Rev.
Lett. 57, 2607; Hukushima & Nemoto 1996, Exchange Monte Carlo method and
application to spin glass simulations, J. Phys. Soc. Jpn. 65, 1604, Eq. 7).
The flattened distributions at small beta cross the barriers between the modes
of `p` that a local rule at beta = 1 cannot; swaps carry what they find down to
beta = 1, the only replica whose configurations are returned. NetKet's
`netket.experimental.sampler.MetropolisPt` is the same construction.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._metropolis import AbstractMetropolisRule, metropolis_counts
from ._mixture import rules_from_spec
from ._registry import Registry
from ._sampler import AbstractDistribution, AbstractSampler, legacy_key
from ._space import AbstractSpace
from ._validate import check_int


class TemperedDistribution(AbstractDistribution):
    """`p(x)^beta` of a distribution: `log p_beta = beta log p`.

    **Fields:** `distribution` (the target at beta = 1), `beta` (a positive scalar).
    """

    distribution: AbstractDistribution
    beta: Array

    def log_prob(self, x):
        return self.beta * self.distribution.log_prob(x)


class TemperingState(eqx.Module):
    """State of a `ParallelTempering` sampler, carried between `sample` calls
    (and saved in checkpoints).

    **Fields:**

    - `x`: configurations `(n_replicas, n_chains, *shape)`; replica 0 is at beta = 1.
    - `log_prob`: `log p(x)` at beta = 1 of every replica, `(n_replicas, n_chains)`.
    - `key`: PRNG key (legacy `uint32[2]`).
    - `rule_state`: the rule's state per temperature (leading axis `n_replicas`).
    - `n_accepted`: accepted rule proposals at beta = 1 per chain since `init`, `(n_chains,)`.
    - `n_steps`: rule steps per chain since `init` (thermalisation not counted); `0` marks fresh chains.
    - `n_swaps_accepted`, `n_swaps_proposed`: swaps of each neighbouring pair
      `(beta_r, beta_{r+1})` since `init`, summed over chains, `(n_replicas - 1,)`.
    """

    x: Array
    log_prob: Array
    key: Array
    rule_state: Any
    n_accepted: Array
    n_steps: Array
    n_swaps_accepted: Array
    n_swaps_proposed: Array

    @property
    def acceptance(self) -> Array:
        """Fraction of rule steps accepted at beta = 1 since `init`, over all chains."""
        return jnp.sum(self.n_accepted) / jnp.maximum(self.n_steps * self.n_accepted.shape[0], 1)

    @property
    def swap_acceptance(self) -> Array:
        """Accepted over proposed swaps of each neighbouring pair since `init`, `(n_replicas - 1,)`."""
        return self.n_swaps_accepted / jnp.maximum(self.n_swaps_proposed, 1)


def geometric_betas(n_replicas: int, beta_min: float) -> tuple[float, ...]:
    """`beta_r = beta_min^(r / (n_replicas - 1))`: 1, ..., beta_min, equal ratios
    between neighbours (equal swap rates when the heat capacity is constant)."""
    return tuple(float(beta_min ** (r / (n_replicas - 1))) for r in range(n_replicas))


class ParallelTempering(AbstractSampler):
    """Parallel tempering (replica exchange) Metropolis sampler over any rules.

    Every chain has `n_replicas` replicas at inverse temperatures
    `1 = beta_0 > ... > beta_min`, each a Metropolis chain of `p^beta` with the
    rule (or the mixture of `rules`); after every `swap_every` sweeps
    neighbouring replicas propose to exchange configurations, accepted with
    `min(1, exp((beta_r - beta_{r+1}) (log p(x_{r+1}) - log p(x_r))))`
    (Hukushima & Nemoto 1996, Eq. 7); each swap round tries either the even or
    the odd pairs, at random per chain. Only the beta = 1 replicas are returned,
    so the samples follow `p` exactly, while the hot replicas carry
    configurations across the barriers a local rule does not cross (modes of
    `|psi|^2` that the chains never visit). The cost is `n_replicas` times that
    of one chain.

    `info` reports `acceptance` (rule steps at beta = 1, this call, over all
    chains), `acceptance_min` (moves of the least mobile beta = 1 chain per
    rule step, a move being an accepted rule step or a swap that brought
    another configuration), `frozen_fraction` (beta = 1 chains that did not
    move in this call),
    `swap_acceptance_<r>` for each pair `(beta_r, beta_{r+1})` of this call and
    their minimum `swap_acceptance_min` (a pair near 0 cuts the ladder: add
    replicas or raise `beta_min`), and the rule's own diagnostics at beta = 1.

    **Arguments:**

    - `space`: the configuration space.
    - `rules`: the rule(s), as for the `metropolis` sampler: rule names or
      tables `{name = "...", weight = w, ...}`; several make a mixture.
    - `lattice`: handed to rules that use bonds (from the config).
    - `registry`: where rule names are looked up (a config passes its own; default
      `nqs_core.get_registry()`).
    - `n_replicas`: temperatures per chain (default 8, or the length of
      `betas`; at least 2).
    - `beta_min`: smallest inverse temperature of the geometric ladder
      `beta_r = beta_min^(r / (n_replicas - 1))` (default 0.1, in (0, 1)).
    - `betas`: an explicit ladder instead (`n_replicas` numbers, `betas[0] = 1`,
      strictly decreasing, > 0); overrides `beta_min`.
    - `swap_every`: sweeps between swap rounds (default 1).
    - `n_samples`, `n_chains`, `n_discard_per_chain`, `sweep_size`,
      `n_thermalize`: as for every Metropolis sampler; `n_chains` counts
      physical chains (at beta = 1), each with its `n_replicas` replicas.

    **Example:**

    ```toml
    [sampler]
    name = "parallel_tempering"
    rules = ["local"]
    n_replicas = 8
    beta_min = 0.1
    ```
    """

    space: AbstractSpace
    rule: AbstractMetropolisRule
    betas: tuple[float, ...] = eqx.field(static=True)
    swap_every: int = eqx.field(static=True)
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        rules: list,
        lattice: Any = None,
        n_replicas: int | None = None,
        beta_min: float = 0.1,
        betas: list[float] | None = None,
        swap_every: int = 1,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        n_thermalize: int = 20,
        registry: Registry | None = None,
    ):
        if not isinstance(space, AbstractSpace):
            raise TypeError(f"parallel_tempering needs a space (AbstractSpace), got {type(space).__name__}")
        if n_replicas is None:
            n_replicas = 8 if betas is None else len(betas)
        n_replicas = check_int("n_replicas", n_replicas, 2)
        if betas is None:
            if isinstance(beta_min, bool) or not isinstance(beta_min, (int, float)) or not 0.0 < beta_min < 1.0:
                raise ValueError(f"beta_min must be a number in (0, 1), got {beta_min!r}")
            betas = geometric_betas(n_replicas, float(beta_min))
        else:
            betas = tuple(betas)
            if len(betas) != n_replicas:
                raise ValueError(f"betas has {len(betas)} values but n_replicas = {n_replicas}; give one beta per replica")
            if any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in betas):
                raise ValueError(f"betas must be numbers, got {list(betas)!r}")
            betas = tuple(float(b) for b in betas)
            if betas[0] != 1.0 or not all(a > b for a, b in zip(betas, betas[1:])) or betas[-1] <= 0.0:
                raise ValueError(f"betas must start at 1 and decrease strictly to a value > 0, got {list(betas)!r}")
        self.space = space
        self.rule = rules_from_spec("parallel_tempering", space, rules, lattice, registry)
        self.betas = betas
        self.swap_every = check_int("swap_every", swap_every, 1)
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)

    @property
    def n_replicas(self) -> int:
        return len(self.betas)

    def init(self, distribution: AbstractDistribution, key) -> TemperingState:
        """Random initial replicas from `space.random_state` (independent for
        every replica), their `log p` and the rule's state per temperature."""
        return _init(self, distribution, legacy_key(key))

    def sample(self, distribution: AbstractDistribution, state: TemperingState):
        """Run the replicas; return the beta = 1 configurations.

        **Returns:** `(samples, new_state, info)` with samples of shape
        `(n_chains, n_samples_per_chain, *shape)`.
        """
        return _sample(self, distribution, state)


def _betas(sampler, dtype):
    return jnp.asarray(np.asarray(sampler.betas), dtype=dtype)


def _tempered_init_state(sampler, distribution, x, betas):
    return jax.vmap(lambda b, xr: sampler.rule.init_state(TemperedDistribution(distribution, b), xr))(betas, x)


@eqx.filter_jit
def _init(sampler, distribution, key):
    key, sub = jax.random.split(key)
    R, C = sampler.n_replicas, sampler.n_chains
    flat = sampler.space.random_state(sub, R * C)
    x = flat.reshape((R, C) + flat.shape[1:])
    lp = jax.vmap(jax.vmap(distribution.log_prob))(x)
    betas = _betas(sampler, lp.dtype)
    return TemperingState(
        x=x,
        log_prob=lp,
        key=key,
        rule_state=_tempered_init_state(sampler, distribution, x, betas),
        n_accepted=jnp.zeros(C, dtype=jnp.int64),
        n_steps=jnp.zeros((), dtype=jnp.int64),
        n_swaps_accepted=jnp.zeros(R - 1, dtype=jnp.int64),
        n_swaps_proposed=jnp.zeros(R - 1, dtype=jnp.int64),
    )


def _swap(betas, x, lp, key):
    """One round of replica exchanges: per chain the even or the odd
    neighbouring pairs (at random), each accepted with the tempering ratio.
    Returns the new `(x, lp)`, the accepted swaps `(n_replicas - 1, n_chains)`
    and the proposed swaps per pair."""
    R, C = lp.shape
    k_parity, k_u = jax.random.split(key)
    parity = jax.random.bernoulli(k_parity, 0.5, (C,)).astype(jnp.int32)
    pair = jnp.arange(R - 1, dtype=jnp.int32)[:, None]
    active = (pair % 2) == parity[None, :]  # (R - 1, C)
    log_a = (betas[:-1] - betas[1:])[:, None] * (lp[1:] - lp[:-1])
    log_u = jnp.log(jax.random.uniform(k_u, (R - 1, C), dtype=lp.dtype))
    accept = active & (log_u < log_a)
    no = jnp.zeros((1, C), dtype=bool)
    up = jnp.concatenate([accept, no])  # replica r takes r + 1's configuration
    down = jnp.concatenate([no, accept])  # replica r takes r - 1's configuration
    src = jnp.arange(R, dtype=jnp.int32)[:, None] + up.astype(jnp.int32) - down.astype(jnp.int32)
    x = jnp.take_along_axis(x, src.reshape(src.shape + (1,) * (x.ndim - 2)), axis=0)
    lp = jnp.take_along_axis(lp, src, axis=0)
    return x, lp, accept, jnp.sum(active, axis=1, dtype=jnp.int64)


@eqx.filter_jit
def _sample(sampler, distribution, state):
    rule = sampler.rule
    R, C = state.log_prob.shape
    sweep = sampler.sweep_size
    per_step = rule.proposals_per_step(state.x[0])
    n_keep = sampler.n_samples_per_chain
    n_discard = sampler.n_discard_per_chain
    n_th = sampler.n_thermalize
    x = state.x
    lp = jax.vmap(jax.vmap(distribution.log_prob))(x)  # parameters changed since the last call
    betas = _betas(sampler, lp.dtype)
    key, k_th, k_run = jax.random.split(state.key, 3)

    def tempered_sweep(beta, xr, lpr, sr, kr):
        dist = TemperedDistribution(distribution, beta)
        randoms = jax.tree.map(lambda a: a[0], rule.draw(kr, 1, sweep, xr, sr))
        xr, lpr_t, acc = rule.sweep(dist, xr, beta * lpr, sr, randoms, sweep)
        return xr, lpr_t / beta, acc

    def one_sweep(carry, inputs):
        index, adapt, count = inputs
        x, lp, rule_state, acc, moved, swaps_acc, swaps_prop = carry
        k = jax.random.fold_in(k_sweeps_of(count), index)
        k_rule, k_swap = jax.random.split(k)
        x, lp, n_acc = jax.vmap(tempered_sweep)(betas, x, lp, rule_state, jax.random.split(k_rule, R))
        rates = jnp.sum(n_acc, axis=1).astype(lp.dtype) / (C * sweep * per_step)
        adapted = jax.vmap(rule.adapt)(rule_state, rates)
        rule_state = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), adapted, rule_state)
        acc = acc + jnp.where(count, n_acc[0], 0)  # beta = 1, before the swap moves configurations
        do_swap = (index + 1) % sampler.swap_every == 0
        xs, lps, s_accept, s_prop = _swap(betas, x, lp, k_swap)
        x = jnp.where(do_swap, xs, x)
        lp = jnp.where(do_swap, lps, lp)
        # a beta = 1 chain moved: its rule accepted, or a swap brought another configuration
        moved = moved + jnp.where(count, n_acc[0] + (do_swap & s_accept[0]).astype(jnp.int64), 0)
        swaps_acc = swaps_acc + jnp.where(do_swap & count, jnp.sum(s_accept, axis=1, dtype=jnp.int64), 0)
        swaps_prop = swaps_prop + jnp.where(do_swap & count, s_prop, 0)
        return (x, lp, rule_state, acc, moved, swaps_acc, swaps_prop), x[0]

    def k_sweeps_of(count):
        return jnp.where(count, k_run, k_th)

    zeros = jnp.zeros(R - 1, dtype=jnp.int64)
    carry = (x, lp, state.rule_state, jnp.zeros(C, dtype=jnp.int64), jnp.zeros(C, dtype=jnp.int64), zeros, zeros)
    if n_th:  # thermalisation, on fresh chains only (the rule adapts, nothing is counted)
        def thermalize(c):
            inputs = (jnp.arange(n_th), jnp.ones(n_th, dtype=bool), jnp.zeros(n_th, dtype=bool))
            return jax.lax.scan(one_sweep, c, inputs)[0]

        carry = jax.lax.cond(state.n_steps == 0, thermalize, lambda c: c, carry)
    n_run = n_discard + n_keep
    index = jnp.arange(n_run)
    carry, stored = jax.lax.scan(one_sweep, carry, (index, index < n_discard, jnp.ones(n_run, dtype=bool)))
    x, lp, rule_state, acc, moved, swaps_acc, swaps_prop = carry
    samples = stored[n_discard:]
    n_steps = n_run * sweep
    new_state = TemperingState(
        x=x,
        log_prob=lp,
        key=key,
        rule_state=rule_state,
        n_accepted=state.n_accepted + acc,
        n_steps=state.n_steps + n_steps,
        n_swaps_accepted=state.n_swaps_accepted + swaps_acc,
        n_swaps_proposed=state.n_swaps_proposed + swaps_prop,
    )
    swap_rates = swaps_acc.astype(lp.dtype) / jnp.maximum(swaps_prop, 1).astype(lp.dtype)
    info = {
        "acceptance": jnp.sum(acc).astype(lp.dtype) / (C * n_steps * per_step),
        # the sampling health of the beta = 1 chains, as MetropolisSampler reports it;
        # a configuration brought by a swap counts as a move
        "acceptance_min": jnp.min(moved).astype(lp.dtype) / (n_steps * per_step),
        "frozen_fraction": jnp.mean((moved == 0).astype(lp.dtype)),
        "swap_acceptance_min": jnp.min(swap_rates),
    }
    info.update({f"swap_acceptance_{r}": swap_rates[r] for r in range(R - 1)})
    info.update(rule.info(jax.tree.map(lambda a: a[0], rule_state)))
    return jnp.swapaxes(samples, 0, 1), new_state, info
