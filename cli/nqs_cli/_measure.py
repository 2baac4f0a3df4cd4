"""`nqs measure`: the observables of a run's last checkpoint, by sampling or exactly,
and the S(q) / C(r) plot."""

from __future__ import annotations

import json
import pathlib
from typing import List, Optional

import typer

from ._common import UserError as _UserError, console, entry_labels, err_console, guard as _guard


def measure(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory made by `nqs run`, or an exact state saved by `nqs exact --save`."),
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
    plot: Optional[pathlib.Path] = typer.Option(
        None, "--plot",
        help="Draw S(q) over the Brillouin zone and C(r) per lattice direction into this PNG (and each panel's numbers into PNG_STEM_NAME.csv).",
    ),
    log: bool = typer.Option(False, "--log", help="With --plot: |C(r)| on a logarithmic scale."),
):
    """Measure the observables of a run on its last checkpoint (with error bars), exactly with --exact."""
    def body():
        from nqs_core import measure_run

        values, observables, exact_used = measure_run(
            run_dir, observable or [], n_samples=n_samples, exact=exact, max_states=max_states, seed=seed, warn=_warn
        )
        _output(values, observables, exact_used, json_out, console)
        if plot is not None:
            written = plot_observables(values, observables, plot, run_dir=run_dir, log=log)
            if not json_out:
                console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)

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
        labels = entry_labels(observables.get(name), np.shape(d["mean"]))
        means, errs = np.atleast_1d(d["mean"]), np.atleast_1d(d["error"])
        taus, rhats = np.atleast_1d(d["tau_corr"]), np.atleast_1d(d["R_hat"])
        for k in range(means.size):
            table.add_row(name if k == 0 else "", labels[k], f"{means[k]:.8g}", f"{errs[k]:.2g}", f"{_num(taus[k])}", f"{_num(rhats[k], 4)}")
    console.print(table)


def _num(v, digits=2) -> str:
    return "nan" if v is None else f"{v:.{digits}g}" if digits == 2 else f"{v:.{digits}f}"


def plot_observables(values, observables, path, run_dir=None, log: bool = False) -> list:
    """The pictures of `nqs measure --plot` (`nqs_core.plot_observables`): S(q)
    over the Brillouin zone of the run's lattice, C(r) per direction; a CSV of
    each panel's numbers next to the PNG. Returns the paths written."""
    import pathlib as _pathlib

    from nqs_core import build, load_config, plot_observables as draw

    lattice = None
    if run_dir is not None:
        config = load_config(_pathlib.Path(run_dir) / "config.toml")
        if "lattice" in config:
            lattice = build(config, stop_after="lattice")["lattice"]
    try:
        return draw(values, observables, path, lattice=lattice, log=log)
    except ValueError as exc:
        raise _UserError(str(exc)) from None
