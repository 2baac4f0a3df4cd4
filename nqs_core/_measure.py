"""Measuring a finished run: the observables of its last checkpoint (`nqs measure`)."""

from __future__ import annotations

import copy
import pathlib
import warnings
from typing import Callable, Sequence

import jax

from ._config import ConfigError, build
from ._driver_protocol import AbstractSamplingDriver
from ._io import check_run_files, load_parameters
from ._observable import draws_exact, measure
from ._registry import get_registry
from ._run import check_physics
from ._sampler import AbstractSampler
from ._spectrum import is_exact_dir, measure_exact
from ._toml import load_config
from ._tree import parameters

#: The fewest samples per chain for which `nqs measure -n` gives trustworthy
#: statistics: the integrated autocorrelation time (Sokal's window must stay
#: well inside the chain) and the split R-hat (two halves per chain) need about
#: this many; below 4 per chain neither is computed (tau = 0, R-hat = NaN).
MIN_SAMPLES_PER_CHAIN = 16


def _warn_few_samples(sampler: AbstractSampler, n_samples: int, warn: Callable[[str], None]) -> None:
    """Warn when `n_samples` leaves fewer than `MIN_SAMPLES_PER_CHAIN` samples
    per chain of a Markov-chain sampler."""
    n_chains, per_chain = sampler.n_chains, sampler.n_samples_per_chain
    if n_chains * per_chain <= 1 or per_chain >= MIN_SAMPLES_PER_CHAIN:
        return
    warn(
        f"--n-samples {n_samples} gives {per_chain} samples per chain ({n_chains} chains): too few for the "
        f"error bar, tau and R-hat, which need at least {MIN_SAMPLES_PER_CHAIN} per chain; use --n-samples "
        f">= {MIN_SAMPLES_PER_CHAIN * n_chains}"
    )




def read_run_parameters(run_dir: pathlib.Path, like, then: str = "measure"):
    """The parameters of the last checkpoint of `run_dir`, shaped like `like`
    (`nqs measure`, `load_state`). **Raises:** `ConfigError`: no checkpoint yet
    (the message says to resume first, then `then`), or one that does not fit."""
    try:
        return load_parameters(run_dir, like)
    except FileNotFoundError:
        raise ConfigError(
            f"no checkpoint in {run_dir}: the run stopped before its first checkpoint; "
            f"continue it with `nqs resume {run_dir}` (or a smaller [run] checkpoint_every), then {then}"
        ) from None
    except ValueError as exc:  # CheckpointError included
        raise ConfigError(str(exc)) from None


def measure_run(
    run_dir,
    names: Sequence[str] = (),
    n_samples: int | None = None,
    exact: bool = False,
    max_states: int = 1 << 20,
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
):
    """Measure the `[observables]` (and the energy) of the last checkpoint of
    `run_dir`, with fresh chains or exactly: what `nqs measure` prints.

    **Arguments:**

    - `run_dir`: a run directory made by `run`, or a directory with an exact
      ground state (`nqs exact --save`, measured exactly on that state).
    - `names`: measure only these (names of the run's `[observables]` tables, or
      registered observables with their default fields); default: all of them.
    - `n_samples`: samples from fresh, thermalised chains (default: the run's sampler).
    - `exact`: an exact sum over every state (`full_sum`) instead of sampling, for
      spaces up to `max_states` states.
    - `seed`: the seed of the fresh chains.
    - `warn`: called with a one-line warning (too few samples per chain);
      default: `warnings.warn`.

    **Returns:** `({name: Stats}` including `"energy"`, `{name: observable}`,
    whether the values are exact sums`)`.

    **Raises:** `ConfigError` naming the problem (not a run directory, an unknown
    observable, an edited config, no checkpoint, ...).
    """
    warn = warn if warn is not None else (lambda message: warnings.warn(message, stacklevel=2))

    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.toml"
    if not config_file.exists():
        raise ConfigError(f"not a run directory (no config.toml): {run_dir}")
    check_run_files(run_dir)  # symbolic links are refused, not followed
    if is_exact_dir(run_dir):  # an exact ground state saved by `nqs exact --save`
        if n_samples is not None:
            raise ConfigError(f"{run_dir} holds an exact state (nqs exact --save), which has no samples; omit --n-samples")
        return measure_exact(run_dir, names)
    config = copy.deepcopy(load_config(config_file))
    registry = get_registry()
    tables = config.setdefault("observables", {})
    for name in names:  # a registered observable not configured: default fields
        if name not in tables:
            if name not in registry.names("observable"):
                valid = sorted(set(tables) | set(registry.names("observable")))
                raise ConfigError(f"unknown observable {name!r}; valid: {', '.join(valid)}")
            tables[name] = {"name": name}
    if names:
        config["observables"] = {k: v for k, v in tables.items() if k in names}
    if n_samples is not None and n_samples < 1:
        raise ConfigError(f"--n-samples must be a positive integer, got {n_samples}")
    if n_samples is not None and exact:
        raise ConfigError("--n-samples draws Monte Carlo samples and --exact sums over every state; give one of them")
    sampler_name = config["sampler"].get("name") if isinstance(config.get("sampler"), dict) else None
    if n_samples is not None and sampler_name in (None, "full_sum"):
        why = "its sampler is full_sum: every state, exactly" if sampler_name else "it has no [sampler] table"
        raise ConfigError(f"the run in {run_dir} draws no samples ({why}); omit --n-samples")
    if exact:
        config["sampler"] = {"name": "full_sum", "max_states": max_states}
        config["estimator"] = {"name": "full_sum"}
    elif n_samples is not None and config.get("sampler", {}).get("name") != "full_sum":
        config["sampler"] = {**config["sampler"], "n_samples": n_samples}
    calc = build(config, exact=False)
    if not calc.observables:
        raise ConfigError(
            f"the run in {run_dir} configures no [observables]; name one with --observable "
            f"(registered: {', '.join(registry.names('observable'))})"
        )
    # an edited config.toml (other physics than the checkpoint's) is refused; not what measure itself replaces
    check_physics(run_dir, calc.config, ignore=("sampler", "estimator") if exact else ("sampler.n_samples",) if n_samples is not None else ())
    driver = calc.driver
    if n_samples is not None:
        _warn_few_samples(driver.sampler, n_samples, warn)
    params = read_run_parameters(run_dir, parameters(driver.ansatz)[0], then="measure")
    if not isinstance(driver, AbstractSamplingDriver):
        raise ConfigError(f"the {calc.config['driver']['name']} driver does not sample a wave function; nothing to measure")
    # fresh chains (for a sampler that returns an exact sum: only the parameters and the sampler state)
    state = driver.measurement_state(jax.random.PRNGKey(seed), params)
    energy, values, _ = measure(driver, state, calc.observables, n_batches=1)
    return {"energy": energy, **values}, calc.observables, draws_exact(driver, state)
