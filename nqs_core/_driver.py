"""The variational Monte Carlo driver: sample -> estimate -> precondition -> update."""

from __future__ import annotations

import time
from typing import Any, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._ansatz import AbstractAnsatz
from ._distributed import concat_over_ranks, fold_rank
from ._driver_protocol import AbstractSamplingDriver
from ._estimator import AbstractEstimator, EnergyEstimator, scheduled
from ._fullsum import _value_bytes
from ._keys import example_samples_key
from ._health import OFFDIAG_RTOL, describe_health, sampling_health
from ._observable import draws_exact, measure
from ._preconditioner import AbstractPreconditioner, StepContext, IdentityPreconditioner
from ._sampler import AbstractSampler, BornDistribution
from ._samples import is_weighted, sample_array
from ._stats import Stats, statistics
from ._system import AbstractHamiltonian
from ._tree import n_real_parameters, parameters
from ._validate import check_int, check_memory


class GuardState(eqx.Module):
    """Running history of a `DivergenceGuard`: the energy variance and the
    direction norm of the last `window` accepted steps (NaN where empty)."""

    variance: jax.Array
    direction_norm: jax.Array
    count: jax.Array
    #: references of the blow-up tests, set at the first accepted step (NaN before):
    #: the parameter norm, the energy and its standard deviation
    param_norm0: jax.Array | None = None
    energy0: jax.Array | None = None
    sigma0: jax.Array | None = None


def earlier_layouts(state: Any) -> list[Any]:
    """The layouts in which earlier nqs versions checkpointed a VMC state like
    `state`, newest first: before the blow-up references of the guard
    (`param_norm0`, `energy0`, `sigma0`; nqs 0.2.0), and before the guard.
    `resume` tries them when a checkpoint does not fit the current layout;
    `VMC.step` completes a state read this way (NaN references, set again at
    the next accepted step; a fresh guard)."""
    if not isinstance(state, VMCState) or state.guard is None:
        return []
    g = state.guard
    is_none = lambda x: x is None  # noqa: E731
    before_refs = eqx.tree_at(lambda s: s.guard, state, GuardState(g.variance, g.direction_norm, g.count), is_leaf=is_none)
    before_guard = eqx.tree_at(lambda s: s.guard, state, None, is_leaf=is_none)
    return [before_refs, before_guard]


class VMCState(eqx.Module):
    """Everything that changes during a VMC run (and is checkpointed); an
    `AbstractSamplingState` (`params` first, `step`, `sampler_state`)."""

    params: Any
    opt_state: Any
    sampler_state: Any
    precond_state: Any
    step: jax.Array
    guard: GuardState | None = None


#: Why a step was rejected (`record["rejected"]`); 0 is an accepted step.
REJECT_REASONS = {
    1: "the energy or its variance is not finite",
    2: "the energy variance jumped above divergence_factor times its running median",
    3: "R-hat of the energy is above max_r_hat (the chains disagree)",
    4: "the update direction is not finite",
    5: "the updated parameters are not finite",
    6: "the update direction norm jumped above divergence_factor times its running median",
    7: "the sampling froze: most chains did not move during the step (max_frozen_fraction) on a state that is not an eigenstate",
    8: "the energy variance is zero on a state that is not an eigenstate: the samples collapsed onto few configurations",
    9: "the parameters grew by orders of magnitude (norm above blowup_factor times its initial value)",
    10: "the energy moved by orders of magnitude (more than blowup_factor times its initial scale)",
}
#: Reasons that condemn the parameters the step started from (so the update
#: that produced them is undone); the others condemn its samples or its update.
_PARAMS_REASONS = (1, 2, 7, 8, 10)
#: Reasons about the sampling's health: `[run] on_unhealthy = "warn"` only warns.
HEALTH_REASONS = (7, 8)


class DivergenceGuard(eqx.Module):
    """Checks, inside the jitted step, that a step is sane before it is applied.

    A step is rejected (parameters, optimizer and preconditioner state not
    updated) when the energy, its variance, the update direction or the new
    parameters are not finite, when the energy variance or the direction norm
    exceeds `factor` times its median over the last `window` accepted steps
    (once `warmup` steps have been accepted), when R-hat exceeds
    `max_r_hat`, when the parameters or the energy grew by orders of
    magnitude (a finite blow-up: the parameter norm above `blowup_factor`
    times `max(|p0|, 1)`, or `|E - E0|` above `blowup_factor` times
    `max(|E0|, sigma0)`, with `p0`, `E0`, `sigma0` those of the first accepted
    step), or when the sampling is unhealthy (see `nqs_core._health`): at
    least `max_frozen_fraction` of the chains did not move, or the energy
    variance is zero, on a state whose sampled configurations are not
    eigenstates of `H`. The driver then retries (see `VMC.run`) at most
    `max_retries` times, each with the update scaled by a further
    `retry_scale`, and stops with the reason when the retries are spent.

    **Arguments:**

    - `factor`: jump factor over the running median (`inf`: off; default 1e4).
    - `max_r_hat`: largest accepted R-hat (`inf`: off; default 100; NaN, an
      undefined R-hat, is not rejected here: frozen chains are caught by the
      health tests).
    - `max_retries`: retries of a rejected step before the run stops (default 3).
    - `retry_scale`: factor on the update per retry (default 0.5).
    - `window`: length of the running median (default 20).
    - `warmup`: accepted steps before the jump and R-hat tests start (default 2).
    - `blowup_factor`: growth of the parameter norm or the energy that counts
      as a finite blow-up (`inf`: off; default 1e5).
    - `max_frozen_fraction`: fraction of chains that did not move in a step
      that counts as frozen sampling (default 0.5; 1.0: only when all froze).
    - `on_unhealthy`: `"stop"` (default: frozen or collapsed sampling rejects
      the step like a divergence) or `"warn"` (the step is applied, the record
      gets `"unhealthy"` and the progress output a warning).
    """

    factor: float = eqx.field(static=True)
    max_r_hat: float = eqx.field(static=True)
    max_retries: int = eqx.field(static=True)
    retry_scale: float = eqx.field(static=True)
    window: int = eqx.field(static=True)
    warmup: int = eqx.field(static=True)
    blowup_factor: float = eqx.field(static=True)
    max_frozen_fraction: float = eqx.field(static=True)
    on_unhealthy: str = eqx.field(static=True)

    def __init__(
        self,
        factor: float = 1e4,
        max_r_hat: float = 100.0,
        max_retries: int = 3,
        retry_scale: float = 0.5,
        window: int = 20,
        warmup: int = 2,
        blowup_factor: float = 1e5,
        max_frozen_fraction: float = 0.5,
        on_unhealthy: str = "stop",
    ):
        factor, max_r_hat, retry_scale = float(factor), float(max_r_hat), float(retry_scale)
        blowup_factor, max_frozen_fraction = float(blowup_factor), float(max_frozen_fraction)
        if not factor > 1.0:
            raise ValueError(f"divergence_factor must be > 1 (inf: off), got {factor}")
        if not max_r_hat > 1.0:
            raise ValueError(f"max_r_hat must be > 1 (inf: off), got {max_r_hat}")
        if not 0.0 < retry_scale <= 1.0:
            raise ValueError(f"retry_scale must be in (0, 1], got {retry_scale}")
        if not blowup_factor > 1.0:
            raise ValueError(f"blowup_factor must be > 1 (inf: off), got {blowup_factor}")
        if not 0.0 < max_frozen_fraction <= 1.0:
            raise ValueError(f"max_frozen_fraction must be in (0, 1], got {max_frozen_fraction}")
        if on_unhealthy not in ("stop", "warn"):
            raise ValueError(f"on_unhealthy must be 'stop' or 'warn', got {on_unhealthy!r}")
        self.factor, self.max_r_hat, self.retry_scale = factor, max_r_hat, retry_scale
        self.blowup_factor, self.max_frozen_fraction, self.on_unhealthy = blowup_factor, max_frozen_fraction, on_unhealthy
        self.max_retries = check_int("max_retries", max_retries, minimum=0)
        self.window = check_int("window", window, minimum=1)
        self.warmup = check_int("warmup", warmup, minimum=1)

    def init(self) -> GuardState:
        empty = jnp.full((self.window,), jnp.nan, dtype=jnp.float64)
        nan = jnp.asarray(jnp.nan, dtype=jnp.float64)
        return GuardState(empty, empty, jnp.asarray(0, dtype=jnp.int64), nan, nan, nan)

    def health_code(self, stats: Stats, health: Mapping[str, jax.Array]) -> jax.Array:
        """The unhealthy-sampling code (int64; 0 healthy, else 7 or 8 of
        `REJECT_REASONS`) of a step's health numbers (`sampling_health` plus
        the sampler's `frozen_fraction` where it has one)."""
        frozen = jnp.asarray(health.get("frozen_fraction", jnp.nan), jnp.float64)
        off = jnp.asarray(health.get("offdiag_weight", jnp.nan), jnp.float64)
        scale = jnp.maximum(jnp.abs(jnp.real(jnp.asarray(stats.mean))).astype(jnp.float64) ** 2, 1.0)
        not_eigen = ~(off <= OFFDIAG_RTOL * scale)
        conditions = [
            (frozen >= self.max_frozen_fraction) & not_eigen,
            jnp.asarray(health.get("zero_variance", 0.0)) > 0,
        ]
        return jnp.select(conditions, [jnp.asarray(7, jnp.int64), jnp.asarray(8, jnp.int64)], jnp.asarray(0, jnp.int64))

    def check(self, guard: GuardState, stats: Stats, direction_norm, direction, params, health=None) -> jax.Array:
        """The reason code (int64, 0: accept) of a step; see `REJECT_REASONS`."""
        var = jnp.asarray(stats.variance, jnp.float64)
        dnorm = jnp.asarray(direction_norm, jnp.float64)
        ready = guard.count >= self.warmup
        started = guard.count >= 1
        energy = jnp.real(jnp.asarray(stats.mean)).astype(jnp.float64)

        def jump(value, history):
            median = jnp.nanmedian(history)
            return ready & (median > 0) & (value > self.factor * median)

        hcode = self.health_code(stats, health or {})
        stop_unhealthy = self.on_unhealthy == "stop"
        p0 = guard.param_norm0 if guard.param_norm0 is not None else jnp.nan
        e0 = guard.energy0 if guard.energy0 is not None else jnp.nan
        s0 = guard.sigma0 if guard.sigma0 is not None else jnp.nan
        conditions = [  # in the order of REJECT_REASONS
            ~(jnp.isfinite(stats.mean) & jnp.isfinite(var)),
            jump(var, guard.variance),
            ready & (jnp.asarray(stats.R_hat, jnp.float64) > self.max_r_hat),
            ~_all_finite(direction),
            ~_all_finite(params),
            jump(dnorm, guard.direction_norm),
            stop_unhealthy & (hcode == 7),
            stop_unhealthy & (hcode == 8),
            started & (_norm(params) > self.blowup_factor * jnp.maximum(p0, 1.0)),
            started & (jnp.abs(energy - e0) > self.blowup_factor * jnp.maximum(jnp.abs(e0), s0)),
        ]
        codes = [jnp.asarray(i + 1, jnp.int64) for i in range(len(conditions))]
        return jnp.select(conditions, codes, jnp.asarray(0, jnp.int64))

    def update(self, guard: GuardState, stats: Stats, direction_norm, params=None) -> GuardState:
        """`guard` with an accepted step's variance and direction norm added
        (and, at the first accepted step, the blow-up references: the norm of
        `params`, the parameters the step started from, and the energy)."""
        i = guard.count % self.window
        first = guard.count == 0
        nan = jnp.asarray(jnp.nan, jnp.float64)
        old = [x if x is not None else nan for x in (guard.param_norm0, guard.energy0, guard.sigma0)]
        now = [
            _norm(params) if params is not None else nan,
            jnp.real(jnp.asarray(stats.mean)).astype(jnp.float64),
            jnp.sqrt(jnp.asarray(stats.variance, jnp.float64)),
        ]
        refs = [jnp.where(first, b, a) for a, b in zip(old, now)]
        return GuardState(
            guard.variance.at[i].set(jnp.asarray(stats.variance, jnp.float64)),
            guard.direction_norm.at[i].set(jnp.asarray(direction_norm, jnp.float64)),
            guard.count + 1,
            *refs,
        )


def _norm(tree) -> jax.Array:
    """Euclidean norm of every inexact array of `tree`."""
    leaves = [
        jnp.sum(jnp.abs(a) ** 2).astype(jnp.float64) for a in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)
    ]
    return jnp.sqrt(jnp.sum(jnp.stack(leaves))).astype(jnp.float64) if leaves else jnp.asarray(0.0, jnp.float64)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class _Step(eqx.Module):
    static: Any
    system: AbstractHamiltonian
    sampler: AbstractSampler
    estimator: AbstractEstimator
    preconditioner: AbstractPreconditioner
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    guard: DivergenceGuard

    def __call__(self, state: VMCState, scale: jax.Array):
        ansatz = eqx.combine(state.params, self.static)
        estimator, schedule_info = scheduled(self.estimator, state.step)
        samples, sampler_state, sinfo = self.sampler.sample(BornDistribution(ansatz), state.sampler_state)
        estimate = estimator(ansatz, self.system, samples)
        context = StepContext(self.system, ansatz, samples, estimate, estimator)
        direction, precond_state, pinfo = self.preconditioner(context, state.precond_state)
        dnorm = optax.tree.norm(direction)
        pinfo = {**pinfo, **schedule_info, "direction_norm": dnorm}
        updates, opt_state = self.optimizer.update(direction, state.opt_state, state.params)
        updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)  # < 1 only when retrying
        params = optax.apply_updates(state.params, updates)
        health = {}
        if not is_weighted(samples):  # weighted samples (an exact sum) are no Markov chains to be unhealthy
            health = {**sampling_health(self.system, sample_array(samples), sinfo, estimate.stats, ansatz)}
            if "frozen_fraction" in sinfo:
                health["frozen_fraction"] = sinfo["frozen_fraction"]
        reason = self.guard.check(state.guard, estimate.stats, dnorm, direction, params, health)
        unhealthy = self.guard.health_code(estimate.stats, health)
        ok = reason == 0
        # a rejected step leaves everything but the sampler (fresh samples for a retry) as it was
        new = jax.tree.map(
            lambda a, b: jnp.where(ok, a, b),
            VMCState(params, opt_state, state.sampler_state, precond_state, state.step + 1,
                     self.guard.update(state.guard, estimate.stats, dnorm, state.params)),
            state,
        )
        new = eqx.tree_at(lambda s: s.sampler_state, new, sampler_state)
        health = {**health, "unhealthy": unhealthy.astype(jnp.float64), "param_norm": _norm(params)}
        return new, estimate.stats, {**sinfo, **pinfo, **health}, reason


class _Evaluate(eqx.Module):
    static: Any
    system: AbstractHamiltonian
    sampler: AbstractSampler
    estimator: AbstractEstimator

    def __call__(self, params, sampler_state):
        ansatz = eqx.combine(params, self.static)
        samples, sampler_state, info = self.sampler.sample(BornDistribution(ansatz), sampler_state)
        estimate = self.estimator(ansatz, self.system, samples)
        # weighted samples: the estimator's weighted statistics (a Python bool, static)
        return estimate.local_values, estimate.stats, is_weighted(samples), sampler_state, info


class VMC(AbstractSamplingDriver):
    """Variational Monte Carlo: minimise `<H>` over the parameters of an ansatz.

    Each step samples `|psi|^2`, estimates the local energies, turns them into
    an update direction with the preconditioner and applies it with the optax
    optimizer. The whole step is one jitted function.

    **Arguments:**

    - `system`: the Hamiltonian.
    - `ansatz`: the initial variational state (its inexact arrays are the parameters).
    - `sampler`: draws configurations from `|psi|^2`.
    - `optimizer`: an `optax.GradientTransformation`.
    - `preconditioner`: defaults to the identity (plain gradients).
    - `estimator`: defaults to `EnergyEstimator()`.
    - `exact_energy`: optional reference value shown next to the estimates.

    **Example:**

    ```python
    driver = VMC(system, ansatz, sampler, optax.sgd(0.05), SR(diag_shift=1e-4))
    state = driver.init(jax.random.PRNGKey(0))
    state = driver.run(state, n_steps=200, callbacks=[ProgressBar(200)])
    ```
    """

    objective = "energy"
    label = "VMC"
    distributed = True
    own_guard = True

    def __init__(
        self,
        system: AbstractHamiltonian,
        ansatz: AbstractAnsatz,
        sampler: AbstractSampler,
        optimizer: optax.GradientTransformation,
        preconditioner: AbstractPreconditioner | None = None,
        estimator: AbstractEstimator | None = None,
        exact_energy: float | None = None,
        divergence: DivergenceGuard | None = None,
    ):
        if not isinstance(system, AbstractHamiltonian):
            raise TypeError(f"VMC needs a Hamiltonian, got {type(system).__name__}")
        if tuple(sampler.space.shape) != tuple(system.space.shape):
            raise ValueError(
                f"inconsistent sizes: sampler configurations have shape {sampler.space.shape}, "
                f"the system's space has shape {system.space.shape}"
            )
        self.system = system
        self.ansatz = ansatz
        self.sampler = sampler
        self.optimizer = optimizer
        self.preconditioner = preconditioner if preconditioner is not None else IdentityPreconditioner()
        self.estimator = estimator if estimator is not None else EnergyEstimator()
        self.exact_energy = exact_energy
        self.divergence = divergence if divergence is not None else DivergenceGuard()
        #: why the last `run` stopped early (a divergence), else `None`
        self.stop_reason: str | None = None
        params, static = parameters(ansatz)
        self._params0 = params
        self._check_step_memory()
        self._step = eqx.filter_jit(
            _Step(static, system, sampler, self.estimator, self.preconditioner, optimizer, self.divergence)
        )
        self._evaluate = eqx.filter_jit(_Evaluate(static, system, sampler, self.estimator))
        self.static = static

    def _check_step_memory(self) -> None:
        """Refuse a step whose preconditioner would need more than the memory
        limit (`AbstractPreconditioner.memory_estimate`), before compiling it."""
        space = self.sampler.space
        n = self.sampler.n_chains * self.sampler.n_samples_per_chain
        p = n_real_parameters(self.ansatz)
        value_bytes = _value_bytes(self.ansatz, jax.ShapeDtypeStruct(tuple(space.shape), space.dtype))
        n_bytes = self.preconditioner.memory_estimate(n, p, value_bytes)
        if n_bytes > 0:
            check_memory(n_bytes, f"one {type(self.preconditioner).__name__} step ({n} samples x {p} real parameters)")

    @property
    def n_parameters(self) -> int:
        """Number of real parameters."""
        return n_real_parameters(self.ansatz)

    def init(self, key: jax.Array, params: Any = None) -> VMCState:
        """Initial state: the ansatz's parameters (or `params`, e.g. from another
        run's checkpoint), fresh optimizer and sampler states."""
        params = self._params0 if params is None else params
        # each MPI rank runs its own chains
        sampler_state = self.sampler.init(BornDistribution(eqx.combine(params, self.static)), fold_rank(key))
        return VMCState(
            params=params,
            opt_state=self.optimizer.init(params),
            sampler_state=sampler_state,
            precond_state=self.preconditioner.init(eqx.combine(params, self.static), self.example_samples(key)),
            step=jnp.asarray(0, dtype=jnp.int64),
            guard=self.divergence.init(),
        )

    def parameters(self) -> Any:
        """The ansatz's initial parameters (the template `[run] init_from` reads into)."""
        return self._params0

    def example_samples(self, key: jax.Array) -> jax.Array:
        """Valid configurations shaped like one step's samples,
        `(n_chains, n_samples_per_chain, *shape)`, from `space.random_state`
        (what preconditioners build their state from at `init`)."""
        sampler = self.sampler
        n = sampler.n_chains * sampler.n_samples_per_chain
        x = sampler.space.random_state(example_samples_key(key), n)
        return x.reshape((sampler.n_chains, sampler.n_samples_per_chain) + x.shape[1:])

    def model(self, state: VMCState) -> AbstractAnsatz:
        """The ansatz with the parameters of `state`."""
        return eqx.combine(state.params, self.static)

    def measurement_state(self, key: jax.Array, params: Any) -> VMCState:
        """A state with `params` for `nqs_core.measure`: fresh sampler chains
        from `key` (as `init`); for a sampler that returns an exact weighted
        sum only the sampler state is set up (not the optimizer's or the
        preconditioner's, whose set-up draws a step's worth of samples)."""
        zero = jnp.asarray(0, dtype=jnp.int64)
        light = VMCState(params, None, self.sampler.init(BornDistribution(eqx.combine(params, self.static)), key), None, zero, None)
        return light if draws_exact(self, light) else self.init(key, params=params)

    def step(self, state: VMCState, scale: float = 1.0) -> tuple[VMCState, dict[str, Any]]:
        """One optimisation step; returns the new state and a log record for the
        energy of the parameters *before* the update.

        A step the `DivergenceGuard` rejects returns the state unchanged but
        for the sampler (which has drawn new samples), with the reason in
        `record["rejected"]`. `scale` multiplies the update (retries)."""
        t0 = time.perf_counter()
        if state.guard is None:  # a state made before the guard existed
            state = eqx.tree_at(lambda s: s.guard, state, self.divergence.init(), is_leaf=lambda x: x is None)
        elif state.guard.param_norm0 is None:  # ... or before its blow-up references
            nan = jnp.asarray(jnp.nan, jnp.float64)
            g = state.guard
            state = eqx.tree_at(lambda s: s.guard, state, GuardState(g.variance, g.direction_norm, g.count, nan, nan, nan))
        new, stats, info, reason = self._step(state, jnp.asarray(scale, dtype=jnp.float64))
        # one transfer for every scalar of the record (not one per float())
        stats, info, reason = jax.device_get((stats, info, reason))
        record = {"step": int(state.step), **_stats_record(stats)}
        for k, v in info.items():
            record[k] = float(v)
        if "n_distinct" in record:
            record["n_distinct"] = int(record["n_distinct"])
            record["zero_variance"] = bool(record["zero_variance"])
        sick = int(record.pop("unhealthy", 0))
        if sick:
            record["unhealthy"] = REJECT_REASONS[sick]
        code = int(reason)
        if code:
            record["rejected"] = REJECT_REASONS[code]
        if scale != 1.0:
            record["update_scale"] = float(scale)
        record["step_time"] = time.perf_counter() - t0
        return new, record

    def advance(self, state: VMCState, memory: dict[str, Any]) -> tuple[VMCState, dict[str, Any], str | None]:
        """The retry hook of `AbstractDriver.run` (which runs until
        `state.step == n_steps`, calling the callbacks with the state the next
        step starts from).

        A rejected step (see `DivergenceGuard`) is retried with the update
        scaled by `retry_scale ** attempt`: when the samples or the update were
        bad, the same step with fresh samples; when the parameters it started
        from were bad (non-finite energy, variance jump), the step that made
        them, from the state before it (kept in `memory`). After `max_retries`
        retries, or when there is nothing to go back to, the run stops with
        the reason (`stop_reason`); the state returned is then the last one
        whose energy was accepted."""
        if not memory:
            # previous: the state the last accepted step started from
            memory.update(previous=None, attempts=0, trouble=-1, retry_step=-1)
        guard = self.divergence
        step = int(state.step)
        if step > memory["trouble"]:
            memory["attempts"] = 0
        scale = guard.retry_scale ** memory["attempts"] if step == memory["retry_step"] else 1.0
        new, record = self.step(state, scale)
        code = next((c for c, r in REJECT_REASONS.items() if r == record.get("rejected")), 0)
        if not code:
            memory["previous"] = state
            return new, record, None
        previous = memory["previous"]
        memory["attempts"] += 1
        attempts = memory["attempts"]
        memory["trouble"] = max(memory["trouble"], step)
        record["attempt"] = attempts
        if attempts > guard.max_retries or (code in _PARAMS_REASONS and previous is None):
            why = "no earlier state in this run to go back to" if attempts <= guard.max_retries else f"after {guard.max_retries} retries"
            detail = ""
            if code in HEALTH_REASONS:
                detail = f" [{describe_health(record, self.sampler.n_chains * self.sampler.n_samples_per_chain)}]"
            if previous is not None and code in _PARAMS_REASONS:
                state = previous  # its energy was the last accepted one
            return state, record, f"step {step}: {record['rejected']}{detail} ({why})"
        if code in _PARAMS_REASONS:
            memory["retry_step"] = step - 1
            return previous, record, None  # redo the update that made these parameters
        memory["retry_step"] = step
        return new, record, None  # same parameters, fresh samples

    def evaluate(self, state: VMCState, n_batches: int = 10) -> tuple[Stats, VMCState]:
        """Energy of the current parameters from `n_batches` sampling calls, chains
        continued between calls (so the error bar accounts for correlations).
        Returns the statistics and the state with the advanced sampler. With
        weighted samples (the `full_sum` sampler's exact sum) the energy is the
        estimator's weighted estimate of one sampler call."""
        sampler_state = state.sampler_state
        chunks = []
        for _ in range(n_batches):
            eloc, stats, weighted, sampler_state, _ = self._evaluate(state.params, sampler_state)
            if weighted:
                return stats, eqx.tree_at(lambda s: s.sampler_state, state, sampler_state)
            chunks.append(eloc)
        return _pooled_statistics(chunks), eqx.tree_at(lambda s: s.sampler_state, state, sampler_state)

    def measure(self, state: VMCState, observables: Mapping[str, Any], n_batches: int) -> tuple[Stats, dict[str, Stats], VMCState]:
        """The energy and the `[observables]` on the same final samples
        (`nqs_core.measure`; one exact sum for a `full_sum` run)."""
        return measure(self, state, observables, n_batches)


@jax.jit
def _pooled_statistics(chunks):
    """`statistics` of the batches' local energies over every rank's chains, compiled once."""
    return statistics(concat_over_ranks(jnp.concatenate(chunks, axis=1)))


def _stats_record(stats: Stats) -> dict[str, float]:
    d = stats.to_dict()
    return {
        "energy": d["mean"],
        "energy_error": d["error"],
        "variance": d["variance"],
        "tau_corr": d["tau_corr"],
        "R_hat": d["R_hat"],
        **({"energy_imag": d["mean_imag"]} if "mean_imag" in d else {}),
    }


def is_finite_record(record: dict[str, Any]) -> bool:
    return bool(np.isfinite(record["energy"]) and np.isfinite(record["variance"]))
