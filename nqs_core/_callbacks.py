"""Callbacks run by the driver after every step."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

from ._io import LOG_FILE, save_run_state


class JsonlLog:
    """Append one JSON record per step to `run_dir/log.jsonl` (energy, error,
    variance, tau, R-hat, acceptance, step time, ...). Flushed every step."""

    def __init__(self, run_dir):
        self.path = pathlib.Path(run_dir) / LOG_FILE
        self._f = None

    def on_start(self, driver, state, n_steps):
        self._f = open(self.path, "a")

    def __call__(self, driver, state, record):
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def on_end(self, driver, state):
        if self._f:
            self._f.close()
            self._f = None


class Checkpoint:
    """Save the full run state every `every` steps and at the end of the run."""

    def __init__(self, run_dir, every: int = 50):
        self.run_dir = pathlib.Path(run_dir)
        self.every = int(every)
        if self.every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {every}")
        self._healthy = True

    def save(self, state):
        save_run_state(self.run_dir, state)

    def __call__(self, driver, state, record):
        # a step whose energy is not finite has produced parameters that are
        # not worth keeping: from then on the last good checkpoint stays
        self._healthy = self._healthy and math.isfinite(record["energy"]) and math.isfinite(record["variance"])
        if self._healthy and int(state.step) % self.every == 0:
            self.save(state)

    def on_end(self, driver, state):
        if self._healthy:
            self.save(state)


class NaNGuard:
    """Stop the run when the energy or its variance is not finite (the last
    good checkpoint stays on disk)."""

    def __init__(self):
        self.tripped_at: int | None = None

    def __call__(self, driver, state, record):
        if not (math.isfinite(record["energy"]) and math.isfinite(record["variance"])):
            self.tripped_at = record["step"]
            return False


class EarlyStopping:
    """Stop when the energy has not improved by more than `min_delta` for
    `patience` steps."""

    def __init__(self, patience: int = 100, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.since = math.inf, 0

    def __call__(self, driver, state, record):
        if record["energy"] < self.best - self.min_delta:
            self.best, self.since = record["energy"], 0
        else:
            self.since += 1
        if self.since >= self.patience:
            return False


class ProgressBar:
    """A live rich progress bar showing the energy, its error and the acceptance."""

    def __init__(self, n_steps: int | None = None, exact: float | None = None, console=None):
        self.n_steps, self.exact, self.console = n_steps, exact, console
        self._progress = None

    def on_start(self, driver, state, n_steps):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]VMC"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[energy]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("vmc", total=n_steps, completed=int(state.step), energy="")

    def __call__(self, driver, state, record):
        text = _format_energy(record, self.exact if self.exact is not None else driver.exact_energy)
        self._progress.update(self._task, completed=int(state.step), energy=text)

    def on_end(self, driver, state):
        if self._progress is not None:
            self._progress.stop()


def _format_energy(record: dict[str, Any], exact: float | None) -> str:
    from ._stats import _digits

    d = _digits(record["energy_error"])
    s = f"E = {record['energy']:.{d}f} ± {record['energy_error']:.{d}f}  σ² = {record['variance']:.3g}"
    if "acceptance" in record:
        s += f"  acc = {record['acceptance']:.2f}"
    if exact is not None and exact != 0:
        s += f"  rel.err = {abs((record['energy'] - exact) / exact):.1e}"
    return s
