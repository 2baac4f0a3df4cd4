"""The `[run]` table: its fields, their defaults and their validation (parsed
once per build), and `ConfigError`, the one-line configuration error."""

from __future__ import annotations

import math
from typing import Any

from ._driver import DivergenceGuard

class ConfigError(ValueError):
    """A configuration problem, reported to the user as one line."""


#: The `[run]` table: fields, defaults and meaning.
RUN_FIELDS: dict[str, tuple[Any, str]] = {
    "n_steps": (200, "optimisation steps (the tdvp driver sets it: its number of output times)"),
    "seed": (0, "seed of every random number in the run"),
    "output": ("runs", "folder in which run directories are made"),
    "name": ("", "run directory name (default: <system>-<timestamp>)"),
    "checkpoint_every": (50, "steps between checkpoints"),
    "n_eval_batches": (10, "sampler calls for the final energy estimate (0: none)"),
    "exact_energy": ("auto", "reference energy: a number, 'auto' (exact solver when small) or 'none'"),
    "exact_max_states": (1 << 17, "largest space for which 'auto' runs an exact solver"),
    "init_from": ("", "run directory whose last checkpoint's parameters start this run (same ansatz; fresh optimizer and sampler)"),
    "observe_every": (0, "steps between measurements of the [observables] into log.jsonl (0: only at the end, into result.json)"),
    "divergence_factor": (1e4, "reject a step whose energy variance or direction norm exceeds this times its running median (inf: off)"),
    "max_r_hat": (100.0, "reject a step whose energy R-hat exceeds this: chains far from agreeing (inf: off)"),
    "blowup_factor": (1e5, "reject a step whose parameter norm or energy grew by more than this factor over the first step's (a finite blow-up; inf: off)"),
    "max_frozen_fraction": (0.5, "sampling counts as frozen when at least this fraction of the chains did not move during a step (1.0: all)"),
    "on_unhealthy": ("stop", "frozen or collapsed sampling: 'stop' (like a divergence, exit 3) or 'warn'"),
    "exact_check": ("error", "after a Monte Carlo run on a small space, compare with the exact sum over the same parameters: 'error' (exit 4 on disagreement), 'warn' or 'off'"),
    "exact_check_max_states": (1 << 20, "largest space that the exact cross-check enumerates"),
    "max_retries": (3, "retries of a rejected step (each scales the update by retry_scale once more) before the run stops"),
    "retry_scale": (0.5, "factor on the update at each retry of a rejected step"),
    "max_memory_gb": ("auto", "refuse exact solvers, exact sampling, full sums, ansatz parameters and natural-gradient steps that need more memory than this (GB; 'auto': $NQS_MAX_MEMORY_GB, else half the physical memory)"),
}


def run_options(config: dict[str, Any]) -> dict[str, Any]:
    table = config.get("run", {})
    if not isinstance(table, dict):
        raise ConfigError("[run] must be a table")
    unknown = sorted(set(table) - set(RUN_FIELDS))
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)} in [run]; valid fields: {', '.join(RUN_FIELDS)}")
    out = {k: table.get(k, default) for k, (default, _) in RUN_FIELDS.items()}
    for k in ("n_steps", "seed", "checkpoint_every", "n_eval_batches", "exact_max_states", "max_retries", "exact_check_max_states"):
        if not isinstance(out[k], int) or isinstance(out[k], bool) or out[k] < 0:
            raise ConfigError(f"[run] {k} must be a non-negative integer, got {out[k]!r}")
    if out["checkpoint_every"] < 1:
        raise ConfigError("[run] checkpoint_every must be >= 1")
    if not isinstance(out["init_from"], str):
        raise ConfigError(f"[run] init_from must be a run directory (a string), got {out['init_from']!r}")
    ex = out["exact_energy"]
    if not (isinstance(ex, (int, float)) and not isinstance(ex, bool)) and ex not in ("auto", "none"):
        raise ConfigError(f"[run] exact_energy must be a number, 'auto' or 'none', got {ex!r}")
    if isinstance(ex, float) and not math.isfinite(ex):
        raise ConfigError(f"[run] exact_energy must be a finite number, 'auto' or 'none', got {ex!r}")
    if out["exact_check"] not in ("error", "warn", "off"):
        raise ConfigError(f"[run] exact_check must be 'error', 'warn' or 'off', got {out['exact_check']!r}")
    if out["on_unhealthy"] not in ("stop", "warn"):
        raise ConfigError(f"[run] on_unhealthy must be 'stop' or 'warn', got {out['on_unhealthy']!r}")
    for k in ("divergence_factor", "max_r_hat", "retry_scale", "blowup_factor", "max_frozen_fraction"):
        if isinstance(out[k], bool) or not isinstance(out[k], (int, float)) or math.isnan(out[k]):
            raise ConfigError(f"[run] {k} must be a number, got {out[k]!r}")
        out[k] = float(out[k])
    mem = out["max_memory_gb"]
    if mem != "auto" and (isinstance(mem, bool) or not isinstance(mem, (int, float)) or not 0 < mem < math.inf):
        raise ConfigError(f"[run] max_memory_gb must be a number of GB > 0 or 'auto', got {mem!r}")
    divergence_guard(out)  # validates the divergence fields
    return out


def divergence_guard(run: dict[str, Any]):
    """The driver's `DivergenceGuard` from the `[run]` options."""
    try:
        return DivergenceGuard(
            factor=run["divergence_factor"], max_r_hat=run["max_r_hat"],
            max_retries=run["max_retries"], retry_scale=run["retry_scale"],
            blowup_factor=run["blowup_factor"], max_frozen_fraction=run["max_frozen_fraction"],
            on_unhealthy=run["on_unhealthy"],
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[run] {exc}") from None


def run_memory_limit(run: dict[str, Any]) -> float | None:
    """`[run] max_memory_gb` in GB (`None` for 'auto'), for `memory_limit`."""
    return None if run["max_memory_gb"] == "auto" else float(run["max_memory_gb"])


#: `[run]` fields that only a driver taking this constructor argument reads
#: (the others are read by every driver or by `nqs run` itself).
RUN_FIELDS_READ_BY = {
    "divergence_factor": "divergence", "max_r_hat": "divergence", "max_retries": "divergence", "retry_scale": "divergence",
    "exact_energy": "exact_energy", "exact_max_states": "exact_energy",
}


#: `_run_options`, the name the build used before the split
_run_options = run_options
