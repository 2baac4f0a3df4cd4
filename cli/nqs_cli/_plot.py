"""`nqs plot`: energy against step, from a run directory's log (PNG and CSV); a
TDVP run: energy or an observable against t, with the exact curve; a sweep: an
observable against the swept field."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Optional

import typer

from ._common import UserError, console, err_console


def plot(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory."),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="PNG path (default: RUN_DIR/energy.png)."),
    observable: Optional[str] = typer.Option(None, "--observable", help="For a time-evolution run or a sweep directory: what to plot against t or the swept field (default: energy)."),
    no_exact: bool = typer.Option(False, "--no-exact", help="Leave out the exact value or curve (a TDVP run: no `nqs exact --evolve` of its config)."),
):
    """Plot energy vs step (with error bars and the exact value) to a PNG and a CSV; a TDVP run: energy or an observable vs t; a sweep directory: an observable vs the swept field.

    For a TDVP run (driver tdvp) the exact evolution of its config is drawn where the space has at most 2^16 states, and the TDVP residual in a second panel; for a sweep directory (`nqs sweep`) the exact energy where the space is small."""
    if (pathlib.Path(run_dir) / "sweep.json").is_file():
        import nqs_core

        png, data = nqs_core.plot_sweep(run_dir, observable or "energy", output, exact=not no_exact)
        console.print(f"Wrote {png} and {data}", highlight=False)
        return
    import nqs_core

    if nqs_core.is_evolution_run(run_dir):
        written = nqs_core.plot_evolution(run_dir, observable or "energy", output, exact=not no_exact, warn=_warn)
        console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)
        return
    if observable is not None:
        raise UserError("--observable is for a time-evolution run or a sweep directory; plot a run's observables with `nqs measure`")
    from nqs_core import read_log

    try:
        records = read_log(run_dir)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # accepted steps with a finite energy; a step redone after a rejection counts once (its last record)
    kept = {r["step"]: r for r in records if "rejected" not in r and math.isfinite(r.get("energy", math.nan))}
    records = [kept[k] for k in sorted(kept)]
    if not records:
        raise UserError(f"no finite energies in the log of {run_dir} (is it a run directory?)")
    exact_value = None
    result_file = pathlib.Path(run_dir) / "result.json"
    if result_file.exists() and not no_exact:
        try:
            exact_value = json.loads(result_file.read_text()).get("exact_energy")
        except (ValueError, AttributeError):
            raise UserError(f"{result_file} is not a JSON object; the run directory is damaged") from None
        if not isinstance(exact_value, (int, float)) or not math.isfinite(exact_value):
            exact_value = None
    path = output or pathlib.Path(run_dir) / "energy.png"
    from nqs_core import plot_energy

    written = plot_energy(records, exact_value, path)
    console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)




def _warn(message: str) -> None:
    from rich.markup import escape

    err_console.print("[yellow]nqs: warning:[/] " + escape(message), highlight=False, soft_wrap=True)
