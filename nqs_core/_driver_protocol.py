"""The driver protocol: what a training loop gives `nqs run` / `nqs resume`."""

from __future__ import annotations

import abc
import math
import typing
from typing import Any, ClassVar, Iterable, Mapping

import jax

from ._callbacks import as_callbacks, end_callbacks, start_callbacks, step_callbacks
from ._health import BlowUpWatch
from ._keys import driver_key
from ._stats import Stats


@typing.runtime_checkable
class AbstractDriverState(typing.Protocol):
    """What the run machinery reads from a driver's state (an `equinox.Module`):
    the trainable `params` (its first field: `[run] init_from` and `nqs
    measure` read it) and `step`, the number of steps done (an integer scalar).

    A structural protocol (`isinstance` checks the members): a state declares
    the fields in its own order, which is the order of its checkpoints' leaves."""

    params: Any
    step: Any


@typing.runtime_checkable
class AbstractSamplingState(AbstractDriverState, typing.Protocol):
    """The state of a sampling driver: also `sampler_state`, the sampler's
    chains and keys (checkpointed, and continued by `nqs_core.measure`)."""

    sampler_state: Any


class AbstractDriver(abc.ABC):
    """A calculation's loop: VMC is one, control-variate training and quadrature
    training are others. `nqs run` builds a driver from the `[driver]` table (and
    the component tables its constructor takes by argument name), and gives it a
    run directory, the JSON-lines log, checksummed checkpoints, the progress bar,
    resume and callbacks (`nqs_core.AbstractCallback`).

    What the run machinery needs from a driver:

    - `init(key, params=None)`: the initial state, an `equinox.Module` with an
      integer `step` (the number of steps done) and, for `[run] init_from`, the
      trainable `params` as its first field (`AbstractDriverState` declares
      both); everything the loop needs to
      continue bit for bit (optimizer state, random keys, sampler chains, data)
      is in the state, because `nqs resume` restores only the state.
    - `step(state)`: one step, `(new state, record)`; the record is a dict of
      floats with `"step"` (the step of `state`) and `objective`, the quantity
      minimised, measured on the parameters of `state` (before the update).
    - `run(state, n_steps, callbacks)`: steps until `state.step == n_steps`
      (so a resumed state continues where it stopped), calling the callbacks.
      The default loop stops at the first record whose objective is not finite,
      without applying that step, and says why in `stop_reason`.
    - `evaluate(state, n_batches)`: `(Stats of the objective, state)` for the
      final estimate in `result.json`.
    - `summary(state)`: further JSON values for `result.json` (default none).
    - `check_steps(n_steps)`: refuse a total it cannot run (default: any).

    **Attributes:** `objective` (class level: the record field minimised, shown
    by the progress bar and checked by `NaNGuard`), `label` (class level: the
    progress bar's title), `distributed` (class level, default `False`:
    whether MPI runs are supported), `own_guard` (class level, default
    `False`: the driver checks divergences and blow-ups itself, so `nqs run`
    does not set `blowup_factor` from `[run]`), `blowup_factor`,
    `exact_energy` (a reference value or `None`), `stop_reason` (why the last
    `run` stopped early, else `None`). A driver that samples a wave function
    and measures `[observables]` implements `AbstractSamplingDriver`.
    """

    #: the record field this driver minimises (progress bar, NaN guard, early stopping)
    objective: ClassVar[str] = "energy"
    #: title of the progress bar
    label: ClassVar[str] = "run"
    #: a reference value of the objective (relative error in the progress bar and result), or `None`
    exact_energy: float | None = None
    #: why the last `run` stopped early (a divergence), else `None`
    stop_reason: str | None = None
    #: whether the driver runs over MPI ranks (VMC); `nqs run` refuses more than one rank otherwise
    distributed: ClassVar[bool] = False
    #: growth of the objective or the parameter norm that the default `run` treats as a divergence
    blowup_factor: float = 1e5
    #: whether the driver guards its steps itself (VMC's `DivergenceGuard`); else `nqs run` sets `blowup_factor`
    own_guard: ClassVar[bool] = False

    def run_key(self, seed: int) -> jax.Array:
        """The key `nqs run` passes to `init` for `[run] seed` (default:
        `nqs_core._keys.driver_key`: `fold_in(PRNGKey(seed), 1000)`, what VMC
        has always used)."""
        return driver_key(seed)

    @abc.abstractmethod
    def init(self, key: jax.Array, params: Any = None):
        """The initial state (with `params` instead of the initial parameters when given)."""

    @abc.abstractmethod
    def parameters(self) -> Any:
        """A pytree shaped like the trainable parameters (the template `[run] init_from` reads into)."""

    @abc.abstractmethod
    def step(self, state) -> tuple[Any, dict[str, Any]]:
        """One step: `(new state, log record)`."""

    @abc.abstractmethod
    def evaluate(self, state, n_batches: int = 10) -> tuple[Stats, Any]:
        """`(Stats of the objective of the state's parameters, state)`."""

    def implied_steps(self) -> int | None:
        """The number of steps the driver's own fields imply (the TDVP driver:
        its output times), which `nqs run` and `nqs resume` use when `[run]
        n_steps` is not given; `None` (the default): `[run] n_steps` decides."""
        return None

    def check_steps(self, n_steps: int) -> None:
        """Refuse (`ValueError`) a total number of steps this driver cannot run;
        `nqs run` / `nqs resume` ask before anything is written (default: any)."""

    def measure(self, state, observables: Mapping[str, Any], n_batches: int) -> tuple[Stats, dict[str, Stats], Any]:
        """The final estimate and the `[observables]`: `(Stats, {name: Stats}, state)`.
        The default evaluates the objective; a driver without samples to measure
        on refuses observables (`ValueError`)."""
        if observables:
            raise ValueError(f"the {type(self).__name__} driver does not measure [observables]; remove them")
        stats, state = self.evaluate(state, n_batches)
        return stats, {}, state

    def summary(self, state) -> dict[str, Any]:
        """Further JSON-serialisable values for `result.json` (default: none)."""
        return {}

    def run(self, state, n_steps: int, callbacks: Iterable = ()):
        """Step until `state.step == n_steps`, calling `callbacks` (see
        `AbstractCallback`) after every step; one returning `False` stops the run.

        Each step goes through the retry hook `advance(state, memory)`, which
        decides what a failed step does (retry it, go back, or stop: then
        `stop_reason` says why and the record gets `"diverged"`). `memory` is
        a dict that lives for this call of `run` (the hook keeps its history
        there). The default hook (see `advance`) stops at the first step whose
        objective is not finite or that blew up."""
        callbacks = as_callbacks(callbacks)
        self.stop_reason = None
        start_callbacks(callbacks, self, state, n_steps)
        memory: dict[str, Any] = {}
        try:
            stop = False
            while int(state.step) < n_steps and not stop:
                state, record, why = self.advance(state, memory)
                if why is not None:
                    self.stop_reason = why
                    record["diverged"] = why
                    stop = True
                if step_callbacks(callbacks, self, state, record):
                    stop = True
        finally:
            end_callbacks(callbacks, self, state)
        return state

    def advance(self, state, memory: dict[str, Any]) -> tuple[Any, dict[str, Any], str | None]:
        """The retry hook of `run`: one step from `state`, and what follows it.

        **Arguments:**

        - `state`: the state the step starts from.
        - `memory`: a dict kept for one call of `run` (empty at its start).

        **Returns:** `(the state the next step starts from, the step's record,
        a reason to stop the run or None)`.

        The default: a step whose objective is not finite, or that blew up
        (`BlowUpWatch`: the objective moved by more than `blowup_factor` times
        the first step's magnitude, or the parameter norm grew by more than
        that factor over the starting one), is not applied: the run stops and
        continues from the last state that passed (the one before it), or the
        given state when the first step failed. VMC retries rejected steps
        instead (`DivergenceGuard`)."""
        if "watch" not in memory:
            memory["watch"] = BlowUpWatch(self.blowup_factor)
            memory["watch"].check(math.nan, getattr(state, "params", None))  # references: the starting parameters (and the first objective)
            memory["previous"] = None
        watch = memory["watch"]
        new, record = self.step(state)
        value = record[self.objective]
        blown = None
        if not (isinstance(value, float) and not math.isfinite(value)):
            blown = watch.check(float(value), getattr(new, "params", None))
        if (isinstance(value, float) and not math.isfinite(value)) or blown:
            record["rejected"] = blown or f"the {self.objective} is not finite"
            previous = memory["previous"]
            # the parameters of `state` gave the non-finite value
            return (previous if previous is not None else state), record, f"step {record['step']}: {record['rejected']}"
        memory["previous"] = state
        return new, record, None

class AbstractSamplingDriver(AbstractDriver):
    """A driver that samples `|psi|^2` of an ansatz and estimates the energy of
    a Hamiltonian (VMC): what `nqs_core.measure`, the `[observables]` (at the
    end into `result.json`, every `[run] observe_every` steps into the log),
    the exact cross-check, `nqs measure` and the profiler read.

    **Attributes:** `system` (the Hamiltonian), `sampler` (an
    `AbstractSampler`; its samples may carry weights, see `nqs_core.Samples`),
    `estimator` (an `AbstractEstimator`; its `chunk_size` bounds the
    measurements too). Its states are `AbstractSamplingState`s.
    """

    system: Any
    sampler: Any
    estimator: Any

    def observe(self, observables: Mapping[str, Any]) -> bool:
        """Take the `[observables]` to measure in every step's record, for a
        driver whose steps are output times (TDVP); `True` when it does, and
        `nqs run` then does not use `[run] observe_every`. Default: `False`
        (the observables are measured by `ObservableLog` and at the end)."""
        return False

    @abc.abstractmethod
    def model(self, state) -> Any:
        """The ansatz with the parameters of `state`."""

    @abc.abstractmethod
    def measurement_state(self, key: jax.Array, params: Any):
        """A state with `params` from which `nqs_core.measure` can sample
        (`nqs measure` on a checkpoint's parameters): fresh sampler chains
        from `key`; what only training needs may be left out."""
