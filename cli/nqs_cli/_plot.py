"""`nqs plot`: energy against step, from a run directory's log (PNG and CSV)."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Optional

import typer

from ._common import UserError, console


def plot(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory."),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="PNG path (default: RUN_DIR/energy.png)."),
):
    """Plot energy vs step (with error bars and the exact value when known) to a PNG, its numbers to a CSV."""
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
    if result_file.exists():
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


