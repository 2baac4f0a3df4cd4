"""Samplers for `exp(-S[phi])`: Hybrid Monte Carlo (blackjax) and local Metropolis."""

from __future__ import annotations

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
from blackjax.adaptation.step_size import dual_averaging_adaptation
from jaxtyping import Array, PRNGKeyArray

import nqs_core

from ._system import Phi4Action


def _prob(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    return float(v)


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) > 0.0:
        raise ValueError(f"{name} must be a positive number, got {v!r}")
    return float(v)


_legacy_key = nqs_core.legacy_key


def _check_space(owner: str, space) -> None:
    if not isinstance(space, nqs_core.AbstractContinuousSpace) or len(space.shape) != 2:
        raise TypeError(f"{owner} needs a two-dimensional field space such as Phi4Field, got {space!r}")


class HMCState(eqx.Module):
    """State of the `HMC` sampler.

    **Fields:**

    - `phi`: current configurations `(n_chains, L0, L1)`.
    - `key`: PRNG key (legacy `uint32[2]`).
    - `step_size`: leapfrog step size (tuned during thermalisation, then fixed).
    - `n_accepted`: accepted trajectories per chain since `init`.
    - `n_steps`: trajectories per chain since `init` (thermalisation included).
    """

    phi: Array
    key: Array
    step_size: Array
    n_accepted: Array
    n_steps: Array

    @property
    def acceptance(self) -> Array:
        return jnp.sum(self.n_accepted) / jnp.maximum(self.n_steps * self.n_accepted.shape[0], 1)


class HMC(nqs_core.AbstractSampler):
    """Hybrid Monte Carlo for `exp(-S[phi])` (blackjax's HMC kernel), vectorised over chains.

    `init` draws small random fields and thermalises them with `n_thermalize`
    trajectories while the (shared) leapfrog step size is tuned by dual averaging
    to `target_acceptance`; afterwards the step size stays fixed, so the chain is an
    exact Markov chain. Each `sample` call stores one configuration every `n_skip`
    trajectories (`n_skip` should exceed the integrated autocorrelation time).

    **Arguments:**

    - `space`: the field space (`Phi4Field`).
    - `n_samples`: configurations per `sample` call (over all chains, default 1024).
    - `n_chains`: independent chains (default 16).
    - `n_leapfrog`: leapfrog steps per trajectory (default 10).
    - `step_size`: initial step size (default 0.2).
    - `target_acceptance`: acceptance the step size is tuned to (default 0.8).
    - `n_thermalize`: trajectories of thermalisation in `init` (default 500).
    - `n_skip`: trajectories between stored configurations (default 5).
    """

    space: nqs_core.AbstractContinuousSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_leapfrog: int = eqx.field(static=True)
    step_size: float = eqx.field(static=True)
    target_acceptance: float = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)
    n_skip: int = eqx.field(static=True)

    def __init__(
        self,
        space: nqs_core.AbstractContinuousSpace,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_leapfrog: int = 10,
        step_size: float = 0.2,
        target_acceptance: float = 0.8,
        n_thermalize: int = 500,
        n_skip: int = 5,
    ):
        _check_space("HMC", space)
        self.space = space
        self.n_samples = nqs_core.check_int("n_samples", n_samples)
        self.n_chains = nqs_core.check_int("n_chains", n_chains)
        nqs_core.check_chains(self.n_samples, self.n_chains)
        self.n_leapfrog = nqs_core.check_int("n_leapfrog", n_leapfrog)
        self.step_size = _positive("step_size", step_size)
        self.target_acceptance = _prob("target_acceptance", target_acceptance)
        self.n_thermalize = nqs_core.check_int("n_thermalize", n_thermalize, 0)
        self.n_skip = nqs_core.check_int("n_skip", n_skip)

    def init(self, distribution, key: PRNGKeyArray) -> HMCState:
        """Random start, `n_thermalize` trajectories with step-size tuning."""
        key = _legacy_key(key)
        key, sub = jax.random.split(key)
        phi = self.space.random_state(sub, self.n_chains)
        return _hmc_thermalize(self, distribution, phi, key)

    def sample(self, distribution, state: HMCState):
        return _hmc_sample(self, distribution, state)


_KERNEL = blackjax.mcmc.hmc.build_kernel()


def _trajectory(sampler, logdensity, key, positions, step_size):
    """One HMC trajectory of every chain; returns new positions and acceptance flags."""
    keys = jax.random.split(key, positions.shape[0])

    def one(k, x):
        st = blackjax.mcmc.hmc.init(x, logdensity)
        inv_mass = jnp.ones(x.size, dtype=x.dtype)
        new, info = _KERNEL(k, st, logdensity, step_size, inv_mass, sampler.n_leapfrog)
        return new.position, info.is_accepted, info.acceptance_rate

    return jax.vmap(one)(keys, positions)


@eqx.filter_jit
def _hmc_thermalize(sampler: HMC, distribution, phi, key):
    logdensity = distribution.log_prob
    da_init, da_update, da_final = dual_averaging_adaptation(sampler.target_acceptance)
    dtype = phi.dtype
    da = da_init(jnp.asarray(sampler.step_size, dtype=dtype))

    def body(carry, _):
        phi, key, da = carry
        key, sub = jax.random.split(key)
        eps = jnp.exp(da.log_step_size)
        phi, _, rate = _trajectory(sampler, logdensity, sub, phi, eps)
        rate = jnp.where(jnp.isfinite(rate), rate, 0.0)
        da = da_update(da, jnp.mean(rate))
        return (phi, key, da), None

    (phi, key, da), _ = jax.lax.scan(body, (phi, key, da), None, length=sampler.n_thermalize)
    eps = da_final(da) if sampler.n_thermalize > 0 else jnp.asarray(sampler.step_size, dtype=dtype)
    return HMCState(
        phi=phi,
        key=key,
        step_size=jnp.asarray(eps, dtype=dtype),
        n_accepted=jnp.zeros(phi.shape[0], dtype=jnp.int64),
        n_steps=jnp.asarray(0, dtype=jnp.int64),
    )


@eqx.filter_jit
def _hmc_sample(sampler: HMC, distribution, state: HMCState):
    logdensity = distribution.log_prob
    per = sampler.n_samples_per_chain

    def traj(carry, _):
        phi, key, acc = carry
        key, sub = jax.random.split(key)
        phi, accepted, _ = _trajectory(sampler, logdensity, sub, phi, state.step_size)
        return (phi, key, acc + accepted.astype(jnp.int64)), None

    def store(carry, _):
        carry, _ = jax.lax.scan(traj, carry, None, length=sampler.n_skip)
        return carry, carry[0]

    (phi, key, acc), samples = jax.lax.scan(store, (state.phi, state.key, state.n_accepted), None, length=per)
    n_new = per * sampler.n_skip
    new = HMCState(phi=phi, key=key, step_size=state.step_size, n_accepted=acc, n_steps=state.n_steps + n_new)
    call_acc = jnp.sum(acc - state.n_accepted) / (n_new * phi.shape[0])
    samples = jnp.swapaxes(samples, 0, 1)
    return samples, new, {"acceptance": call_acc.astype(phi.dtype), "step_size": state.step_size}


class CheckerboardRule(nqs_core.AbstractMetropolisRule):
    """Local (single-site) Metropolis step for the phi^4 action, checkerboard-vectorised.

    One step proposes `phi_x -> phi_x + width * U(-1, 1)` on all sites of one
    colour of the checkerboard at once (their local actions do not interact)
    and accepts each site with `min(1, exp(-dS_x))`, then does the same on the
    other colour. Needs a `BoltzmannDistribution` of a `Phi4Action` (its
    `local_action`) and even `L0, L1`. The width (the rule state) adapts to
    `target_acceptance` with gain `adapt_rate` (`nqs_core.adapt_width`).

    **Arguments:**

    - `width`: initial proposal half-width (> 0).
    - `target_acceptance`: in (0, 1).
    - `adapt_rate`: gain of the width adaptation (default 0.05).
    """

    width: float = eqx.field(static=True)
    target_acceptance: float = eqx.field(static=True)
    adapt_rate: float = eqx.field(static=True, default=0.05)

    def init_state(self, distribution, x):
        _action_of(distribution)
        return jnp.asarray(self.width, dtype=x.dtype)

    def transition(self, distribution, x, log_prob, rule_state, key, n):
        action = _action_of(distribution)

        def body(carry, key):
            phi, acc = carry
            phi, a = _sweep(action, key, phi, rule_state)
            return (phi, acc + a), None

        (x, acc), _ = jax.lax.scan(body, (x, jnp.zeros(x.shape[0], jnp.int64)), jax.random.split(key, n))
        return x, -action(x), acc

    def adapt(self, rule_state, acceptance):
        return nqs_core.adapt_width(rule_state, acceptance, self.target_acceptance, self.adapt_rate)

    def info(self, rule_state):
        return {"width": rule_state}

    def proposals_per_step(self, x):
        return x.shape[-1] * x.shape[-2]


class MetropolisField(nqs_core.AbstractMetropolisSampler):
    """Local (single-site) Metropolis for the phi^4 action, checkerboard-vectorised
    (the core Metropolis engine with a `CheckerboardRule`).

    A sweep proposes `phi_x -> phi_x + width * U(-1, 1)` on all sites of one colour
    of the checkerboard at once (their local actions do not interact), then on the
    other colour. The width is tuned during the `n_thermalize` sweeps that the
    first `sample` call runs on fresh chains, then fixed. Needs a `Phi4Action`
    (its `local_action`) and even `L0, L1`. Mainly a cross-check of `HMC`.

    **Arguments:**

    - `space`: the field space (`Phi4Field`).
    - `n_samples`, `n_chains`: as for every sampler (defaults 1024, 16).
    - `width`: initial proposal half-width (default 1.0).
    - `target_acceptance`: default 0.5.
    - `n_thermalize`: sweeps of thermalisation on fresh chains (default 1000; run
      in blocks of `n_sweeps`, so rounded up to a multiple of it).
    - `n_sweeps`: sweeps between stored configurations (default 10).

    `info` reports `acceptance` (per site) and `width`.
    """

    space: nqs_core.AbstractContinuousSpace
    rule: CheckerboardRule
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
        width: float = 1.0,
        target_acceptance: float = 0.5,
        n_thermalize: int = 1000,
        n_sweeps: int = 10,
    ):
        _check_space("MetropolisField", space)
        if any(n % 2 for n in space.shape):
            raise ValueError(f"MetropolisField needs even lattice sizes (checkerboard), got {space.shape}")
        n_sweeps = nqs_core.check_int("n_sweeps", n_sweeps)
        n_thermalize = nqs_core.check_int("n_thermalize", n_thermalize, 0)
        self.space = space
        # the engine thermalises in blocks of n_sweeps sweeps and adapts after each
        # block: n_sweeps times the gain 0.05 that one update per sweep would have
        self.rule = CheckerboardRule(
            _positive("width", width), _prob("target_acceptance", target_acceptance), adapt_rate=0.05 * n_sweeps
        )
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = nqs_core.metropolis_counts(space, n_samples, n_chains, 0, n_sweeps, -(-n_thermalize // n_sweeps))

    @property
    def n_sweeps(self) -> int:
        """Sweeps between stored configurations."""
        return self.sweep_size


def _action_of(distribution) -> Phi4Action:
    if not (isinstance(distribution, nqs_core.BoltzmannDistribution) and isinstance(distribution.action, Phi4Action)):
        action = distribution.action if isinstance(distribution, nqs_core.BoltzmannDistribution) else None
        raise TypeError(
            "MetropolisField needs a BoltzmannDistribution of a Phi4Action, "
            f"got {type(distribution).__name__} ({type(action).__name__})"
        )
    return distribution.action


def _sweep(action: Phi4Action, key, phi, width):
    """One checkerboard sweep of all chains; returns new phi and accepted counts per chain."""
    L0, L1 = phi.shape[-2:]
    colour = (jnp.arange(L0)[:, None] + jnp.arange(L1)[None, :]) % 2
    n_acc = jnp.zeros(phi.shape[0], dtype=jnp.int64)
    for c in (0, 1):
        key, k1, k2 = jax.random.split(key, 3)
        prop = phi + width * jax.random.uniform(k1, phi.shape, dtype=phi.dtype, minval=-1.0, maxval=1.0)
        ds = action.local_action(phi, prop) - action.local_action(phi, phi)
        u = jax.random.uniform(k2, phi.shape, dtype=phi.dtype)
        accept = (jnp.log(u) < -ds) & (colour == c)
        phi = jnp.where(accept, prop, phi)
        n_acc = n_acc + jnp.sum(accept, axis=(-2, -1)).astype(jnp.int64)
    return phi, n_acc
