"""Callbacks run by a driver around its steps: the typed protocol and the built-in ones."""

from __future__ import annotations

import abc
import functools
import inspect
import math
import pathlib
import time
from typing import Any, Callable, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import _signals
from ._distributed import python_comm
from ._io import LOG_FILE, json_line, open_append, save_run_state
from ._stats import _digits


class StopRun(Exception):
    """Raised by a callback's `__call__` to stop the run after the current step
    (the same as returning `False`; the message says why, for the reader)."""


class AbstractCallback(abc.ABC):
    """A callback of a driver's `run`: named hooks, called in the order of the
    `callbacks` list.

    - `on_start(driver, state, n_steps)`: once, before the first step.
    - `__call__(driver, state, record)`: after every step (every attempt of a
      retried step), with the state the next step starts from and the step's log
      record (which it may extend, e.g. with observables). Returning `False` or
      raising `StopRun` stops the run after this step; the other callbacks still
      see the step.
    - `on_end(driver, state)`: once, after the last step, also when the run stopped
      early or raised (the state is then the last good one).

    `driver` is an `nqs_core.AbstractDriver`; `driver.objective` names the record
    field that it minimises (`"energy"` for VMC) and `driver.stop_reason` says why
    it stopped early (a divergence), else `None`.
    """

    def on_start(self, driver, state, n_steps: int) -> None:
        """Called once before the first step; default: nothing."""

    @abc.abstractmethod
    def __call__(self, driver, state, record: dict[str, Any]) -> bool | None:
        """Called after every step; `False` (or raising `StopRun`) stops the run."""

    def on_end(self, driver, state) -> None:
        """Called once after the last step; default: nothing."""


class FunctionCallback(AbstractCallback):
    """A plain function `fn(driver, state, record)` as a callback (no start or end hook).

    **Arguments:** `fn`, called after every step; `False` stops the run.
    """

    def __init__(self, fn: Callable[[Any, Any, dict[str, Any]], bool | None]):
        self.fn = fn

    def __call__(self, driver, state, record):
        return self.fn(driver, state, record)


def as_callbacks(callbacks: Iterable) -> list[AbstractCallback]:
    """`callbacks` as a list of `AbstractCallback`s: plain functions (and methods,
    `functools.partial`s) are wrapped in `FunctionCallback`; anything else raises
    `TypeError` naming the fix."""
    out = []
    for cb in callbacks:
        if isinstance(cb, AbstractCallback):
            out.append(cb)
        elif inspect.isfunction(cb) or inspect.ismethod(cb) or inspect.isbuiltin(cb) or isinstance(cb, functools.partial):
            out.append(FunctionCallback(cb))
        else:
            raise TypeError(
                f"callback {type(cb).__name__} is neither an nqs_core.AbstractCallback nor a function; "
                "derive it from AbstractCallback (hooks on_start, __call__, on_end)"
            )
    return out


def start_callbacks(callbacks: list[AbstractCallback], driver, state, n_steps: int) -> None:
    """Run every callback's `on_start`."""
    for cb in callbacks:
        cb.on_start(driver, state, n_steps)


def step_callbacks(callbacks: list[AbstractCallback], driver, state, record: dict[str, Any]) -> bool:
    """Call every callback after a step; `True` when one asks the run to stop
    (returned `False` or raised `StopRun`)."""
    stop = False
    for cb in callbacks:
        try:
            if cb(driver, state, record) is False:
                stop = True
        except StopRun:
            stop = True
    return stop


def end_callbacks(callbacks: list[AbstractCallback], driver, state) -> None:
    """Run every callback's `on_end`."""
    for cb in callbacks:
        cb.on_end(driver, state)


class JsonlLog(AbstractCallback):
    """Append one JSON record per step to `run_dir/log.jsonl` (energy, error,
    variance, tau, R-hat, acceptance, step time, ...). Flushed every step.

    The file is strict JSON (RFC 8259): a value that is not finite is written
    as `null` and its key listed in the record's `"non_finite"` field."""

    def __init__(self, run_dir):
        self.path = pathlib.Path(run_dir) / LOG_FILE
        self._f = None

    def on_start(self, driver, state, n_steps):
        self._f = open_append(self.path)  # never through a symbolic link

    def __call__(self, driver, state, record):
        self._f.write(json_line(record) + "\n")
        self._f.flush()

    def on_end(self, driver, state):
        if self._f:
            self._f.close()
            self._f = None


def accepted(record: dict[str, Any]) -> bool:
    """Whether the driver applied the step of `record` (see `DivergenceGuard`)."""
    return "rejected" not in record


class Checkpoint(AbstractCallback):
    """Save the full run state every `every` steps and at the end of the run.

    A state is saved only once its own energy has been accepted (at the step
    after it was made), so a checkpoint never holds parameters that diverged;
    when the run stops at a divergence the state saved at the end is the last
    good one, and a run that diverged before any step was accepted keeps its
    previous checkpoint."""

    def __init__(self, run_dir, every: int = 50, meta: dict[str, Any] | None = None):
        self.run_dir = pathlib.Path(run_dir)
        self.every = int(every)
        if self.every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {every}")
        #: extra JSON fields of every checkpoint's meta (the run's physics fingerprint)
        self.meta = dict(meta or {})
        self._next = None
        self._any_accepted = False

    def save(self, state):
        save_run_state(self.run_dir, state, self.meta)

    def on_start(self, driver, state, n_steps):
        self._next, self._any_accepted = state, False

    def __call__(self, driver, state, record):
        stepped, self._next = self._next, state
        if accepted(record):
            self._any_accepted = True
            if stepped is not None and int(stepped.step) % self.every == 0:
                self.save(stepped)  # its energy, just measured, is fine

    def on_end(self, driver, state):
        if driver.stop_reason is None or self._any_accepted:
            self.save(state)


class NaNGuard(AbstractCallback):
    """Stop the run when the driver gives up on a diverging step (see
    `DivergenceGuard`), or when a step's objective (`driver.objective`, the
    energy for VMC) or its variance is not finite; `tripped_at` is that step and
    `reason` says why."""

    def __init__(self):
        self.tripped_at: int | None = None
        self.reason: str | None = None

    def __call__(self, driver, state, record):
        if "diverged" in record:
            self.tripped_at, self.reason = record["step"], record["diverged"]
            return False
        key = driver.objective
        if accepted(record) and not (math.isfinite(record[key]) and math.isfinite(record.get("variance", 0.0))):
            self.tripped_at, self.reason = record["step"], f"step {record['step']}: the {key} is not finite"
            return False


class SignalStop(AbstractCallback):
    """Stop the run after the step during which SIGTERM or SIGINT arrived (see
    `nqs_core._signals.catch_signals`), or, if that step was rejected, after the
    retry that is accepted (an interrupted retry could not be resumed exactly);
    the `Checkpoint` callback then saves the state as at the end of any run.
    Under MPI the ranks agree on the step (a host-side gather of the signals
    after every step), so they stop together."""

    def on_start(self, driver, state, n_steps):
        _signals.start_steps()

    def __call__(self, driver, state, record):
        signum = _signals.requested()
        comm = python_comm()
        if comm is not None:  # every rank stops at this step if any rank was signalled
            signum = max(comm.allgather(signum or 0)) or None
            if signum is not None:
                _signals.request(signum)
        if signum is not None and accepted(record):
            return False


class EarlyStopping(AbstractCallback):
    """Stop when the objective (`driver.objective`, the energy for VMC) has not
    improved by more than `min_delta` for `patience` accepted steps."""

    def __init__(self, patience: int = 100, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.since = math.inf, 0

    def __call__(self, driver, state, record):
        if not accepted(record):
            return None
        value = record[driver.objective]
        if value < self.best - self.min_delta:
            self.best, self.since = value, 0
        else:
            self.since += 1
        if self.since >= self.patience:
            return False


class ProgressBar(AbstractCallback):
    """Progress of a run: a live rich bar on a terminal, plain text lines otherwise.

    When the console is not a terminal (a pipe, `| tee`, a CI log, a batch job),
    one line is printed every `every` steps (and at the last step) with the step,
    the energy and its error, the relative error when the exact energy is known,
    the seconds per step and the estimated time left, e.g.
    `step 40/300  E = -20.3911 ± 0.0021  rel.err 6.7e-04  σ² = 0.061  acc 0.47  R̂ 1.002  0.052 s/step  ETA 14 s`.

    **Arguments:**

    - `n_steps`: total number of steps of the run (for the bar and the ETA).
    - `exact`: exact energy for the relative error (default: the driver's).
    - `console`: a `rich.console.Console` (default: a new one on stdout).
    - `every`: steps between plain lines; default about 20 lines per run.
    - `plain`: force plain lines (`True`) or the live bar (`False`); default:
      plain exactly when the console is not a terminal.
    """

    def __init__(self, n_steps: int | None = None, exact: float | None = None, console=None,
                 every: int | None = None, plain: bool | None = None):
        self.n_steps, self.exact, self.console = n_steps, exact, console
        if every is not None and int(every) < 1:
            raise ValueError(f"ProgressBar every must be >= 1, got {every}")
        self.every, self.plain = every, plain
        self._progress = None
        self._last_time = self._last_step = None

    def on_start(self, driver, state, n_steps):
        if self.console is None:
            self.console = Console()
        self._total = n_steps if n_steps is not None else self.n_steps
        plain = self.plain if self.plain is not None else not self.console.is_terminal
        self._last_time, self._last_step = time.perf_counter(), int(state.step)
        if plain:
            left = max(1, (self._total or 0) - int(state.step))
            self._every = int(self.every) if self.every is not None else max(1, round(left / 20))
            return
        self._progress = Progress(
            TextColumn(f"[bold]{driver.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[energy]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(driver.label.lower(), total=n_steps, completed=int(state.step), energy="")

    def __call__(self, driver, state, record):
        exact = self.exact if self.exact is not None else driver.exact_energy
        step = int(state.step)
        if "rejected" in record:  # always shown, and never as if it were a result
            self.console.print(_format_rejected(record, self._total), highlight=False, markup=False, soft_wrap=True)
            return
        if record.get("unhealthy") and record["unhealthy"] != getattr(self, "_warned", None):
            # [run] on_unhealthy = "warn": shown once per kind of trouble
            self._warned = record["unhealthy"]
            self.console.print(
                f"warning: step {record['step']}: {record['unhealthy']} (on_unhealthy = 'warn': the run goes on)",
                highlight=False, markup=False, soft_wrap=True,
            )
        if self._progress is not None:
            self._progress.update(self._task, completed=step, energy=_format_record(record, driver.objective, exact))
            return
        if step % self._every and step != self._total:
            return
        now = time.perf_counter()
        per_step = (now - self._last_time) / max(1, step - self._last_step)
        self._last_time, self._last_step = now, step
        total = f"/{self._total}" if self._total else ""
        line = f"step {step}{total}  {_format_record(record, driver.objective, exact)}  {per_step:.3g} s/step"
        if "update_scale" in record:  # a retry after a rejected step
            line += f"  (retry: update x {record['update_scale']:.3g})"
        if self._total and self._total > step:
            line += f"  ETA {_format_seconds(per_step * (self._total - step))}"
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def on_end(self, driver, state):
        if self._progress is not None:
            self._progress.stop()


def _format_rejected(record: dict[str, Any], total: int | None) -> str:
    """The progress line of a step the divergence guard rejected, e.g.
    `step 9/300 rejected (attempt 1): the energy variance jumped ...; retrying`."""
    where = f"step {record['step'] + 1}" + (f"/{total}" if total else "")
    line = f"{where} rejected (attempt {record.get('attempt', 1)}): {record['rejected']}"
    if "update_scale" in record:
        line += f"; the update was scaled by {record['update_scale']:.3g}"
    return line + ("; the run stops" if "diverged" in record else "; retrying")


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _format_record(record: dict[str, Any], objective: str, exact: float | None) -> str:
    """The objective of a record for the progress bar: `E = ... ± ...` (and the
    relative error, the variance, the acceptance) for a sampled energy, else
    `<objective> = <value>` (and the relative error when `exact` is known)."""
    if objective != "energy" or "energy_error" not in record:
        value = record[objective]
        s = f"{objective} = {value:.10g}"
        if exact is not None and exact != 0 and math.isfinite(value):
            s += f"  rel.err {abs((value - exact) / exact):.1e}"
        return s
    return _format_energy(record, exact)


def _format_energy(record: dict[str, Any], exact: float | None) -> str:
    d = _digits(record["energy_error"])
    s = f"E = {record['energy']:.{d}f} ± {record['energy_error']:.{d}f}"
    if exact is not None and exact != 0:
        s += f"  rel.err {abs((record['energy'] - exact) / exact):.1e}"
    s += f"  σ² = {record['variance']:.3g}"
    if "acceptance" in record:
        s += f"  acc {record['acceptance']:.2f}"
    if "R_hat" in record:  # nan when undefined (frozen chains), never 0
        r = record["R_hat"]
        s += f"  R̂ {r:.3f}" if not math.isfinite(r) or r < 100 else f"  R̂ {r:.2g}"
    return s
