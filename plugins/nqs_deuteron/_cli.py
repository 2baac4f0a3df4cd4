"""`nqs deuteron`: train the deuteron network and compare with the exact mesh solution.

A config builder over the `deuteron` driver: the options become a `[run]` and a
`[driver]` table and `nqs_core.run` trains, so the command makes a run directory
(`nqs resume RUN_DIR` continues it) with the log, the checkpoints and the result.
"""

from __future__ import annotations

import math
import pathlib
from typing import List, Optional

import numpy as np
import typer


def deuteron_config(
    potential: str = "yamaguchi",
    table: str | pathlib.Path | None = None,
    n_hidden: int = 20,
    pretrain_steps: int = 1000,
    adam_steps: int = 0,
    bfgs_steps: int = 5000,
    seed: int = 0,
) -> dict:
    """The config `nqs deuteron` runs: `[run] n_steps` Adam steps with `seed`,
    and the `deuteron` driver's table.

    **Returns:** the config as nested dicts (what `nqs_core.loads_config` gives).
    """
    from ._potentials import POTENTIALS

    if potential not in POTENTIALS:
        raise ValueError(f"unknown potential {potential!r}; valid: {', '.join(POTENTIALS)}")
    if potential == "table" and table is None:
        raise ValueError("potential 'table' needs --table PATH (e.g. tests/data/deuteron/n3lo_J1_vnn.dat.gz)")
    driver = {"name": "deuteron", "potential": potential, "n_hidden": n_hidden, "pretrain_steps": pretrain_steps,
              "bfgs_steps": bfgs_steps}
    if table is not None:
        driver["table"] = str(table)
    return {"run": {"n_steps": adam_steps, "seed": seed}, "driver": driver}


def plot_wave_functions(driver, state, path) -> pathlib.Path:
    """Plot `k psi_S(k)`, `k psi_D(k)` of the network of `state` (after the
    driver's BFGS polish) against the exact mesh solution of `driver`."""
    import equinox as eqx
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ham, exact = driver.hamiltonian, driver.exact
    network = eqx.combine(driver.final_parameters(state), driver.static)
    k = ham.mesh.k
    ps, pd = (np.asarray(a) for a in network.on_mesh(k))
    energy, fidelity = float(ham.energy(ps, pd)), float(ham.fidelity(ps, pd, exact))
    s = np.sqrt(ham.mesh.w) * k
    u = np.concatenate([s * ps, s * pd]) if ham.coupled else s * ps
    norm = np.sqrt(u @ u)
    sign = np.sign(ps[np.argmax(np.abs(ps))])
    ps, pd = sign * ps / norm, sign * pd / norm
    sel = k < 6.0
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(k[sel], (k * exact.psi_s)[sel], "k-", label="exact S (mesh)")
    ax.plot(k[sel], (k * ps)[sel], "o", ms=3, label="network S")
    if ham.coupled:
        ax.plot(k[sel], (k * exact.psi_d)[sel], "k--", label="exact D (mesh)")
        ax.plot(k[sel], (k * pd)[sel], "s", ms=3, label="network D")
    ax.set_xlabel("k [fm$^{-1}$]")
    ax.set_ylabel(r"$k\,\psi_L(k)$ [fm$^{1/2}$]")
    ax.set_title(f"E = {energy:.6f} MeV (exact {exact.energy:.6f}), F = {fidelity:.6f}")
    ax.legend()
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def deuteron(
    potential: str = typer.Option("yamaguchi", help="yamaguchi, malfliet-tjon or table"),
    table: Optional[pathlib.Path] = typer.Option(None, help="momentum-space table (format of tests/data/deuteron/n3lo_J1_vnn.dat.gz)"),
    n_hidden: int = typer.Option(20, help="hidden units"),
    pretrain_steps: int = typer.Option(1000, help="Adam steps fitting the Gaussian targets"),
    adam_steps: int = typer.Option(0, help="Adam steps on the energy (before BFGS): the run's steps ([run] n_steps)"),
    bfgs_steps: int = typer.Option(5000, help="BFGS iterations on the energy"),
    seed: int = typer.Option(0, help="initialisation seed ([run] seed)"),
    plot: pathlib.Path = typer.Option(pathlib.Path("deuteron.png"), help="where to write the plot of psi_S, psi_D"),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/deuteron-<time>)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override a field of the built config: table.field=value (e.g. driver.learning_rate=0.03)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Train the deuteron network (momentum space, quadrature energy) and compare with the exact mesh solution.

    Runs the `deuteron` driver of `nqs run` in a run directory; `nqs resume RUN_DIR --steps N` continues it."""
    from rich.console import Console

    import nqs_core

    console = Console()
    err = Console(stderr=True)
    try:
        cfg = deuteron_config(potential, table, n_hidden, pretrain_steps, adam_steps, bfgs_steps, seed)
    except ValueError as exc:  # the CLI's error path prints it: `nqs: error: ...`, exit 2
        raise nqs_core.ConfigError(str(exc)) from None
    cfg = nqs_core.apply_overrides(cfg, set_ or [])
    result = nqs_core.run(cfg, run_dir=output, progress=not quiet, console=console)
    if result.stopped_early:
        err.print(f"[bold red]nqs: error:[/] the run stopped at {result.stop_reason}; the checkpoint holds the last good "
                  f"step {int(result.state.step)}: continue with `nqs resume {result.run_dir} --set driver.learning_rate=...`",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(3)
    driver = result.calculation.driver
    out = driver.summary(result.state)
    exact = driver.exact
    console.print(f"energy        {out['energy_mev']:.7f} MeV   (exact on the mesh {exact.energy:.7f} MeV, "
                  f"difference {1e3 * (out['energy_mev'] - exact.energy):.4f} keV)")
    console.print(f"D-state prob. {100 * out['d_probability']:.3f} %   (exact {100 * exact.d_probability:.3f} %)")
    d = f"D {out['fidelity_d']:.8f}" if math.isfinite(out["fidelity_d"]) else "no D wave for this potential"
    console.print(f"fidelity      {out['fidelity']:.8f}   (S {out['fidelity_s']:.8f}, {d})")
    console.print(f"plot          {plot_wave_functions(driver, result.state, plot)}")
    console.print(f"run directory {result.run_dir}   (continue: nqs resume {result.run_dir} --steps N)", highlight=False, soft_wrap=True)
