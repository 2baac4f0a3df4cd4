"""`nqs sweep`: run a config at every point of a grid of values, one run directory per point."""

from __future__ import annotations

import pathlib
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import EXIT_SIGINT, EXIT_SIGTERM, UserError, console, err_console, fail, registry


def sweep(
    config: Optional[pathlib.Path] = typer.Argument(None, help="TOML config with a [sweep] table, or any config swept with --set FIELD=start:stop:count."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", "-s",
        help="A swept field (system.h=0.2:2.0:10 inclusive, or system.h=[0.2,0.5,1.0]) or a plain override (run.n_steps=100); repeatable.",
    ),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="Sweep directory (default: [sweep] output, else runs/sweep-<system>-<time>)."),
    resume: Optional[pathlib.Path] = typer.Option(None, "--resume", help="Continue the sweep in this directory (finished points are skipped)."),
    plot: Optional[str] = typer.Option(None, "--plot", help="After the sweep, plot this observable (energy, variance, v_score or an [observables] name) against the first swept field."),
    zip_: bool = typer.Option(False, "--zip", help="Pair the values of the swept fields in order (default: every combination)."),
    warm_start: Optional[bool] = typer.Option(None, "--warm-start/--no-warm-start", help="Start each point from the previous point's parameters (default: [sweep] warm_start, else no)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Run a calculation at every point of a parameter sweep and collect the results in a table (summary.csv / summary.json)."""
    import nqs_core

    registry()
    if resume is not None:
        if output is not None and pathlib.Path(output) != pathlib.Path(resume):
            raise UserError("--resume DIR continues the sweep in DIR; leave out --output")
        if set_ or zip_ or warm_start is not None:
            raise UserError("--resume continues a sweep as it was saved; --set, --zip and --warm-start cannot change it")
    spec = None
    if config is not None:
        cfg = nqs_core.load_config(config)
        if zip_ or warm_start is not None:
            table = cfg.setdefault("sweep", {})
            if not isinstance(table, dict):
                raise UserError("[sweep] must be a table")
            if zip_:
                table["mode"] = "zip"
            if warm_start is not None:
                table["warm_start"] = warm_start
        spec = nqs_core.sweep_spec(cfg, set_ or [])
    elif resume is None:
        raise UserError("give a config (nqs sweep CONFIG --set system.h=0.2:2.0:10) or a sweep to continue (--resume SWEEP_DIR)")
    if resume is not None:
        sweep_dir = resume
    else:
        sweep_dir = output if output is not None else nqs_core.default_sweep_dir(spec)

    def on_point(what, row):
        values = ", ".join(f"{k} = {row[k]}" for k in row if k not in _NOT_VALUES)
        if what == "skipped":
            console.print(f"[dim]point {row['point']}: done before ({row['status']}), skipped[/]", highlight=False)
        elif what == "start":
            console.print(f"[bold]point {row['index']}[/] ({escape(values)})", highlight=False)
        elif row["status"] != "ok":
            err_console.print(f"[yellow]nqs: warning:[/] point {escape(row['point'])} failed ({row['status']}); the sweep goes on", highlight=False)

    try:
        result = nqs_core.run_sweep(spec, sweep_dir, progress=not quiet, console=console, on_point=on_point)
    except KeyboardInterrupt as exc:
        stopped = getattr(exc, "exit_code", None)
        err_console.print(
            f"[bold yellow]nqs:[/] the sweep was stopped ({escape(str(exc))}); continue it with "
            f"`nqs sweep --resume {escape(str(sweep_dir))}`", highlight=False, soft_wrap=True,
        )
        raise typer.Exit(code=stopped if stopped in (EXIT_SIGINT, EXIT_SIGTERM) else EXIT_SIGINT) from None
    print_table(result.rows)
    console.print(f"Sweep directory: {escape(str(result.sweep_dir))} (summary.csv, summary.json)", highlight=False)
    if plot:
        png, csv_path = nqs_core.plot_sweep(result.sweep_dir, plot)
        console.print(f"Wrote {escape(str(png))} and {escape(str(csv_path))}", highlight=False)
    if result.failed:
        names = ", ".join(r["point"] for r in result.failed)
        fail(f"{len(result.failed)} of {len(result.rows)} points failed ({names}); see their run directories", code=result.exit_code)


def _scalar(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_NOT_VALUES = {"index", "point", "status", "exit_code", "energy", "energy_error", "variance", "v_score", "exact_energy",
               "relative_error", "step", "observables"}


def print_table(rows) -> None:
    """The summary as a rich table: the swept fields, energy ± error, V-score, exact energy, status, scalar observables."""
    if not rows:
        return
    fields = [k for k in rows[0] if k not in _NOT_VALUES]
    scalars = sorted({k for r in rows for k, v in r["observables"].items() if isinstance(v, dict) and _scalar(v.get("mean"))})
    table = Table(title="sweep summary")
    for f in fields:
        table.add_column(f, justify="right")
    for c in ("energy", "V-score", "exact", "status", *scalars):
        table.add_column(c, justify="right")

    def num(v, fmt=".8g"):
        return "-" if not _scalar(v) else format(v, fmt)

    for r in rows:
        energy = "-" if not _scalar(r["energy"]) else f"{r['energy']:.8g} ± {num(r['energy_error'], '.2g')}"
        obs = []
        for name in scalars:
            s = r["observables"].get(name)
            obs.append("-" if not isinstance(s, dict) else f"{num(s.get('mean'), '.6g')} ± {num(s.get('error'), '.2g')}")
        table.add_row(*[format(r[f], ".6g") if _scalar(r[f]) else str(r[f]) for f in fields], energy, num(r["v_score"], ".3g"), num(r["exact_energy"], ".10g"), r["status"], *obs)
    console.print(table)
