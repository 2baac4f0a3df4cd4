"""`nqs plot`: energy against step, from a run directory's log."""

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
    observable: Optional[str] = typer.Option(None, "--observable", help="For a sweep directory: what to plot against the swept field (default: energy)."),
):
    """Plot energy vs step (with error bars and the exact value when known) to a PNG; for a sweep directory
    (`nqs sweep`), an observable against the swept field, with the exact energy where the space is small."""
    if (pathlib.Path(run_dir) / "sweep.json").is_file():
        import nqs_core

        png, data = nqs_core.plot_sweep(run_dir, observable or "energy", output)
        console.print(f"Wrote {png} and {data}", highlight=False)
        return
    if observable is not None:
        raise UserError("--observable is for a sweep directory; plot a run's observables with `nqs measure`")
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
    plot_energy(records, exact_value, path)
    console.print(f"Wrote {path}", highlight=False)


def plot_energy(records, exact_value, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([r["step"] for r in records])
    e = np.array([r["energy"] for r in records])
    err = np.array([r["energy_error"] for r in records])
    n_panels = 2 if exact_value not in (None, 0) else 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(7, 3.2 * n_panels), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.fill_between(steps, e - err, e + err, alpha=0.3, label="±1σ")
    ax.plot(steps, e, lw=0.8, alpha=0.7, label="VMC energy")
    window = max(1, len(e) // 40)
    if window > 1:
        running = np.convolve(e, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], running, color="C3", lw=1.5, label=f"running mean ({window} steps)")
    if exact_value is not None:
        ax.axhline(exact_value, color="k", ls="--", lw=1, label=f"exact {exact_value:.6f}")
        lo = min(exact_value, np.nanmin(e))
        span = np.nanpercentile(e, 90) - lo
        ax.set_ylim(lo - 0.05 * span, lo + 1.1 * span)
    ax.set_ylabel("energy")
    ax.legend(loc="upper right")
    if n_panels == 2:
        ax2 = axes[1, 0]
        ax2.semilogy(steps, np.abs((e - exact_value) / exact_value), lw=0.8, alpha=0.7)
        if window > 1:
            ax2.semilogy(steps[window - 1 :], np.abs((running - exact_value) / exact_value), color="C3", lw=1.5)
        ax2.set_ylabel("relative error")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
