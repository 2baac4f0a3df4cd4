"""`nqs deuteron`: train the deuteron network and compare with the exact mesh solution."""

from __future__ import annotations

import math
import pathlib
from typing import Optional

import numpy as np
import typer

POTENTIALS = ("yamaguchi", "malfliet-tjon", "table")


def make_potential(potential: str, table: str | pathlib.Path | None = None):
    """The potential named `potential` (`yamaguchi`, `malfliet-tjon`, or `table`
    read from the file `table`)."""
    from ._potentials import MalflietTjon, Yamaguchi, load_potential_table

    if potential == "yamaguchi":
        return Yamaguchi()
    if potential == "malfliet-tjon":
        return MalflietTjon()
    if potential == "table":
        if table is None:
            raise ValueError("potential 'table' needs --table PATH (e.g. tests/data/deuteron/n3lo_J1_vnn.dat.gz)")
        return load_potential_table(table)
    raise ValueError(f"unknown potential {potential!r}; valid: {', '.join(POTENTIALS)}")


def plot_wave_functions(result, path) -> pathlib.Path:
    """Plot `k psi_S(k)`, `k psi_D(k)` of the network against the exact mesh solution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ham = result.hamiltonian
    k = ham.mesh.k
    ps, pd = (np.asarray(a) for a in result.network.on_mesh(k))
    s = np.sqrt(ham.mesh.w) * k
    u = np.concatenate([s * ps, s * pd]) if ham.coupled else s * ps
    norm = np.sqrt(u @ u)
    sign = np.sign(ps[np.argmax(np.abs(ps))])
    ps, pd = sign * ps / norm, sign * pd / norm
    sel = k < 6.0
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(k[sel], (k * result.exact.psi_s)[sel], "k-", label="exact S (mesh)")
    ax.plot(k[sel], (k * ps)[sel], "o", ms=3, label="network S")
    if ham.coupled:
        ax.plot(k[sel], (k * result.exact.psi_d)[sel], "k--", label="exact D (mesh)")
        ax.plot(k[sel], (k * pd)[sel], "s", ms=3, label="network D")
    ax.set_xlabel("k [fm$^{-1}$]")
    ax.set_ylabel(r"$k\,\psi_L(k)$ [fm$^{1/2}$]")
    ax.set_title(f"E = {result.energy:.6f} MeV (exact {result.exact.energy:.6f}), F = {result.fidelity:.6f}")
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
    adam_steps: int = typer.Option(0, help="Adam steps on the energy (before BFGS)"),
    bfgs_steps: int = typer.Option(5000, help="BFGS iterations on the energy"),
    seed: int = typer.Option(0, help="initialisation seed"),
    plot: pathlib.Path = typer.Option(pathlib.Path("deuteron.png"), help="where to write the plot of psi_S, psi_D"),
):
    """Train the deuteron network (momentum space, quadrature energy) and compare with the exact mesh solution."""
    from rich.console import Console

    from ._train import train_deuteron

    console = Console()
    from nqs_core import ConfigError

    try:
        pot = make_potential(potential, table)
    except ValueError as exc:  # the CLI's error path prints it: `nqs: error: ...`, exit 2
        raise ConfigError(str(exc)) from None
    with console.status(f"training the deuteron network ({potential}, {n_hidden} hidden units)"):
        try:
            result = train_deuteron(
                pot, n_hidden=n_hidden, pretrain_steps=pretrain_steps, adam_steps=adam_steps,
                bfgs_steps=bfgs_steps, seed=seed,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    console.print(f"energy        {result.energy:.7f} MeV   (exact on the mesh {result.exact.energy:.7f} MeV, "
                  f"difference {1e3 * (result.energy - result.exact.energy):.4f} keV)")
    console.print(f"D-state prob. {100 * result.d_probability:.3f} %   (exact {100 * result.exact.d_probability:.3f} %)")
    d = f"D {result.fidelity_d:.8f}" if math.isfinite(result.fidelity_d) else "no D wave for this potential"
    console.print(f"fidelity      {result.fidelity:.8f}   (S {result.fidelity_s:.8f}, {d})")
    console.print(f"plot          {plot_wave_functions(result, plot)}   ({result.wall_time:.1f} s)")
