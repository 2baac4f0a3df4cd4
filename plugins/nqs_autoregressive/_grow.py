"""Iterative retraining (Roth 2020, Sec. II D): train on L, reuse the parameters on L + dL."""

from __future__ import annotations

import copy
import json
import pathlib
import time
from typing import Any, Optional, Sequence

import equinox as eqx
import jax
import numpy as np

import nqs_core


def _size_label(size) -> str:
    return "x".join(str(s) for s in size) if isinstance(size, (tuple, list)) else str(size)


def _resize(config: dict[str, Any], size) -> dict[str, Any]:
    cfg = copy.deepcopy(config)
    lat = cfg.get("lattice")
    if not isinstance(lat, dict) or "name" not in lat:
        raise nqs_core.ConfigError("grow needs a [lattice] table with a name (chain or square)")
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise nqs_core.ConfigError(f"a 2D size must be [rows, columns], got {size!r}")
        lat["length"], lat["width"] = int(size[0]), int(size[1])
    else:
        lat["length"] = int(size)
        if "width" in lat:  # a square patch grows along both directions
            lat["width"] = int(size)
    return cfg


def transfer_parameters(old, new, label="the new size"):
    """The arrays of `old` in the structure of `new` (same model at another size:
    the static fields such as the number of sites differ, the parameter arrays not)."""
    lo = jax.tree.leaves(old)
    ln, tn = jax.tree.flatten(new)
    if len(lo) != len(ln) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(lo, ln)):
        raise ValueError(
            f"the ansatz at size {label} has parameters of other shapes than at the previous size; "
            "iterative retraining needs a model whose parameter shapes do not depend on the size (ar_gru, ar_lstm2d)"
        )
    return jax.tree.unflatten(tn, lo)


class _StopAtTarget(nqs_core.AbstractCallback):
    """Stop when the mean energy of the last `window` steps is within `rel` of `exact`."""

    def __init__(self, exact: float, rel: float, window: int = 20):
        self.exact, self.rel, self.window, self.energies = exact, rel, window, []

    def on_start(self, driver, state, n_steps):
        self.energies = []

    def __call__(self, driver, state, record):
        self.energies.append(record[driver.objective])
        if len(self.energies) >= self.window:
            mean = float(np.mean(self.energies[-self.window :]))
            if abs(mean - self.exact) <= self.rel * abs(self.exact):
                raise nqs_core.StopRun(f"the mean energy of the last {self.window} steps is within {self.rel:g} of the reference")
        return None


def grow(
    config: dict[str, Any],
    sizes: Sequence,
    retrain_steps: int = 200,
    out_dir="runs/grow",
    retrain_learning_rate: float | None = None,
    retrain_temperature: float | None = 0.0,
    exact_energies: Optional[dict] = None,
    target_rel_error: float | None = None,
    first_steps: int | None = None,
    last_steps: int | None = None,
    n_eval_batches: int | None = None,
    progress: bool = False,
    console=None,
    init_from=None,
) -> list[dict[str, Any]]:
    """Iterative retraining: train the configured model on `sizes[0]`, then reuse
    its parameters on each following size with a short retraining.

    **Arguments:**

    - `config`: a calculation config (dict, as from `nqs_core.load_config`) whose
      `[lattice]` is resized: `length` for a chain; `length` and `width` for a square
      (an int size grows both, a pair `[rows, columns]` sets them).
    - `sizes`: the sequence of sizes, e.g. `[20, 40, 60]` or `[4, 6, 10]`.
    - `retrain_steps`: optimisation steps at every size after the first.
    - `out_dir`: folder for `grow.jsonl` (one record per size) and one run
      folder per size (`log.jsonl`, `params.eqx`).
    - `retrain_learning_rate`: replaces `[optimizer] learning_rate` after the
      first size (Roth 2020: 1e-4); `None` keeps it.
    - `retrain_temperature`: replaces `[estimator] temperature` of an `annealed`
      estimator after the first size (Roth 2020: 0); `None` keeps it.
    - `exact_energies`: reference energies by size label (`"20"`, `"4x4"`), used
      for the relative error (else `[run] exact_energy`, "auto" solves small systems;
      a number there applies only to the lattice as written, other sizes use "auto").
    - `target_rel_error`: stop training at a size as soon as the mean energy of
      the last 20 steps is within this relative error of the reference.
    - `first_steps`: steps at the first size (default `[run] n_steps`).
    - `last_steps`: steps at the last size when there are several (default
      `retrain_steps`); with `target_rel_error` a budget to reach the target.
    - `n_eval_batches`: sampler calls for each final estimate (default `[run] n_eval_batches`).
    - `init_from`: start the first size from trained parameters instead of the
      initialisation: a run directory of `nqs run` (its last checkpoint) or a
      `params.eqx` written by `grow`, of the same model (any size: the parameter
      shapes do not depend on it). With `first_steps=0` the first size is only
      evaluated, so a long run at the first size can be grown afterwards.

    **Returns:** the records written to `grow.jsonl`: `size`, `n_sites`, `energy`,
    `energy_error`, `energy_per_site`, `exact_energy`, `relative_error`, `steps`,
    `samples` (training samples at this size), `cumulative_samples`, `eval_samples`,
    `wall_time`.
    """
    if not sizes:
        raise ValueError("sizes must name at least one size")
    if isinstance(retrain_steps, bool) or not isinstance(retrain_steps, int) or retrain_steps < 0:
        raise ValueError(f"retrain_steps must be a non-negative integer, got {retrain_steps!r}")
    if first_steps is not None:
        first_steps = nqs_core.check_int("first_steps", first_steps, 0)
    if last_steps is not None:
        last_steps = nqs_core.check_int("last_steps", last_steps, 0)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "grow.jsonl"
    exact_energies = {str(k): float(v) for k, v in (exact_energies or {}).items()}
    records: list[dict[str, Any]] = []
    params = None
    cumulative = 0
    for index, size in enumerate(sizes):
        label = _size_label(size)
        cfg = _resize(config, size)
        run = cfg.setdefault("run", {})
        if label in exact_energies:
            run["exact_energy"] = exact_energies[label]
        elif cfg["lattice"] != config.get("lattice") and not isinstance(run.get("exact_energy", "auto"), str):
            # a number in [run] belongs to the lattice as written, not to a resized one
            run["exact_energy"] = "auto"
        if index == 0:
            steps = first_steps if first_steps is not None else run.get("n_steps", 200)
        elif index == len(sizes) - 1 and last_steps is not None:
            steps = last_steps
        else:
            steps = retrain_steps
        if index > 0:
            if retrain_learning_rate is not None and "optimizer" in cfg:
                cfg["optimizer"]["learning_rate"] = float(retrain_learning_rate)
            est = cfg.get("estimator", {})
            if retrain_temperature is not None and est.get("name") == "annealed":
                est["temperature"] = float(retrain_temperature)
        calc = nqs_core.build(cfg)
        nqs_core.resolve_exact_energy(calc)
        driver = calc.driver
        seed = int(calc.run["seed"])
        state = driver.init(jax.random.fold_in(jax.random.PRNGKey(seed), 1000 + index))
        if index == 0 and init_from is not None:
            params = _load_initial(init_from, state.params)
        if params is not None:
            state = eqx.tree_at(lambda s: s.params, state, transfer_parameters(params, state.params, label))
        run_dir = out_dir / label
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log.jsonl").unlink(missing_ok=True)
        callbacks: list[Any] = [nqs_core.JsonlLog(run_dir)]
        exact = driver.exact_energy
        if target_rel_error is not None and exact is not None:
            callbacks.append(_StopAtTarget(exact, target_rel_error))
        if progress:
            callbacks.append(nqs_core.ProgressBar(steps, console=console))
        t0 = time.perf_counter()
        state = driver.run(state, steps, callbacks)
        n_eval = n_eval_batches if n_eval_batches is not None else calc.run["n_eval_batches"]
        energy, state = driver.evaluate(state, max(int(n_eval), 1))
        wall = time.perf_counter() - t0
        params = state.params
        with open(run_dir / "params.eqx", "wb") as f:
            eqx.tree_serialise_leaves(f, params)
        n_sites = int(driver.system.space.shape[0])
        done = int(state.step)
        used = done * driver.sampler.n_chains * driver.sampler.n_samples_per_chain
        cumulative += used
        e = float(np.real(energy.mean))
        rec = {
            "size": label,
            "n_sites": n_sites,
            "energy": e,
            "energy_error": float(energy.error_of_mean),
            "energy_per_site": e / n_sites,
            "exact_energy": exact,
            "relative_error": None if exact in (None, 0) else abs((e - exact) / exact),
            "steps": done,
            "samples": used,
            "cumulative_samples": cumulative,
            "eval_samples": max(int(n_eval), 1) * driver.sampler.n_chains * driver.sampler.n_samples_per_chain,
            "wall_time": wall,
        }
        records.append(rec)
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if console is not None:
            err = "" if rec["relative_error"] is None else f"  rel. error {rec['relative_error']:.2e}"
            console.print(f"size {label}: E/N = {rec['energy_per_site']:.6f}{err}  samples {used} (total {cumulative})")
    return records


def _load_initial(path, like):
    """Parameters from a run directory's checkpoint or a `params.eqx` file."""
    path = pathlib.Path(path)
    if path.is_dir():
        try:
            return nqs_core.load_parameters(path, like)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"init_from: {exc}") from None
    if not path.exists():
        raise FileNotFoundError(f"init_from: {path} does not exist")
    try:
        return load_params(path, like)
    except Exception as exc:  # shape or dtype mismatch, truncated file
        raise ValueError(f"init_from: {path} does not fit this model ({exc})") from None


def load_params(path, like):
    """Read parameters saved by `grow` (`params.eqx`) into the structure of `like`."""
    with open(path, "rb") as f:
        return eqx.tree_deserialise_leaves(f, like)
