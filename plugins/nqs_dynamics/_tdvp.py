"""The time-dependent variational principle (TDVP): real- and imaginary-time
evolution of a variational state."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from nqs_core import (
    AbstractAnsatz,
    AbstractDiscreteHamiltonian,
    AbstractDiscreteSpace,
    AbstractEstimator,
    AbstractHamiltonian,
    AbstractIntegrator,
    AbstractNaturalGradient,
    AbstractSampler,
    AbstractSamplingDriver,
    BornDistribution,
    ConfigError,
    REJECT_REASONS,
    Registry,
    SystemBuilder,
    get_registry,
    is_weighted,
    local_values_of,
    measure,
    output_times,
    parse_schedule,
    DivergenceGuard,
    EnergyEstimator,
    HolomorphicLayout,
    Stats,
    parameters,
    real_ravel,
    sampling_health,
    stats_dict,
)
from nqs_core.distributed import sum_over_ranks

from ._integrators import RK4

#: named product states of a spin 1/2 (amplitudes in the basis (up, down))
NAMED_STATES = {
    "up": (1.0, 0.0),
    "down": (0.0, 1.0),
    "+x": (1.0, 1.0),
    "-x": (1.0, -1.0),
    "+y": (1.0, 1j),
    "-y": (1.0, -1j),
}

TIMES = ("real", "imaginary")


class TDVPState(eqx.Module):
    """Everything that changes during a TDVP run (and is checkpointed): the
    parameters, the sampler's chains, the number of output times done
    (`step`), the time `t` and the integrator's next step size `dt`."""

    params: Any
    sampler_state: Any
    step: jax.Array
    t: jax.Array
    dt: jax.Array


class ScheduledHamiltonian(AbstractDiscreteHamiltonian):
    """`H(t) = sum_k c_k H_k`: the Hamiltonian of time-dependent couplings,
    with the coefficients `c_k` a traced array (set for each time with
    `at`). The connected elements are those of every part, scaled.

    **Arguments:** `parts` (discrete Hamiltonians on one space),
    `coefficients` (one per part)."""

    parts: tuple[AbstractDiscreteHamiltonian, ...]
    coefficients: Array
    space: Any

    def __init__(self, parts, coefficients):
        self.parts = tuple(parts)
        self.coefficients = jnp.asarray(coefficients, dtype=jnp.float64)
        self.space = self.parts[0].space

    @property
    def max_conn_size(self) -> int:
        return sum(p.max_conn_size for p in self.parts)

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        return tuple(self.parts[0].marshall_sites)

    def connected(self, x):
        xs, ms = [], []
        for k, part in enumerate(self.parts):
            xp, mel = part.connected(x)
            xs.append(xp)
            ms.append(mel * self.coefficients[k].astype(mel.dtype))
        dtype = np.result_type(*[m.dtype for m in ms])
        return jnp.concatenate(xs, axis=0), jnp.concatenate([m.astype(dtype) for m in ms])

    def at(self, coefficients) -> "ScheduledHamiltonian":
        """The same parts with other coefficients."""
        return eqx.tree_at(lambda h: h.coefficients, self, jnp.asarray(coefficients, dtype=jnp.float64))


def _real_form(y, eps):
    """`X = [Re Y; Im Y]`, `f = [Re eps; -Im eps]` (`X^T X = Re Y^H Y`, `X^T f = Re Y^T eps`)."""
    if jnp.iscomplexobj(y):
        return jnp.concatenate([jnp.real(y), jnp.imag(y)]), jnp.concatenate([jnp.real(eps), -jnp.imag(eps)])
    return y, jnp.real(eps)


class _Rhs(eqx.Module):
    """The right-hand side `d theta / dt` of the TDVP equation at `(t, theta)`,
    with the sampler state as the carry; jitted inside the interval loop."""

    static: Any
    unravel: Any = eqx.field(static=True)
    system: Any
    coefficients: Any  # a function t -> coefficients, or None
    sampler: AbstractSampler
    estimator: AbstractEstimator
    solver: AbstractNaturalGradient
    imaginary: bool = eqx.field(static=True)
    keep_metric: bool = eqx.field(static=True)
    layout: HolomorphicLayout | None = None  # the complex form of a holomorphic ansatz

    def hamiltonian(self, t):
        if self.coefficients is None:
            return self.system
        return self.system.at(self.coefficients(t))

    def __call__(self, t, theta, sampler_state):
        ansatz = eqx.combine(self.unravel(theta), self.static)
        samples, sampler_state, sinfo = self.sampler.sample(BornDistribution(ansatz), sampler_state)
        system = self.hamiltonian(t)
        estimate = self.estimator(ansatz, system, samples)
        y, eps = self.estimator.natural_gradient_data(ansatz, samples, estimate)
        # the estimator's eps is -2 (E_loc - E)^* / sqrt(M); TDVP's is i (E_loc - E)^* / sqrt(M)
        # (real time) or -(E_loc - E)^* / sqrt(M) (imaginary time): see AbstractNaturalGradient
        eps = eps / 2 if self.imaginary else eps * (-0.5j)
        if self.layout is None:
            delta, info = self.solver.solve(y, eps)
            x, f = _real_form(y, eps)
            r = sum_over_ranks(jnp.sum((x @ delta - f) ** 2))
        else:
            # Y = [A, i A]: the complex P/2 x P/2 equation (solve_holomorphic); the
            # real form's X delta - f is the complex A z - eps^*
            x = self.layout.complex_columns(y)
            z, info = self.solver.solve_holomorphic(x, eps)
            delta = self.layout.real_vector(z)
            r = sum_over_ranks(jnp.sum(jnp.abs(x @ z - jnp.conj(eps)) ** 2))
        f2 = sum_over_ranks(jnp.sum(jnp.abs(eps) ** 2))
        aux = {
            "stats": estimate.stats,
            "residual": jnp.where(f2 > 0, r / jnp.where(f2 > 0, f2, 1.0), 0.0),
            "effective_rank": jnp.asarray(info.get("effective_rank", jnp.nan), jnp.float64),
        }
        if self.keep_metric:
            aux["x"] = x
        if not is_weighted(samples):  # Markov chains (an exact weighted sum has no sampling health)
            h = sampling_health(system, samples, sinfo, estimate.stats, ansatz)
            for name in ("acceptance", "frozen_fraction"):
                if name in sinfo:
                    h[name] = sinfo[name]
            aux["health"] = h
        return delta, sampler_state, aux

    def metric_norm(self, x, v):
        """`sqrt(v^T S v)` of a real parameter vector `v`, with `x` the metric's
        sample matrix of the evaluation (`aux["x"]`)."""
        xv = x @ v if self.layout is None else x @ self.layout.complex_vector(v)
        return jnp.sqrt(sum_over_ranks(jnp.sum(jnp.abs(xv) ** 2)))


class _Interval(eqx.Module):
    """Integrate from `state.t` to `t_stop`, stopping at the schedule's break
    points; one jitted call per output interval."""

    rhs: _Rhs
    integrator: AbstractIntegrator
    breaks: Array

    def __call__(self, theta, t, dt, sampler_state, t_stop):
        integrator = self.integrator
        tiny = 1e-12 * jnp.maximum(1.0, jnp.abs(t_stop))

        def segment_end(t):
            later = jnp.where(self.breaks > t + tiny, self.breaks, t_stop)
            return jnp.minimum(jnp.min(later, initial=jnp.inf), t_stop)

        aux_like = jax.eval_shape(lambda: self.rhs(t, theta, sampler_state)[2])
        # the diagnostics at t (the first evaluation), without the metric's sample matrix
        aux0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), {k: v for k, v in aux_like.items() if k != "x"})
        zero = jnp.asarray(0, jnp.int64)

        def cond(c):
            theta, t, dt, ss, n, n_rej, aux0, at_min = c
            return (t < t_stop - tiny) & (n + n_rej < 100_000)

        def body(c):
            theta, t, dt, ss, n, n_rej, aux0, at_min = c
            end = segment_end(t)
            remaining = end - t
            if integrator.adaptive:
                h = jnp.minimum(dt, remaining)
            else:
                h = remaining / jnp.maximum(jnp.ceil(remaining / dt - 1e-9), 1.0)
            new, ss, error, aux = integrator.step(self.rhs, t, theta, h, ss)
            first = (n + n_rej) == 0
            aux0 = jax.tree.map(lambda old, a: jnp.where(first, a, old), aux0, {k: v for k, v in aux.items() if k != "x"})
            if integrator.adaptive:
                x = aux["x"]
                step_norm = self.rhs.metric_norm(x, new - theta)
                error_norm = self.rhs.metric_norm(x, error)
                accepted, dt_next = integrator.control(h, error_norm, step_norm)
                at_min = at_min | (accepted & (h <= integrator.dt_min * (1 + 1e-12)) & (h < remaining))
                # a step cut short by the segment's end does not shrink the next one
                dt_next = jnp.where(accepted & (h < dt), jnp.maximum(dt_next, dt), dt_next)
            else:
                accepted, dt_next = True, dt
            t_new = jnp.where(h >= remaining - tiny, end, t + h)
            theta = jnp.where(accepted, new, theta)
            t = jnp.where(accepted, t_new, t)
            n = n + jnp.where(accepted, 1, 0)
            n_rej = n_rej + jnp.where(accepted, 0, 1)
            return theta, t, dt_next, ss, n, n_rej, aux0, at_min

        init = (theta, t, dt, sampler_state, zero, zero, aux0, jnp.asarray(False))
        theta, t, dt, ss, n, n_rej, aux0, at_min = jax.lax.while_loop(cond, body, init)
        return theta, t_stop, dt, ss, n, n_rej, aux0, at_min


class TDVP(AbstractSamplingDriver):
    """Real- and imaginary-time evolution of a variational state with the
    time-dependent variational principle (McLachlan's principle for real
    parameters; Carleo & Troyer 2017, Eqs. S8-S10; Schmitt & Heyl 2020).

    At every right-hand-side evaluation the sampler draws `|psi|^2`, the
    estimator gives the centred log-derivatives `Y` and local energies, and the
    natural-gradient `solver` (`nqs_core.AbstractNaturalGradient`: `sr` in
    parameter space, `srt` / `minsr` in sample space) solves
    `S theta_dot = F` with `S = Re[Y^H Y]` and `F = Re<O_c^* (-i)(E_loc - E)>`
    (real time, `i d/dt psi = H psi`) or `F = -Re<O_c^* (E_loc - E)>`
    (imaginary time, `d/dt psi = -(H - E) psi`, which converges to the
    ground state). The `integrator` advances the parameters.

    One step of the driver is one output time: step `k` records the energy,
    the `[observables]`, the TDVP residual and the solver's effective rank
    at `t_k` and then integrates to `t_{k+1}`; the last step records `t_end`
    only. `[run] n_steps` is therefore the number of output times (set by the
    driver).

    **Arguments:**

    - `system`, `ansatz`, `sampler`, `estimator`: as for VMC (a real-time
      evolution needs a complex `log psi`).
    - `time`: `"real"` or `"imaginary"`.
    - `t_end`: the final time.
    - `t_out`: the output times: an interval (default: `t_end / 100`) or an
      increasing list starting at 0.
    - `initial_state`: a product state the ansatz represents exactly
      (`AbstractAnsatz.product_state`; the RBM can): `"up"`, `"down"`,
      `"+x"`, `"-x"`, `"+y"`, `"-y"` (spin 1/2) or a list of local amplitudes
      (complex ones as `[re, im]` pairs). Omitted: the ansatz's own
      parameters, or those of `[run] init_from`.
    - `zero_amplitude`: the amplitude that stands for a zero one in
      `initial_state` (`"up"` is `(1, zero_amplitude)`: a finite `log psi`;
      default 1e-3, an infidelity of about `N * 1e-6`).
    - `integrator`: an `nqs_core.AbstractIntegrator` (`[driver.integrator]`;
      default `rk4` with `dt = 0.01`).
    - `solver`: an `nqs_core.AbstractNaturalGradient` (`[driver.solver]`;
      default `sr` with `diag_shift = 0` and `rcond = 1e-8`, the soft
      pseudo-inverse).
    - `schedule`: time-dependent couplings, `[[driver.schedule]]` tables with
      `field`, `times`, `values` (see `nqs_core._schedule`).
    - `holomorphic`: for an ansatz that declares a holomorphic `log psi` of
      complex parameters (`AbstractAnsatz.holomorphic`: with
      `param_dtype = "complex128"` the RBM, the Jastrow factor and the MLP
      with `log_cosh` or `tanh`), solve the equation in complex form,
      `P/2 x P/2` (`AbstractNaturalGradient.solve_holomorphic`: for `sr`
      half the Gram's work and a Cholesky factor of half the size) instead of
      the real `P x P` form; the same trajectory up to rounding. Default
      `true`; `false` always uses the real form. Other ansätze always use
      the real form.
    - `max_residual`: a TDVP residual above this is reported in the record
      (`"residual_warning"`) and the progress output (default 0.1).
    """

    objective = "energy"
    label = "TDVP"
    distributed = False

    def __init__(
        self,
        system: AbstractHamiltonian,
        ansatz: AbstractAnsatz,
        sampler: AbstractSampler,
        estimator: AbstractEstimator | None = None,
        time: str = "real",
        t_end: float = 1.0,
        t_out: float | list[float] | None = None,
        initial_state: str | list | None = None,
        zero_amplitude: float = 1e-3,
        integrator: AbstractIntegrator | None = None,
        solver: AbstractNaturalGradient | None = None,
        schedule: list[dict] | None = None,
        max_residual: float = 0.1,
        holomorphic: bool = True,
        exact_energy: float | None = None,
        divergence: DivergenceGuard | None = None,
        rebuild_system: SystemBuilder | None = None,
        registry: Registry | None = None,
    ):
        if not isinstance(system, AbstractHamiltonian):
            raise TypeError(f"TDVP needs a Hamiltonian, got {type(system).__name__}")
        if time not in TIMES:
            raise ValueError(f"time must be \"real\" or \"imaginary\", got {time!r}")
        if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not t_end > 0 or not math.isfinite(t_end):
            raise ValueError(f"t_end must be a positive number, got {t_end!r}")
        if solver is None:
            solver = (registry or get_registry()).get("preconditioner", "sr").obj(diag_shift=0.0, rcond=1e-8)
        if not isinstance(solver, AbstractNaturalGradient):
            raise ValueError(
                f"the solver must be a natural-gradient solver (sr, srt, minsr), got {type(solver).__name__}"
            )
        if not max_residual > 0:
            raise ValueError(f"max_residual must be > 0, got {max_residual!r}")
        if not 0 < zero_amplitude < 1:
            raise ValueError(f"zero_amplitude must be in (0, 1), got {zero_amplitude!r}")
        self.system = system
        self.sampler = sampler
        self.estimator = estimator if estimator is not None else EnergyEstimator()
        self.time = time
        self.t_end = float(t_end)
        self.times = tuple(float(t) for t in output_times(self.t_end, t_out))  # nqs exact --evolve uses the same grid
        self.integrator = integrator if integrator is not None else RK4()
        self.solver = solver
        self.max_residual = float(max_residual)
        self.divergence = divergence if divergence is not None else DivergenceGuard()
        self.exact_energy = exact_energy
        self.stop_reason = None
        #: the [observables] measured at every output time (`observe`)
        self.observables: dict[str, Any] = {}
        ansatz = self._initial_ansatz(ansatz, initial_state, zero_amplitude)
        self.ansatz = ansatz
        params, static = parameters(ansatz)
        self._params0 = params
        self.static = static
        theta, unravel = real_ravel(params)
        self._unravel = unravel
        out = jax.eval_shape(eqx.combine(params, static), jnp.zeros(sampler.space.shape, sampler.space.dtype))
        if time == "real" and not jnp.iscomplexobj(out):
            raise ValueError(
                "a real-time evolution needs a complex log psi (e.g. [ansatz] param_dtype = \"complex128\"): "
                "a real wave function cannot carry the phases e^{-iEt}"
            )
        self.ramps = parse_schedule(schedule)
        h, coefficients = self._scheduled_system(system, rebuild_system)
        self._hamiltonian = h
        self._coefficients = coefficients
        breaks = sorted({b for r in self.ramps for b in r.breaks if 0 < b < self.t_end})
        if not isinstance(holomorphic, bool):
            raise ValueError(f"holomorphic must be true or false, got {holomorphic!r}")
        #: whether the equation is solved in complex form (a holomorphic ansatz, `holomorphic = true`)
        self.holomorphic = holomorphic and ansatz.holomorphic
        self._rhs = _Rhs(
            static, unravel, h, coefficients, sampler, self.estimator, solver, time == "imaginary",
            self.integrator.adaptive, HolomorphicLayout(params) if self.holomorphic else None,
        )
        self._interval = eqx.filter_jit(_Interval(self._rhs, self.integrator, jnp.asarray(breaks, dtype=jnp.float64)))

    # -- set-up --------------------------------------------------------------

    def _initial_ansatz(self, ansatz, initial_state, zero_amplitude):
        if initial_state is None:
            return ansatz
        space = self.sampler.space
        if not isinstance(space, AbstractDiscreteSpace):
            raise ValueError("initial_state needs a discrete space with local states")
        values = local_values_of(space)
        if isinstance(initial_state, str):
            if initial_state not in NAMED_STATES:
                raise ValueError(f"unknown initial_state {initial_state!r}; valid: {', '.join(NAMED_STATES)} or a list of amplitudes")
            if len(values) != 2:
                raise ValueError(f"initial_state = {initial_state!r} is a spin-1/2 state; give {len(values)} local amplitudes as a list")
            amps = np.asarray(NAMED_STATES[initial_state], dtype=complex)
        else:
            amps = np.asarray([complex(*a) if isinstance(a, (list, tuple)) else complex(a) for a in initial_state])
            if amps.shape != (len(values),):
                raise ValueError(f"initial_state needs {len(values)} local amplitudes (one per local state), got {len(amps)}")
        if not np.any(amps != 0):
            raise ValueError("initial_state: the amplitudes are all zero")
        scale = np.max(np.abs(amps))
        amps = np.where(amps == 0, zero_amplitude * scale, amps)
        return ansatz.product_state(space, amps)

    def _scheduled_system(self, system, rebuild):
        """The Hamiltonian the right-hand side evaluates and the function of t
        giving its coefficients (`None`: time independent)."""
        if not self.ramps:
            return system, None
        if rebuild is None:
            raise ValueError("a schedule needs the system's config (build the driver from a config)")
        if not isinstance(system, AbstractDiscreteHamiltonian):
            raise ValueError("time-dependent couplings need a discrete Hamiltonian")
        base = {r.field: rebuild.value(r.field) for r in self.ramps}
        parts = [system] + [rebuild({r.field: base[r.field] + 1.0}) for r in self.ramps]
        h = ScheduledHamiltonian(parts, np.ones(len(parts)))
        _check_linear(h, rebuild, base, self.ramps, self.sampler.space)
        ramps = self.ramps

        def coefficients(t):
            deltas = jnp.stack([r.value_jnp(t) - base[r.field] for r in ramps])
            return jnp.concatenate([jnp.reshape(1.0 - jnp.sum(deltas), (1,)), deltas])

        return h, coefficients

    # -- the driver protocol ------------------------------------------------------

    @property
    def exact_energy(self) -> float | None:
        """The exact ground-state energy, shown beside imaginary-time evolutions
        (which converge to it); `None` for real time (the energy is conserved,
        not minimised)."""
        return self._exact_energy if self.time == "imaginary" else None

    @exact_energy.setter
    def exact_energy(self, value: float | None) -> None:
        self._exact_energy = value

    def implied_steps(self) -> int:
        """The number of output times (the run's `n_steps`)."""
        return len(self.times)

    def check_steps(self, n_steps: int) -> None:
        if n_steps != len(self.times):
            raise ValueError(
                f"n_steps = {n_steps}, but the tdvp driver records {len(self.times)} output times "
                f"(t_out from 0 to t_end = {self.t_end:g}); leave n_steps out or extend t_end"
            )

    def init(self, key: jax.Array, params: Any = None) -> TDVPState:
        params = self._params0 if params is None else params
        sampler_state = self.sampler.init(BornDistribution(eqx.combine(params, self.static)), key)
        return TDVPState(
            params=params,
            sampler_state=sampler_state,
            step=jnp.asarray(0, dtype=jnp.int64),
            t=jnp.asarray(0.0, dtype=jnp.float64),
            dt=jnp.asarray(self.integrator.dt, dtype=jnp.float64),
        )

    def parameters(self) -> Any:
        return self._params0

    def model(self, state) -> AbstractAnsatz:
        return eqx.combine(state.params, self.static)

    def measurement_state(self, key: jax.Array, params: Any) -> TDVPState:
        return self.init(key, params=params)

    def hamiltonian_at(self, t: float):
        """The Hamiltonian at time `t` (the system itself without a schedule)."""
        return self._rhs.hamiltonian(jnp.asarray(t, dtype=jnp.float64))

    def _probe(self, t):
        return _Probe(self.hamiltonian_at(t), self.sampler, self.estimator, self.static)

    def observe(self, observables: Mapping[str, Any]) -> bool:
        """Measure these `[observables]` at every output time (the run machinery
        passes its `[observables]` here, instead of `[run] observe_every`)."""
        self.observables = dict(observables)
        return True

    def step(self, state: TDVPState) -> tuple[TDVPState, dict[str, Any]]:
        t0 = time.perf_counter()
        k = int(state.step)
        t_k = self.times[k]
        last = k + 1 == len(self.times)
        record: dict[str, Any] = {"step": k, "t": t_k}
        if self.observables or last:
            # the energy and the observables on the same samples (one more sampler call)
            energy, values, state = measure(self._probe(t_k), state, self.observables, 1)
            record.update(_energy_record(energy))
            if values:
                record["observables"] = {name: stats_dict(v) for name, v in values.items()}
        if not last:
            theta = real_ravel(state.params)[0]
            out = self._interval(theta, state.t, state.dt, state.sampler_state, jnp.asarray(self.times[k + 1], jnp.float64))
            theta, t, dt, sampler_state, n, n_rej, aux0, at_min = out
            aux0, n, n_rej, at_min = jax.device_get((aux0, n, n_rej, at_min))
            if "energy" not in record:  # no observables: the energy of the first evaluation's samples
                record.update(_energy_record(aux0["stats"]))
            record["residual"] = float(aux0["residual"])
            rank = float(aux0["effective_rank"])
            if math.isfinite(rank):
                record["effective_rank"] = rank
            record["n_substeps"] = int(n)
            record["n_rejected"] = int(n_rej)
            record["dt"] = float(dt)
            if bool(at_min):
                record["dt_at_minimum"] = True
            if "health" in aux0:
                sick = int(self.divergence.health_code(aux0["stats"], aux0["health"]))
                for name in ("acceptance", "frozen_fraction", "n_distinct"):
                    if name in aux0["health"]:
                        record[name] = float(aux0["health"][name])
                if sick:
                    record["unhealthy"] = REJECT_REASONS[sick]
            if record["residual"] > self.max_residual:
                record["residual_warning"] = f"TDVP residual {record['residual']:.3g} above max_residual = {self.max_residual:g}"
            new = TDVPState(self._unravel(theta), sampler_state, state.step + 1, jnp.asarray(self.times[k + 1], jnp.float64), dt)
        else:
            new = eqx.tree_at(lambda s: s.step, state, state.step + 1)
        record["step_time"] = time.perf_counter() - t0
        return new, record

    def advance(self, state, memory):
        new, record, why = super().advance(state, memory)
        if why is None and "unhealthy" in record and self.divergence.on_unhealthy == "stop":
            why = f"t = {record['t']:g}: {record['unhealthy']}"
            record["rejected"] = record["unhealthy"]
            return state, record, why
        return new, record, why

    def evaluate(self, state, n_batches: int = 10) -> tuple[Stats, Any]:
        energy, _, state = measure(self._probe(float(state.t)), state, {}, n_batches)
        return energy, state

    def measure(self, state, observables, n_batches):
        return measure(self._probe(float(state.t)), state, observables, n_batches)

    def summary(self, state) -> dict[str, Any]:
        return {"t": float(state.t), "time": self.time}


class _Probe:
    """What `nqs_core._observable.measure` reads from a driver, with the
    Hamiltonian of one time."""

    def __init__(self, system, sampler, estimator, static):
        self.system, self.sampler, self.estimator, self.static = system, sampler, estimator, static

    def model(self, state):
        return eqx.combine(state.params, self.static)


def _energy_record(stats: Stats) -> dict[str, float]:
    d = stats.to_dict()
    out = {"energy": d["mean"], "energy_error": d["error"], "variance": d["variance"]}
    if "mean_imag" in d:
        out["energy_imag"] = d["mean_imag"]
    return out


def _check_linear(h: ScheduledHamiltonian, rebuild, base, ramps, space) -> None:
    """Refuse a scheduled field that does not enter H linearly: the combination
    at `v0 + 2` must equal the system built there (on a few configurations)."""
    x = space.random_state(jax.random.PRNGKey(7), 4)
    for j, r in enumerate(ramps):
        direct = rebuild({r.field: base[r.field] + 2.0})
        c = np.zeros(len(h.parts))
        c[0], c[j + 1] = -1.0, 2.0
        combined = h.at(c)
        a = _dense_rows(combined, x)
        b = _dense_rows(direct, x)
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        if a.shape != b.shape or np.max(np.abs(a - b)) > 1e-9 * scale:
            raise ConfigError(
                f"[[driver.schedule]] field {r.field!r} does not enter the Hamiltonian linearly "
                "(only couplings can be scheduled)"
            )


def _dense_rows(system, x):
    """`<x|H|x'>` summed per distinct `x'`, as sorted (key, value) arrays, for comparing Hamiltonians."""
    out = []
    for row in np.asarray(x):
        xps, mels = jax.device_get(system.connected(jnp.asarray(row)))
        acc: dict[bytes, complex] = {}
        for xp, m in zip(np.asarray(xps), np.asarray(mels)):
            key = np.asarray(xp).tobytes()
            acc[key] = acc.get(key, 0.0) + complex(m)
        out.append([acc[k] for k in sorted(acc) if abs(acc[k]) > 1e-12])
    width = max((len(r) for r in out), default=0)
    return np.array([r + [0.0] * (width - len(r)) for r in out])
