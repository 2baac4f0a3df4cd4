"""Running a configured calculation into a run directory, and resuming it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
from typing import Any

import jax

from ._callbacks import Checkpoint, JsonlLog, NaNGuard, ProgressBar
from ._config import ConfigError, build, load_config, resolved_toml
from ._distributed import is_root, python_comm
from ._io import CHECKPOINT_META, CONFIG_FILE, LOG_FILE, RESULT_FILE, load_parameters, load_run_state, truncate_log, write_text
from ._tree import parameters
from ._stats import Stats

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
    from ._config import loads_config

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

    @property
    def relative_error(self) -> float | None:
        if self.energy is None or self.exact_energy in (None, 0):
            return None
        return abs((float(self.energy.mean.real) - self.exact_energy) / self.exact_energy)


def _new_run_dir(calc) -> pathlib.Path:
    out = pathlib.Path(calc.run["output"])
    name = calc.run["name"] or f"{calc.config['system']['name']}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = out / name
    i = 1
    while run_dir.exists() and any(run_dir.iterdir()):
        run_dir = out / f"{name}-{i}"
        i += 1
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run(config: dict[str, Any], run_dir=None, progress: bool = True, console=None, n_steps: int | None = None) -> RunResult:
    """Build the calculation in `config`, run it into a fresh run directory
    (`config.toml`, `log.jsonl`, checkpoints, `result.json`) and return the
    final energy estimate. `n_steps` overrides `[run] n_steps`."""
    calc = build(config)
    params = None  # read before anything is written: a bad init_from leaves no run directory behind
    if calc.run["init_from"]:
        try:
            params = load_parameters(calc.run["init_from"], parameters(calc.driver.ansatz)[0])
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"[run] init_from: {exc}") from None
    # under MPI only rank 0 touches the run directory
    error = None
    if is_root():
        if run_dir is None:
            run_dir = _new_run_dir(calc)
        run_dir = pathlib.Path(run_dir)
        if (run_dir / LOG_FILE).exists() or (run_dir / CHECKPOINT_META).exists():
            error = f"run directory {run_dir} already holds a run; continue it with `nqs resume {run_dir}` or choose another output"
    comm = python_comm()
    if comm is not None:
        run_dir, error = comm.bcast((run_dir, error), root=0)
    if error:
        raise ConfigError(error)
    run_dir = pathlib.Path(run_dir)
    if n_steps is not None:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = int(n_steps)
    if is_root():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG_FILE, resolved_toml(calc))
    driver = calc.driver
    key = jax.random.fold_in(jax.random.PRNGKey(calc.run["seed"]), 1000)
    state = driver.init(key) if params is None else driver.init(key, params=params)
    return _continue(calc, run_dir, state, progress, console)


def resume(run_dir, n_steps: int | None = None, progress: bool = True, console=None) -> RunResult:
    """Continue the run in `run_dir` from its last checkpoint up to `n_steps`
    (default: the `n_steps` of its config). The trajectory equals that of an
    uninterrupted run: parameters, optimizer, sampler chains and keys are all
    restored, and the log is cut back to the checkpoint."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"not a run directory (no {CONFIG_FILE}): {run_dir}")
    if not (run_dir / CHECKPOINT_META).exists():
        raise ConfigError(f"run directory has no checkpoint to resume from: {run_dir}")
    config = load_config(run_dir / CONFIG_FILE)
    calc = build(config)
    if n_steps is not None:
        calc.config["run"]["n_steps"] = calc.run["n_steps"] = int(n_steps)
        if is_root():
            write_text(run_dir / CONFIG_FILE, resolved_toml(calc))
    like = calc.driver.init(jax.random.fold_in(jax.random.PRNGKey(calc.run["seed"]), 1000))
    try:
        state, meta = load_run_state(run_dir, like)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if is_root():
        truncate_log(run_dir, int(meta["step"]))
    return _continue(calc, run_dir, state, progress, console)


def _continue(calc, run_dir, state, progress, console) -> RunResult:
    driver = calc.driver
    n_steps = calc.run["n_steps"]
    guard = NaNGuard()
    callbacks = [Checkpoint(run_dir, calc.run["checkpoint_every"]), guard]  # collective: every rank
    if is_root():
        callbacks.insert(0, JsonlLog(run_dir))
        if progress:
            callbacks.append(ProgressBar(n_steps, console=console))
    state = driver.run(state, n_steps, callbacks)
    energy = None
    if calc.run["n_eval_batches"] > 0 and guard.tripped_at is None:
        energy, _ = driver.evaluate(state, calc.run["n_eval_batches"])
    exact = driver.exact_energy
    result = RunResult(run_dir, energy, exact, state, calc, stopped_early=guard.tripped_at is not None)
    payload = {"step": int(state.step), "exact_energy": exact, "stopped_at_nan": guard.tripped_at}
    if energy is not None:
        payload["energy"] = energy.to_dict()
        payload["relative_error"] = result.relative_error
    if is_root():
        write_text(run_dir / RESULT_FILE, json.dumps(payload, indent=1))
    return result
