"""Random-walk Metropolis with Gaussian proposals and an adaptive width."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

import nqs_core

from ._common import as_float


#: The state of `GaussianMetropolis`: the core `MetropolisState`, whose
#: `rule_state` is the current proposal width (a scalar array).
GaussianMetropolisState = nqs_core.MetropolisState


class GaussianRule(nqs_core.AbstractSymmetricRule):
    """Move all coordinates of a chain at once, `x' = x + width * N(0, 1)`, with a
    width that adapts to `target_acceptance`: after each adapting sweep
    `log width += adapt_rate * (acceptance - target_acceptance)`
    (`nqs_core.adapt_width`). The width is the rule state.

    **Arguments:**

    - `step_size`: initial width (> 0).
    - `target_acceptance`: in (0, 1).
    - `adapt_rate`: gain of the adaptation (>= 0; 0 disables it).
    """

    step_size: float = eqx.field(static=True)
    target_acceptance: float = eqx.field(static=True)
    adapt_rate: float = eqx.field(static=True)

    def init_state(self, distribution, x):
        return jnp.asarray(self.step_size, dtype=x.dtype)

    def moves(self, key, shape, x, rule_state):
        return jax.random.normal(key, shape + x.shape[1:], dtype=x.dtype)

    def propose(self, x, eps, rule_state):
        return x + rule_state * eps

    def adapt(self, rule_state, acceptance):
        return nqs_core.adapt_width(rule_state, acceptance, self.target_acceptance, self.adapt_rate)

    def info(self, rule_state):
        return {"step_size": rule_state}


class GaussianMetropolis(nqs_core.AbstractMetropolisSampler):
    """Random-walk Metropolis for continuous configurations: every proposal
    moves all coordinates of a chain at once, `x' = x + step_size * N(0, 1)`
    (the core Metropolis engine with a `GaussianRule`).

    The width adapts on the fly to reach `target_acceptance`: after each
    discarded sweep, `log step_size += adapt_rate * (acceptance_of_sweep -
    target_acceptance)` (acceptance over all chains). While samples are stored
    the width is fixed, so the stored chain satisfies detailed balance for the
    target density. The width lives in the sampler state (`state.rule_state`)
    and carries over to the next call (and into checkpoints), so it keeps
    tracking a changing wave function during an optimisation.

    **Arguments:**

    - `space`: a continuous space (e.g. `Particles1D`).
    - `n_samples`: total samples per call, over all chains (default 1024);
      a multiple of `n_chains` (`nqs_core.check_chains`): each chain gives `n_samples / n_chains`.
    - `n_chains`: number of parallel chains (default 16).
    - `step_size`: initial proposal width (default 0.5).
    - `target_acceptance`: acceptance rate the width adapts to, in (0, 1)
      (default 0.5).
    - `n_discard_per_chain`: sweeps thrown away (and used for adaptation) at
      the start of each call (default: `max(n_samples_per_chain // 10, 5)`).
    - `sweep_size`: proposals per chain between stored samples (default: the
      number of coordinates, `space.size`).
    - `adapt_rate`: gain of the width adaptation (default 1.0; 0 disables it).

    `info` reports `acceptance` (discarded and stored sweeps) and `step_size`
    (the width used for the stored samples).
    """

    space: nqs_core.AbstractContinuousSpace
    rule: GaussianRule
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)

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
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = nqs_core.metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, 0, min_discard=5)
        adapt_rate = as_float("adapt_rate", adapt_rate)
        if adapt_rate < 0.0:
            raise ValueError(f"adapt_rate must be >= 0, got {adapt_rate}")
        self.rule = GaussianRule(
            step_size=as_float("step_size", step_size, positive=True),
            target_acceptance=as_float("target_acceptance", target_acceptance, lo=0.0, hi=1.0),
            adapt_rate=adapt_rate,
        )

    @property
    def step_size(self) -> float:
        """Initial proposal width."""
        return self.rule.step_size

    @property
    def target_acceptance(self) -> float:
        return self.rule.target_acceptance

    @property
    def adapt_rate(self) -> float:
        return self.rule.adapt_rate
