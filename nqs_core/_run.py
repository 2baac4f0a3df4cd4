"""Running a configured calculation into a run directory, and resuming it."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import pathlib
from typing import Any

import numpy as np

from . import _signals
from ._callbacks import AbstractCallback, Checkpoint, JsonlLog, NaNGuard, ProgressBar, SignalStop
from ._config import ConfigError, build, resolve_exact_energy
from ._toml import apply_overrides, load_config, loads_config, resolved_toml
from ._distributed import check_launch, is_root, n_ranks, python_comm
from ._io import (
    CHECKPOINT_FILE, CHECKPOINT_META, CONFIG_FILE, LOG_FILE, RESULT_FILE, append_log, check_run_files, load_parameters,
    load_run_state, read_log, strict_json, truncate_log, write_text,
)
from ._lock import LOCK_FILE, RunLock, lock_note
from ._observable import ObservableLog, stats_dict
from ._crosscheck import exact_crosscheck
from ._driver import earlier_layouts
from ._driver_protocol import AbstractSamplingDriver
from ._stats import Stats
from ._validate import check_int
from ._vscore import system_v_score_inputs, v_score

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
    #: the infinite-temperature energy `Tr H / dim` (`nqs_core.infinite_temperature_energy`), `None` where
    #: the system has none (`v_score_note` says why)
    e_inf: float | None = None
    #: the V-score `N Var(E) / (E - E_inf)^2` of the final estimate (`nqs_core.v_score`), or `None`
    v_score: float | None = None
    #: why `v_score` is `None` (no final estimate, a continuum system, ...), else `None`
    v_score_note: str | None = None
    #: what `result.json` holds (the JSON-ready payload; `nqs run --json` prints it)
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)

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
    "driver.learning_rate", "driver.t_end",
)


#: `[run]` fields that are part of a run's physics fingerprint (the others say
#: how it runs: steps, output, checks, references, limits).
PHYSICS_RUN_FIELDS = ("seed",)


def physics(config: dict[str, Any]) -> dict[str, Any]:
    """The physics of a resolved config as flat `table.field` -> value: every
    component table (lattice, space, system, ansatz, sampler, estimator,
    preconditioner, optimizer, driver, nested tables flattened) and `[run] seed`,
    but not the fields that `resume --set` may change (`RESUME_FIELDS`), the
    other `[run]` fields (steps, output, checks, references) or the
    `[observables]` (what is measured, not the state)."""
    flat: dict[str, Any] = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif value is not None and prefix not in RESUME_FIELDS:
            flat[prefix] = list(value) if isinstance(value, tuple) else value

    for table, value in config.items():
        if table == "run":
            for k in PHYSICS_RUN_FIELDS:
                if k in value:
                    walk(f"run.{k}", value[k])
        elif table != "observables":
            walk(table, value)
    return json.loads(json.dumps(flat, sort_keys=True, default=str))  # as it reads back from JSON


def fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint meta fields that fingerprint the physics of `config`
    (see `physics`): `{"physics": {...}, "fingerprint": sha256}`."""
    flat = physics(config)
    digest = hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()
    return {"physics": flat, "fingerprint": digest}


def check_physics(run_dir, config: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Refuse (`ConfigError`, one line naming the fields) a resolved `config`
    whose physics differs from that fingerprinted in the checkpoint of
    `run_dir` (its `config.toml` was edited after the run). Fields under a
    prefix in `ignore` are not compared (what `nqs measure` replaces); a field
    on one side only (added or removed by another nqs version) is not either.
    A checkpoint without a fingerprint (nqs before 0.x) is not checked."""
    try:
        meta = json.loads((pathlib.Path(run_dir) / CHECKPOINT_META).read_text())
        stored = meta["physics"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no checkpoint, an old one, or a damaged one (reported when it is loaded)
    if not isinstance(stored, dict):
        return
    now = physics(config)
    changed = sorted(
        k for k in set(stored) & set(now)
        if stored[k] != now[k] and not any(k == p or k.startswith(p + ".") for p in ignore)
    )
    if changed:
        shown = ", ".join(f"{k} = {_short(stored[k])} -> {_short(now[k])}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ConfigError(
            f"{pathlib.Path(run_dir) / CONFIG_FILE} was edited after the run: {shown}{more} (the checkpoint was made "
            f"with the old values); undo the edit, or start a new run (`nqs run`, with [run] init_from = \"{run_dir}\" "
            "to start from these parameters)"
        )


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_name(calc) -> None:
    """`[run] name` is one directory name inside `[run] output`: no path separators, no `..`."""
    name = calc.run["name"]
    if not isinstance(name, str):
        raise ConfigError(f"[run] name must be a directory name (a string), got {name!r}")
    if name and (name in (".", "..") or "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name)
                 or "\0" in name or pathlib.PurePath(name).is_absolute()):
        raise ConfigError(
            f"[run] name {name!r} must be one directory name inside [run] output (no '/', no '..'); "
            "set [run] output (or --output) to choose the folder"
        )
    if not isinstance(calc.run["output"], str):
        raise ConfigError(f"[run] output must be a folder (a string), got {calc.run['output']!r}")


def _new_run_dir(calc) -> pathlib.Path:
    """A fresh run directory `output/name` (`output/name-1`, ... when taken),
    created here, atomically: two runs started at the same second get two."""
    out = pathlib.Path(calc.run["output"])
    what = calc.config["system"]["name"] if "system" in calc.config else calc.config["driver"]["name"]
    name = calc.run["name"] or f"{what}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    _make_dir(out)
    run_dir, i = out / name, 1
    while True:
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(
                f"cannot make the run directory {run_dir}: {exc.strerror or exc}; choose another output "
                "(--output or [run] output)"
            ) from None
        run_dir, i = out / f"{name}-{i}", i + 1


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


def _claim(run_dir: pathlib.Path, created: bool) -> RunLock:
    """Lock the run directory a new run writes into, then check that it holds
    nothing nqs did not create: `run` writes only into a new or empty directory."""
    if not (run_dir / LOCK_FILE).exists():  # (else another nqs run may hold it: say so)
        _check_empty(run_dir)  # before the lock file is made
    lock = RunLock(run_dir, "nqs run").acquire()
    try:
        _check_empty(run_dir)  # again under the lock: another run may have begun meanwhile
    except ConfigError:
        lock.release()
        raise
    lock_note(lock)
    return lock


def _check_empty(run_dir: pathlib.Path) -> None:
    try:
        others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read the run directory {run_dir}: {exc.strerror or exc}") from None
    if others:
        if any(n in others for n in (LOG_FILE, CHECKPOINT_META, CHECKPOINT_FILE)):
            raise ConfigError(f"run directory {run_dir} already holds a run; continue it with `nqs resume {run_dir}` or choose another output")
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(
            f"the output {run_dir} is not empty (it holds {shown}); nqs run writes only into a new or empty "
            "directory: choose another --output (or [run] output / name)"
        )


def _check_driver(calc) -> None:
    """Refuse what the configured driver cannot do, before anything is written."""
    driver = calc.driver
    name = calc.config["driver"]["name"]
    if calc.observables and not isinstance(driver, AbstractSamplingDriver):
        raise ConfigError(f"the {name} driver does not measure [observables]; remove the [observables] tables")
    if n_ranks() > 1 and not driver.distributed:
        raise ConfigError(f"the {name} driver runs in one process; start it without mpirun")


def _check_steps(calc, given: bool = True) -> None:
    """Refuse a number of steps the driver cannot run; a driver whose fields
    imply the number (`implied_steps`) sets it when it was not `given`."""
    implied = calc.driver.implied_steps()
    if implied is not None and not given:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = implied
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
    written; a run that fails before its first step leaves nothing behind.

    The run directory must be new or empty (files that nqs did not write are
    never overwritten); it is locked (`nqs.lock`) while the run writes it.
    SIGINT / SIGTERM stop the run at the next step boundary with a checkpoint
    and raise `RunInterrupted`."""
    check_launch()
    calc = build(config)
    _check_name(calc)
    _check_driver(calc)
    resolve_exact_energy(calc)  # after the build: the build runs no physics
    if n_steps is not None:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = check_steps(n_steps)
    _check_steps(calc, given=n_steps is not None or "n_steps" in (config.get("run") or {}))
    with _signals.catch_signals(run_dir):
        # under MPI only rank 0 touches the run directory (and holds its lock)
        error, created, lock = None, False, None
        if is_root():
            try:
                if run_dir is None:
                    run_dir, created = _new_run_dir(calc), True
                else:
                    run_dir = pathlib.Path(run_dir)
                    if run_dir.exists() and not run_dir.is_dir():
                        raise ConfigError(f"the output {run_dir} is a file, not a directory; choose another output (--output or [run] output)")
                    created = not run_dir.exists()
                    _make_dir(run_dir)
                lock = _claim(run_dir, created)
            except ConfigError as exc:
                error = str(exc)
                if created and run_dir is not None:
                    with contextlib.suppress(OSError):
                        pathlib.Path(run_dir).rmdir()
        comm = python_comm()
        if comm is not None:
            run_dir, error = comm.bcast((run_dir, error), root=0)
        if error:
            raise ConfigError(error)
        run_dir = pathlib.Path(run_dir)
        _signals.set_run_dir(run_dir)
        try:
            state = _initial_state(calc)  # before anything is written
            if is_root():
                write_text(run_dir / CONFIG_FILE, resolved_toml(calc))
            return _continue(calc, run_dir, state, progress, console)
        except BaseException:
            if is_root() and not _logged(run_dir):
                # failed before its first step was logged: the directory was checked to
                # hold nothing else, so any checkpoint in it is this run's initial state
                _remove_run(run_dir, created, lock)
            raise
        finally:
            if lock is not None:
                lock.release()


def _logged(run_dir) -> bool:
    try:
        return bool(read_log(run_dir, events=True))
    except ValueError:  # a damaged log: something was logged
        return True


def _remove_run(run_dir: pathlib.Path, created: bool, lock: RunLock | None = None) -> None:
    """Remove what a run that failed before its first step wrote (under its
    lock, released here), and the directory if the run made it."""
    for name in (CONFIG_FILE, LOG_FILE, CHECKPOINT_META, CHECKPOINT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if lock is not None:
        lock.release()
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
    check_launch()
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"not a run directory: {run_dir}")
    check_run_files(run_dir)  # symbolic links are refused, not followed
    if not (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"not a run directory (no {CONFIG_FILE}): {run_dir}")
    if _meta_kind(run_dir) == "variational_state":  # written by VariationalState.save: parameters only
        raise ConfigError(
            f"{run_dir} holds a variational state saved from Python, not a run, so it cannot be resumed; "
            f"start a run from its parameters with [run] init_from = \"{run_dir}\""
        )
    overrides = list(overrides or [])
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or key not in RESUME_FIELDS:
            raise ConfigError(
                f"resume --set {item!r}: only these fields may change between stages of a run: {', '.join(RESUME_FIELDS)}"
            )
    if n_steps is not None and any(o.split("=", 1)[0].strip() == "run.n_steps" for o in overrides):
        raise ConfigError("resume: --steps and --set run.n_steps both set the number of steps; give one of them")
    with _signals.catch_signals(run_dir), _locked(run_dir, "nqs resume"):
        config = apply_overrides(load_config(run_dir / CONFIG_FILE), overrides)
        calc = build(config)
        _check_driver(calc)
        resolve_exact_energy(calc)
        if n_steps is not None:
            calc.config["run"]["n_steps"] = calc.run["n_steps"] = check_steps(n_steps)
        steps_set = n_steps is not None or any(o.split("=", 1)[0].strip() == "run.n_steps" for o in overrides)
        _check_steps(calc, given=steps_set)
        check_physics(run_dir, calc.config)
        if (run_dir / CHECKPOINT_META).exists() or (run_dir / CHECKPOINT_FILE).exists():
            like = calc.driver.init(calc.driver.run_key(calc.run["seed"]))
            state, meta = _load_checkpoint_any_layout(run_dir, like)
            step = int(meta["step"])
        else:  # killed before its first checkpoint: start again (the same trajectory)
            state, step = _initial_state(calc), 0
        if calc.run["n_steps"] < step:
            asked = f"--steps {n_steps}" if n_steps is not None else f"n_steps = {calc.run['n_steps']}"
            raise ConfigError(
                f"resume {asked}: the run has already completed {step} steps (its checkpoint); ask for at least {step} "
                "(a run cannot go back; start a new one for fewer steps)"
            )
        if is_root():
            try:
                read_log(run_dir, events=True)
            except ValueError as exc:
                raise ConfigError(
                    f"{exc}; the checkpoint (step {step}) is intact: delete or repair that line (or move "
                    f"{run_dir / LOG_FILE} aside to start a new log) and resume again"
                ) from None
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


def _meta_kind(run_dir: pathlib.Path) -> str | None:
    """The `kind` of a checkpoint's meta (`"variational_state"` for `VariationalState.save`), else `None`."""
    try:
        meta = json.loads((run_dir / CHECKPOINT_META).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


@contextlib.contextmanager
def _locked(run_dir: pathlib.Path, command: str):
    """Hold the run directory's lock (rank 0 only under MPI; the others learn whether it was taken)."""
    lock, error = None, None
    if is_root():
        try:
            lock = RunLock(run_dir, command).acquire()
            lock_note(lock)
        except ConfigError as exc:
            error = str(exc)
    comm = python_comm()
    if comm is not None:
        error = comm.bcast(error, root=0)
    if error:
        raise ConfigError(error)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


def _load_checkpoint_any_layout(run_dir, like):
    """`load_run_state` in the layout of `like`, else in a layout that an earlier
    nqs version wrote (`earlier_layouts`: checkpoints of nqs 0.2.0 resume);
    `ConfigError` with the first error if none fits."""
    try:
        return load_run_state(run_dir, like)
    except ValueError as exc:
        first = exc
    for older in earlier_layouts(like):
        try:
            return load_run_state(run_dir, older)
        except ValueError:
            continue
    raise ConfigError(str(first)) from None


def _continue(calc, run_dir, state, progress, console) -> RunResult:
    driver = calc.driver
    n_steps = calc.run["n_steps"]
    guard = NaNGuard()
    last = _LastRecord()
    # collective: every rank; the checkpoint's meta fingerprints the physics (see check_physics)
    callbacks = [Checkpoint(run_dir, calc.run["checkpoint_every"], meta=fingerprint(calc.config)), guard, last, SignalStop()]
    if is_root():
        callbacks.insert(0, JsonlLog(run_dir))
        if progress:
            callbacks.append(ProgressBar(n_steps, console=console))
    in_steps = isinstance(driver, AbstractSamplingDriver) and driver.observe(calc.observables)
    if calc.observables and calc.run["observe_every"] > 0 and not in_steps:  # before JsonlLog: it adds to the record
        callbacks.insert(0, ObservableLog(calc.observables, calc.run["observe_every"]))
    e_inf, n_sites, v_note = system_v_score_inputs(getattr(driver, "system", None))
    callbacks.insert(0, _VScoreLog(e_inf, n_sites, driver.objective))  # before JsonlLog: it adds to the record
    if not driver.own_guard:  # drivers without a jitted guard: the default loop's BlowUpWatch
        driver.blowup_factor = calc.run["blowup_factor"]
    state = driver.run(state, n_steps, callbacks)
    _signals.end_steps(int(state.step))  # SIGTERM / SIGINT stopped the run: RunInterrupted after the checkpoint
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
    score = None
    if energy is not None and e_inf is not None and driver.objective == "energy":
        score = v_score(np.asarray(energy.mean), np.asarray(energy.variance), e_inf, n_sites)
        if score is None:
            v_note = "E equals E_inf or a number is not finite"
    elif v_note is None:
        v_note = "no final energy estimate" if energy is None else f"the driver minimises the {driver.objective}, not the energy"
    result = RunResult(
        run_dir, energy, exact, state, calc, stopped_early=stopped, stop_reason=stop_reason, observables=observed,
        exact_check=check, health=health, e_inf=e_inf, v_score=score, v_score_note=None if score is not None else v_note,
    )
    payload = {"step": int(state.step), "exact_energy": exact, "stopped_at_nan": guard.tripped_at, "stop_reason": stop_reason}
    if energy is not None:
        payload[driver.objective] = energy.to_dict()  # "energy" for VMC
        payload["relative_error"] = result.relative_error
    payload["e_inf"] = e_inf
    payload["v_score"] = score
    if score is None:
        payload["v_score_note"] = result.v_score_note
    if observed:
        payload["observables"] = {k: stats_dict(v, calc.observables[k]) for k, v in observed.items()}
    payload["health"] = health
    payload["exact_check"] = check
    if guard.tripped_at is None:
        payload.update(driver.summary(state))
    result.payload = strict_json(payload)
    if is_root():
        write_text(run_dir / RESULT_FILE, json.dumps(result.payload, indent=1, allow_nan=False))
    return result


#: Health numbers of a log record copied into `result.json` "health".
_HEALTH_KEYS = (
    "acceptance", "acceptance_min", "frozen_fraction", "n_distinct", "zero_variance", "offdiag_weight", "psi_weight", "R_hat",
    "param_norm", "unhealthy",
)


class _VScoreLog(AbstractCallback):
    """Callback adding the step's V-score (`nqs_core.v_score` of the record's
    energy and variance; `None` without `E_inf` or for another objective) to
    every log record. Place it before `JsonlLog`."""

    def __init__(self, e_inf: float | None, n: int | None, objective: str):
        self.e_inf, self.n, self.objective = e_inf, n, objective

    def __call__(self, driver, state, record):
        score = None
        if self.e_inf is not None and self.objective == "energy" and "energy" in record and "variance" in record:
            score = v_score(record["energy"], record["variance"], self.e_inf, self.n)
        record["v_score"] = score


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
