"""Running a configured calculation into a run directory, and resuming it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
from typing import Any

import numpy as np

from ._callbacks import AbstractCallback, Checkpoint, JsonlLog, NaNGuard, ProgressBar
from ._config import ConfigError, build
from ._toml import apply_overrides, load_config, loads_config, resolved_toml
from ._distributed import is_root, n_ranks, python_comm
from ._io import (
    CHECKPOINT_FILE, CHECKPOINT_META, CONFIG_FILE, LOG_FILE, RESULT_FILE, append_log, load_parameters, load_run_state,
    read_log, strict_json, truncate_log, write_text,
)
from ._observable import ObservableLog, stats_dict
from ._crosscheck import exact_crosscheck
from ._stats import Stats
from ._validate import check_int

DEFAULT_CONFIG = """\
# nqs default problem: transverse-field Ising chain, L = 16, h = J = 1, periodic,
# real RBM (alpha = 1) optimised with stochastic reconfiguration.
# Exact ground state (Pauli units): -20.4045944748.

[run]
n_steps = 300
seed = 1

[lattice]
name = "chain"
length = 16
pbc = true

[space]
name = "spin_half"

[system]
name = "ising"
J = 1.0
h = 1.0

[ansatz]
name = "rbm"
alpha = 1
param_dtype = "float64"

[sampler]
name = "metropolis_local"
n_samples = 1024
n_chains = 16

[preconditioner]
name = "sr"
diag_shift = 0.01

[optimizer]
name = "sgd"
learning_rate = 0.05
"""


def default_config() -> dict[str, Any]:
    """The built-in default problem (what `nqs run` runs with no file)."""
    return loads_config(DEFAULT_CONFIG)


@dataclasses.dataclass
class RunResult:
    """Outcome of `run` / `resume`."""

    run_dir: pathlib.Path
    energy: Stats | None
    exact_energy: float | None
    state: Any
    calculation: Any
    stopped_early: bool = False
    #: why the run stopped early (a divergence the retries did not cure), else `None`
    stop_reason: str | None = None
    #: the `[observables]` measured on the final evaluation samples: name -> `Stats`
    observables: dict[str, Stats] = dataclasses.field(default_factory=dict)
    #: the exact cross-check (`nqs_core._crosscheck.exact_crosscheck`): `status`
    #: "agrees" / "disagrees" / "skipped: <reason>", and both numbers
    exact_check: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: sampling health of the last step and of the final estimate (`result.json` "health")
    health: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def failed_exact_check(self) -> bool:
        """Whether the result disagrees with the exact sum and `[run] exact_check = "error"`."""
        return self.exact_check.get("status") == "disagrees" and self.calculation.run.get("exact_check", "error") == "error"

    @property
    def relative_error(self) -> float | None:
        if self.energy is None or self.exact_energy in (None, 0):
            return None
        return abs((float(self.energy.mean.real) - self.exact_energy) / self.exact_energy)


#: `[table] field`s that `resume(..., overrides=...)` may change between stages
#: of a run: they change how it continues, not what the checkpoint holds.
RESUME_FIELDS = (
    "run.n_steps", "run.checkpoint_every", "run.n_eval_batches", "run.divergence_factor", "run.max_r_hat",
    "run.max_retries", "run.retry_scale", "run.max_memory_gb", "optimizer.learning_rate", "preconditioner.diag_shift",
    "run.blowup_factor", "run.max_frozen_fraction", "run.on_unhealthy", "run.exact_check", "run.exact_check_max_states",
    "driver.learning_rate",
)


def _new_run_dir(calc) -> pathlib.Path:
    out = pathlib.Path(calc.run["output"])
    what = calc.config["system"]["name"] if "system" in calc.config else calc.config["driver"]["name"]
    name = calc.run["name"] or f"{what}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = out / name
    i = 1
    while run_dir.is_dir() and any(run_dir.iterdir()):
        run_dir = out / f"{name}-{i}"
        i += 1
    return run_dir


def _make_dir(run_dir: pathlib.Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".nqs-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run directory {run_dir}: {exc.strerror or exc}; choose another output "
            "(--output or [run] output)"
        ) from None


def _check_driver(calc) -> None:
    """Refuse what the configured driver cannot do, before anything is written."""
    driver = calc.driver
    name = calc.config["driver"]["name"]
    if calc.observables and not driver.measures_observables:
        raise ConfigError(f"the {name} driver does not measure [observables]; remove the [observables] tables")
    if n_ranks() > 1 and not driver.distributed:
        raise ConfigError(f"the {name} driver runs in one process; start it without mpirun")


def _check_steps(calc) -> None:
    try:
        calc.driver.check_steps(calc.run["n_steps"])
    except ValueError as exc:
        raise ConfigError(f"[run] {exc}") from None


def _initial_state(calc):
    """The state a fresh run starts from (parameters from `[run] init_from` if set)."""
    params = None
    if calc.run["init_from"]:
        try:
            params = load_parameters(calc.run["init_from"], calc.driver.parameters())
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"[run] init_from: {exc}") from None
    key = calc.driver.run_key(calc.run["seed"])
    try:
        return calc.driver.init(key) if params is None else calc.driver.init(key, params=params)
    except (TypeError, ValueError) as exc:  # e.g. a sampler that does not fit the ansatz
        raise ConfigError(f"cannot start the run: {exc}") from None


def run(config: dict[str, Any], run_dir=None, progress: bool = True, console=None, n_steps: int | None = None) -> RunResult:
    """Build the calculation in `config`, run it into a fresh run directory
    (`config.toml`, `log.jsonl`, checkpoints, `result.json`) and return the
    final energy estimate. `n_steps` overrides `[run] n_steps`.

    Everything that can fail before the first step (the build, `init_from`,
    the initial state, the run directory) is checked before anything is
    written; a run that fails before its first step leaves nothing behind."""
    calc = build(config)
    _check_driver(calc)
    if n_steps is not None:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = check_steps(n_steps)
    _check_steps(calc)
    state = _initial_state(calc)  # before anything is written
    # under MPI only rank 0 touches the run directory
    error, created = None, False
    if is_root():
        if run_dir is None:
            run_dir = _new_run_dir(calc)
        run_dir = pathlib.Path(run_dir)
        if (run_dir / LOG_FILE).exists() or (run_dir / CHECKPOINT_META).exists():
            error = f"run directory {run_dir} already holds a run; continue it with `nqs resume {run_dir}` or choose another output"
        elif run_dir.exists() and not run_dir.is_dir():
            error = f"the output {run_dir} is a file, not a directory; choose another output (--output or [run] output)"
        else:
            created = not run_dir.exists()
            try:
                _make_dir(run_dir)
            except ConfigError as exc:
                error = str(exc)
    comm = python_comm()
    if comm is not None:
        run_dir, error = comm.bcast((run_dir, error), root=0)
    if error:
        raise ConfigError(error)
    run_dir = pathlib.Path(run_dir)
    if is_root():
        write_text(run_dir / CONFIG_FILE, resolved_toml(calc))
    try:
        return _continue(calc, run_dir, state, progress, console)
    except BaseException:
        if is_root() and not read_log(run_dir, events=True):
            # failed before its first step was logged: the directory was checked to
            # hold no run, so any checkpoint in it is this run's initial state
            _remove_run(run_dir, created)
        raise


def _remove_run(run_dir: pathlib.Path, created: bool) -> None:
    for name in (CONFIG_FILE, LOG_FILE, CHECKPOINT_META, CHECKPOINT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if created:
        try:
            run_dir.rmdir()
        except OSError:  # something else is in it: leave it
            pass


def check_steps(n_steps) -> int:
    """A requested total number of steps as an `int` >= 0 (else `ConfigError`;
    0 steps: only the final evaluation)."""
    try:
        return check_int("n_steps", n_steps, minimum=0)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{exc} (the total number of steps of the run)") from None


def resume(run_dir, n_steps: int | None = None, progress: bool = True, console=None, overrides: list[str] | None = None) -> RunResult:
    """Continue the run in `run_dir` from its last checkpoint up to `n_steps`
    (default: the `n_steps` of its config). The trajectory equals that of an
    uninterrupted run: parameters, optimizer, sampler chains and keys are all
    restored, and the log is cut back to the checkpoint.

    `overrides` (`table.field=value`, see `RESUME_FIELDS`) change how the run
    continues (learning rate, diagonal shift, steps, ...); they are written to
    `config.toml` and recorded in the log as an event. A run killed before its
    first checkpoint starts again from step 0. The checkpoint is read and
    verified before anything in the run directory is rewritten.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"not a run directory: {run_dir}")
    if not (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"not a run directory (no {CONFIG_FILE}): {run_dir}")
    overrides = list(overrides or [])
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or key not in RESUME_FIELDS:
            raise ConfigError(
                f"resume --set {item!r}: only these fields may change between stages of a run: {', '.join(RESUME_FIELDS)}"
            )
    config = apply_overrides(load_config(run_dir / CONFIG_FILE), overrides)
    calc = build(config)
    _check_driver(calc)
    if n_steps is not None:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = check_steps(n_steps)
    _check_steps(calc)
    if (run_dir / CHECKPOINT_META).exists() or (run_dir / CHECKPOINT_FILE).exists():
        like = calc.driver.init(calc.driver.run_key(calc.run["seed"]))
        try:
            state, meta = load_run_state(run_dir, like)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        step = int(meta["step"])
    else:  # killed before its first checkpoint: start again (the same trajectory)
        state, step = _initial_state(calc), 0
    # verified: from here on the run directory may change
    if is_root():
        for tmp in run_dir.glob(".*.tmp"):  # a write that a kill interrupted (see atomic_write)
            tmp.unlink()
        truncate_log(run_dir, step)
        if overrides or n_steps is not None:
            write_text(run_dir / CONFIG_FILE, resolved_toml(calc))
        if overrides:
            append_log(run_dir, {"step": step, "event": "resume", "set": dict(o.split("=", 1) for o in overrides)})
    return _continue(calc, run_dir, state, progress, console)


def _continue(calc, run_dir, state, progress, console) -> RunResult:
    driver = calc.driver
    n_steps = calc.run["n_steps"]
    guard = NaNGuard()
    last = _LastRecord()
    callbacks = [Checkpoint(run_dir, calc.run["checkpoint_every"]), guard, last]  # collective: every rank
    if is_root():
        callbacks.insert(0, JsonlLog(run_dir))
        if progress:
            callbacks.append(ProgressBar(n_steps, console=console))
    if calc.observables and calc.run["observe_every"] > 0:  # before JsonlLog: it adds to the record
        callbacks.insert(0, ObservableLog(calc.observables, calc.run["observe_every"]))
    if not hasattr(driver, "divergence") and hasattr(driver, "blowup_factor"):  # drivers without a jitted guard
        driver.blowup_factor = calc.run["blowup_factor"]
    state = driver.run(state, n_steps, callbacks)
    energy, observed = None, {}
    if calc.run["n_eval_batches"] > 0 and guard.tripped_at is None:
        # the energy and the observables on the same final samples (exact for a full_sum run)
        energy, observed, _ = driver.measure(state, calc.observables, calc.run["n_eval_batches"])
    exact = driver.exact_energy
    health = _final_health(last.record, energy, calc.run)
    stop_reason = guard.reason
    if stop_reason is None and health.get("final_r_hat_exceeds"):
        stop_reason = health["final_r_hat_exceeds"]
    stopped = stop_reason is not None
    check: dict[str, Any] = {}
    if energy is not None and not stopped:
        if calc.run["exact_check"] == "off":
            check = {"status": "skipped: [run] exact_check = 'off'"}
        else:
            check = exact_crosscheck(driver, state, energy, calc.observables, observed, calc.run["exact_check_max_states"])
    elif energy is None and not stopped:
        check = {"status": "skipped: no final estimate (n_eval_batches = 0)"}
    else:
        check = {"status": "skipped: the run stopped early"}
    result = RunResult(
        run_dir, energy, exact, state, calc, stopped_early=stopped, stop_reason=stop_reason, observables=observed,
        exact_check=check, health=health,
    )
    payload = {"step": int(state.step), "exact_energy": exact, "stopped_at_nan": guard.tripped_at, "stop_reason": stop_reason}
    if energy is not None:
        payload[driver.objective] = energy.to_dict()  # "energy" for VMC
        payload["relative_error"] = result.relative_error
    if observed:
        payload["observables"] = {k: stats_dict(v, calc.observables[k]) for k, v in observed.items()}
    payload["health"] = health
    payload["exact_check"] = check
    if guard.tripped_at is None:
        payload.update(driver.summary(state))
    if is_root():
        write_text(run_dir / RESULT_FILE, json.dumps(strict_json(payload), indent=1, allow_nan=False))
    return result


#: Health numbers of a log record copied into `result.json` "health".
_HEALTH_KEYS = (
    "acceptance", "acceptance_min", "frozen_fraction", "n_distinct", "zero_variance", "offdiag_weight", "psi_weight", "R_hat",
    "param_norm", "unhealthy",
)


class _LastRecord(AbstractCallback):
    """Callback keeping the last log record of a run (for `result.json` "health")."""

    def __init__(self):
        self.record: dict[str, Any] | None = None

    def __call__(self, driver, state, record):
        self.record = record


def _final_health(record, energy, run) -> dict[str, Any]:
    """`result.json` "health": the last step's numbers (`last_step`) and the
    final estimate's R-hat, with `final_r_hat_exceeds` (a stop reason) when it
    is above `[run] max_r_hat`."""
    out: dict[str, Any] = {}
    if record is not None:
        out["last_step"] = {"step": record.get("step"), **{k: record[k] for k in _HEALTH_KEYS if k in record}}
    if energy is not None:
        r = float(np.asarray(energy.R_hat).real) if np.ndim(energy.R_hat) == 0 else float("nan")
        out["final_r_hat"] = r if math.isfinite(r) else None
        if math.isfinite(r) and r > run["max_r_hat"]:
            out["final_r_hat_exceeds"] = (
                f"the final estimate's R-hat = {r:.4g} is above max_r_hat = {run['max_r_hat']:g}: the chains disagree"
            )
    return out
