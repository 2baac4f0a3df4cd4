"""The `nqs grow` command (iterative retraining)."""

from __future__ import annotations

import pathlib
from typing import List, Optional

import typer


def grow_command(
    config: pathlib.Path = typer.Argument(..., help="TOML config of the first size (its lattice table is resized)."),
    sizes: List[str] = typer.Option(..., "--size", "-s", help="Sizes in order, e.g. -s 20 -s 40, or -s 4x6 for rows x columns."),
    retrain_steps: int = typer.Option(200, help="Optimisation steps at every size after the first."),
    out: pathlib.Path = typer.Option(pathlib.Path("runs/grow"), help="Output folder (grow.jsonl, one folder per size)."),
    retrain_lr: Optional[float] = typer.Option(None, help="Learning rate after the first size (Roth 2020: 1e-4)."),
    retrain_temperature: Optional[float] = typer.Option(0.0, help="Annealing temperature after the first size."),
    exact: List[str] = typer.Option([], help="Reference energies SIZE=E, e.g. --exact 100=-44.127739860."),
    target: Optional[float] = typer.Option(None, help="Stop at a size once within this relative error of the reference."),
    set_: List[str] = typer.Option([], "--set", help="Config overrides table.field=value."),
    init_from: Optional[pathlib.Path] = typer.Option(None, help="Start the first size from a run directory (its checkpoint) or a params.eqx."),
    first_steps: Optional[int] = typer.Option(None, help="Steps at the first size (default [run] n_steps; 0 with --init-from: evaluate only)."),
    last_steps: Optional[int] = typer.Option(None, help="Steps at the last size (default --retrain-steps; with --target: the budget to reach it)."),
):
    """Iterative retraining: train on the first size, reuse the parameters on the next sizes."""
    from rich.console import Console

    import nqs_core

    from ._grow import grow

    try:
        cfg = nqs_core.apply_overrides(nqs_core.load_config(config), set_)
        parsed = [tuple(int(p) for p in s.split("x")) if "x" in s else int(s) for s in sizes]
        refs = {}
        for item in exact:
            k, _, v = item.partition("=")
            refs[k.strip()] = float(v)
        grow(cfg, parsed, retrain_steps, out, retrain_lr, retrain_temperature, refs, target, first_steps=first_steps, last_steps=last_steps,
             progress=True, console=Console(), init_from=init_from)
    except (ValueError, TypeError) as exc:  # the CLI's error path prints it: `nqs: error: ...`, exit 2
        raise nqs_core.ConfigError(str(exc)) from None
