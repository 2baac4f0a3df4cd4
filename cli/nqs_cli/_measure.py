"""`nqs measure`: the observables of a run's last checkpoint, by sampling or exactly,
and the S(q) / C(r) plot."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import List, Optional

import typer

from ._common import UserError as _UserError, console, err_console, guard as _guard


def measure(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory made by `nqs run`."),
    observable: Optional[List[str]] = typer.Option(
        None, "--observable", "-O",
        help="Measure only this observable (a name of the run's [observables] tables, or a registered "
        "observable with its default fields, e.g. structure_factor); repeatable.",
    ),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", "-n", help="Samples from fresh, thermalised chains (default: the run's sampler)."),
    exact: bool = typer.Option(False, "--exact", help="Exact sums over every state (full-sum state) instead of sampling."),
    max_states: int = typer.Option(1 << 20, "--max-states", help="Largest space --exact enumerates."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh chains."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON object: observable name -> mean, error, ... (arrays for C(r), S(q))."),
    plot: Optional[pathlib.Path] = typer.Option(None, "--plot", help="Draw S(q) over the Brillouin zone and C(r) against |r| into this PNG."),
):
    """Measure the observables of a run on its last checkpoint (with error bars), exactly with --exact."""
    def body():
        values, observables, exact_used = measure_run(run_dir, observable or [], n_samples, exact, max_states, seed)
        _output(values, observables, exact_used, json_out, console)
        if plot is not None:
            plot_observables(values, observables, plot)
            if not json_out:
                console.print(f"Wrote {plot}", highlight=False)

    _guard(body)


def measure_run(run_dir, names, n_samples, exact, max_states, seed):
    """`({name: Stats} including "energy", {name: observable}, exact?)` of the
    last checkpoint of `run_dir`."""
    import jax

    import nqs_core
    from nqs_core import ConfigError

    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.toml"
    if not config_file.exists():
        raise _UserError(f"not a run directory (no config.toml): {run_dir}")
    nqs_core.check_run_files(run_dir)  # symbolic links are refused, not followed
    config = copy.deepcopy(nqs_core.load_config(config_file))
    registry = nqs_core.get_registry()
    tables = config.setdefault("observables", {})
    for name in names:  # a registered observable not configured: default fields
        if name not in tables:
            if name not in registry.names("observable"):
                valid = sorted(set(tables) | set(registry.names("observable")))
                raise _UserError(f"unknown observable {name!r}; valid: {', '.join(valid)}")
            tables[name] = {"name": name}
    if names:
        config["observables"] = {k: v for k, v in tables.items() if k in names}
    if n_samples is not None and n_samples < 1:
        raise _UserError(f"--n-samples must be a positive integer, got {n_samples}")
    if n_samples is not None and exact:
        raise _UserError("--n-samples draws Monte Carlo samples and --exact sums over every state; give one of them")
    sampler_name = config["sampler"].get("name") if isinstance(config.get("sampler"), dict) else None
    if n_samples is not None and sampler_name in (None, "full_sum"):
        why = "its sampler is full_sum: every state, exactly" if sampler_name else "it has no [sampler] table"
        raise _UserError(f"the run in {run_dir} draws no samples ({why}); omit --n-samples")
    if exact:
        config["sampler"] = {"name": "full_sum", "max_states": max_states}
        config["estimator"] = {"name": "full_sum"}
    elif n_samples is not None and config.get("sampler", {}).get("name") != "full_sum":
        config["sampler"] = {**config["sampler"], "n_samples": n_samples}
    calc = nqs_core.build(config, exact=False)
    if not calc.observables:
        raise _UserError(
            f"the run in {run_dir} configures no [observables]; name one with --observable "
            f"(registered: {', '.join(registry.names('observable'))})"
        )
    # an edited config.toml (other physics than the checkpoint's) is refused; not what measure itself replaces
    nqs_core.check_physics(run_dir, calc.config, ignore=("sampler", "estimator") if exact else ("sampler.n_samples",) if n_samples is not None else ())
    driver = calc.driver
    if n_samples is not None:
        _warn_few_samples(driver.sampler, n_samples)
    try:
        params = nqs_core.load_parameters(run_dir, nqs_core.parameters(driver.ansatz)[0])
    except FileNotFoundError:
        raise _UserError(
            f"no checkpoint in {run_dir}: the run stopped before its first checkpoint; "
            f"continue it with `nqs resume {run_dir}` (or a smaller [run] checkpoint_every), then measure"
        ) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(driver, nqs_core.AbstractSamplingDriver):
        raise _UserError(f"the {calc.config['driver']['name']} driver does not sample a wave function; nothing to measure")
    # fresh chains (for a sampler that returns an exact sum: only the parameters and the sampler state)
    state = driver.measurement_state(jax.random.PRNGKey(seed), params)
    energy, values, _ = nqs_core.measure(driver, state, calc.observables, n_batches=1)
    return {"energy": energy, **values}, calc.observables, nqs_core.draws_exact(driver, state)


#: The fewest samples per chain for which `nqs measure -n` gives trustworthy
#: statistics: the integrated autocorrelation time (Sokal's window must stay
#: well inside the chain) and the split R-hat (two halves per chain) need about
#: this many; below 4 per chain neither is computed (tau = 0, R-hat = NaN).
MIN_SAMPLES_PER_CHAIN = 16


def _warn_few_samples(sampler, n_samples: int) -> None:
    """Warn (one line on stderr) when `--n-samples` leaves fewer than
    `MIN_SAMPLES_PER_CHAIN` samples per chain of a Markov-chain sampler."""
    from rich.markup import escape

    n_chains = getattr(sampler, "n_chains", None)
    per_chain = getattr(sampler, "n_samples_per_chain", None)
    if not n_chains or per_chain is None or n_chains * per_chain <= 1 or per_chain >= MIN_SAMPLES_PER_CHAIN:
        return
    err_console.print(
        "[yellow]nqs: warning:[/] "
        + escape(
            f"--n-samples {n_samples} gives {per_chain} samples per chain ({n_chains} chains): too few for the "
            f"error bar, tau and R-hat, which need at least {MIN_SAMPLES_PER_CHAIN} per chain; use --n-samples "
            f">= {MIN_SAMPLES_PER_CHAIN * n_chains}"
        ),
        highlight=False,
        soft_wrap=True,
    )


def _output(values, observables, exact_used, json_out, console) -> None:
    import numpy as np
    from rich.table import Table

    from nqs_core import stats_dict

    if json_out:
        out = {k: stats_dict(v, observables.get(k)) for k, v in values.items()}
        print(json.dumps(out, allow_nan=False))
        return
    table = Table(title=f"observables ({'exact full sum' if exact_used else 'Monte Carlo'})")
    for col in ("observable", "entry", "mean", "error", "tau", "R_hat"):
        table.add_column(col)
    for name, st in values.items():
        d = stats_dict(st, observables.get(name))
        labels = _labels(observables.get(name), np.shape(d["mean"]))
        means, errs = np.atleast_1d(d["mean"]), np.atleast_1d(d["error"])
        taus, rhats = np.atleast_1d(d["tau_corr"]), np.atleast_1d(d["R_hat"])
        for k in range(means.size):
            table.add_row(name if k == 0 else "", labels[k], f"{means[k]:.8g}", f"{errs[k]:.2g}", f"{_num(taus[k])}", f"{_num(rhats[k], 4)}")
    console.print(table)


def _num(v, digits=2) -> str:
    return "nan" if v is None else f"{v:.{digits}g}" if digits == 2 else f"{v:.{digits}f}"


def _labels(obs, shape) -> list[str]:
    """One label per entry from the observable's coordinates."""
    import numpy as np

    n = int(np.prod(shape)) if shape else 1
    if obs is None or not shape:
        return [""] * n
    coords = obs.coordinates()
    parts = []
    for key in ("quantity", "direction", "r", "q_over_pi"):
        if key in coords:
            arr = np.asarray(coords[key])
            name = "q/pi" if key == "q_over_pi" else key
            parts.append([f"{name}={_fmt(a)}" for a in arr])
    return [" ".join(p[k] for p in parts) for k in range(n)] if parts else [str(k) for k in range(n)]


def _fmt(a) -> str:
    import numpy as np

    a = np.asarray(a)
    if a.dtype.kind in "US":
        return str(a)
    vals = np.atleast_1d(a).astype(float)
    return "(" + ", ".join(f"{v:.4g}" for v in vals) + ")" if vals.size > 1 else f"{vals[0]:.4g}"


def plot_observables(values, observables, path) -> None:
    """S(q) of every `structure_factor` as a heat map over its wave vectors
    (1D: a line), C(r) of every observable with distances against `|r|`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = []
    for name, obs in observables.items():
        coords = obs.coordinates()
        if "q" in coords or "distance" in coords:
            panels.append((name, obs, coords))
    if not panels:
        raise _UserError("nothing to plot: --plot draws structure_factor and correlation observables")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    for ax, (name, obs, coords) in zip(axes[0], panels):
        mean = np.real(np.asarray(values[name].mean)).ravel()
        err = np.asarray(values[name].error_of_mean).ravel()
        if "q" in coords:
            q = np.asarray(coords["q_over_pi"], dtype=float)
            if q.shape[1] == 1:
                order = np.argsort(q[:, 0])
                ax.errorbar(q[order, 0], mean[order], yerr=err[order], marker="o", capsize=2)
                ax.set_xlabel(r"$q/\pi$")
                ax.set_ylabel("S(q)")
            else:
                _heat_map(ax, fig, q, mean)
            ax.set_title(f"{name}: S(q)")
        else:
            d = np.asarray(coords["distance"], dtype=float)
            ax.errorbar(d, mean, yerr=err, marker="o", ls="none", capsize=2)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.set_xlabel("|r|")
            ax.set_ylabel("C(r)")
            ax.set_title(f"{name}: C(r)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heat_map(ax, fig, q, values) -> None:
    """Cells on a rectangular grid of wave vectors (the square lattice's zone),
    else coloured markers."""
    import numpy as np

    xs, ys = np.unique(np.round(q[:, 0], 8)), np.unique(np.round(q[:, 1], 8))
    if len(xs) * len(ys) == len(q):
        # a zone folded to [-pi, pi): repeat the q = -pi edge at +pi (the same
        # momentum on a lattice of unit spacing) so that the picture is symmetric
        for axis in (0, 1):
            edge = np.isclose(q[:, axis], -1.0)
            if edge.any() and not np.isclose(q[:, axis], 1.0).any():
                shifted = q[edge].copy()
                shifted[:, axis] = 1.0
                q, values = np.concatenate([q, shifted]), np.concatenate([values, values[edge]])
        xs, ys = np.unique(np.round(q[:, 0], 8)), np.unique(np.round(q[:, 1], 8))
        grid = np.full((len(ys), len(xs)), np.nan)
        for (x, y), v in zip(np.round(q[:, :2], 8), values):
            grid[np.searchsorted(ys, y), np.searchsorted(xs, x)] = v
        mesh = ax.pcolormesh(xs, ys, grid, shading="nearest", cmap="viridis")
    else:
        mesh = ax.scatter(q[:, 0], q[:, 1], c=values, s=260, marker="h", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="S(q)")
    ax.set_xlabel(r"$q_x/\pi$")
    ax.set_ylabel(r"$q_y/\pi$")
    ax.set_aspect("equal")
