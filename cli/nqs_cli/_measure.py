"""`nqs measure`: the observables of a run's last checkpoint, by sampling or exactly,
and the S(q) / C(r) plot."""

from __future__ import annotations

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
        from nqs_core import measure_run

        values, observables, exact_used = measure_run(
            run_dir, observable or [], n_samples=n_samples, exact=exact, max_states=max_states, seed=seed, warn=_warn
        )
        _output(values, observables, exact_used, json_out, console)
        if plot is not None:
            plot_observables(values, observables, plot)
            if not json_out:
                console.print(f"Wrote {plot}", highlight=False)

    _guard(body)


def _warn(message: str) -> None:
    """A warning of `nqs_core.measure_run` as one line on stderr."""
    from rich.markup import escape

    err_console.print("[yellow]nqs: warning:[/] " + escape(message), highlight=False, soft_wrap=True)


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
        if key == "direction" and "distance" in coords:  # C(r): r says it (dimers: the bond direction)
            continue
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
