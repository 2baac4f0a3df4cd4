"""Typer application behind the `nqs` console script."""

from __future__ import annotations

import inspect
import json
import pathlib
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="nqs: neural quantum states and neural Monte Carlo in JAX. Run `nqs run` for the default calculation.",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class _UserError(Exception):
    pass


def _fail(message: str) -> None:
    err_console.print(f"[bold red]nqs: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _guard(fn):
    """Run a command body; user errors become one line on stderr and exit code 2."""
    from nqs_core import ConfigError, RegistryError

    try:
        return fn()
    except (ConfigError, RegistryError, _UserError, FileNotFoundError) as exc:
        _fail(str(exc))


def _registry():
    from nqs_core import get_registry

    reg = get_registry()
    for f in reg.failures:
        err_console.print(f"[yellow]nqs: warning:[/] plugin {escape(repr(f.plugin))} failed to load: {escape(f.error)}", highlight=False)
    return reg


def _load(config: Optional[pathlib.Path], overrides: List[str]):
    from nqs_core import apply_overrides, default_config, load_config

    cfg = load_config(config) if config is not None else default_config()
    return apply_overrides(cfg, overrides)


def _report(result) -> None:
    e = result.energy
    if e is None:
        console.print("No final energy estimate (n_eval_batches = 0 or the run stopped).")
    else:
        line = f"[bold]Energy[/]: {escape(str(e))}"
        console.print(line, highlight=False)
        if result.exact_energy is not None:
            console.print(
                f"[bold]Exact[/]:  {result.exact_energy:.10f}   relative error {result.relative_error:.2e}",
                highlight=False,
            )
    if result.stopped_early:
        console.print("[red]The run stopped early: the energy became NaN/inf (see log.jsonl).[/]")
    console.print(f"Run directory: {escape(str(result.run_dir))}", highlight=False)


SetOption = typer.Option(None, "--set", "-s", help="Override a config value: table.field=value (repeatable).")


@app.command()
def run(
    config: Optional[pathlib.Path] = typer.Argument(None, help="TOML config; omit to run the built-in default (TFIM chain L=16, RBM + SR)."),
    set_: Optional[List[str]] = SetOption,
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<system>-<time>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run a calculation from a TOML config and print the final energy."""

    def body():
        import nqs_core

        _registry()
        cfg = _load(config, set_ or [])
        if config is None:
            console.print("Running the default problem: TFIM chain L=16, h=1, PBC, RBM(alpha=1) + SR.", highlight=False)
        result = nqs_core.run(cfg, run_dir=output, progress=not quiet, console=console)
        if nqs_core.is_root():
            _report(result)

    _guard(body)


@app.command()
def resume(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory made by `nqs run`."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Run up to this many steps in total (default: the config's n_steps)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Continue a run from its last checkpoint."""

    def body():
        import nqs_core

        _registry()
        result = nqs_core.resume(run_dir, n_steps=steps, progress=not quiet, console=console)
        if nqs_core.is_root():
            _report(result)

    _guard(body)


@app.command("list")
def list_(kind: Optional[str] = typer.Argument(None, help="Only this kind (system, ansatz, sampler, ...).")):
    """List the registered components and the plugin that provides each."""

    def body():
        from nqs_core import KINDS

        reg = _registry()
        if kind is not None and kind not in KINDS:
            raise _UserError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        table = Table(title="nqs components")
        table.add_column("kind")
        table.add_column("name", style="bold")
        table.add_column("plugin")
        table.add_column("summary")
        for e in reg.entries(kind):
            table.add_row(e.kind, e.name, escape(e.plugin), escape(e.summary))
        console.print(table)

    _guard(body)


@app.command()
def info(
    name: str = typer.Argument(..., help="Component name, e.g. rbm or ising."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Disambiguate when several kinds use the name."),
):
    """Show a component's documentation and config fields."""

    def body():
        from nqs_core import component_fields
        from nqs_core._config import describe_type

        reg = _registry()
        entries = [reg.get(kind, name)] if kind else reg.find(name)
        if not entries:
            valid = ", ".join(sorted({e.name for e in reg.entries()}))
            raise _UserError(f"no component named {name!r}; valid names: {valid}")
        for e in entries:
            console.rule(f"{e.kind} [bold]{e.name}[/]  (plugin {e.plugin})")
            console.print(inspect.getdoc(e.obj) or "(no documentation)", highlight=False, markup=False)
            fields = component_fields(e.obj)
            table = Table(title="config fields")
            for col in ("field", "type", "default"):
                table.add_column(col)
            for fname, p in fields.items():
                default = "(required)" if p.default is inspect.Parameter.empty else repr(p.default)
                table.add_row(fname, escape(describe_type(p.annotation)), escape(default))
            console.print(table)

    _guard(body)


@app.command()
def exact(
    config: pathlib.Path = typer.Argument(..., help="TOML config; its lattice, space and system tables are used."),
    set_: Optional[List[str]] = SetOption,
):
    """Exact ground-state energy of the config's system (Lanczos exact diagonalisation)."""

    def body():
        from nqs_core import build, exact_energy

        reg = _registry()
        calc = build(_load(config, set_ or []), registry=reg, exact=False, stop_after="system")
        system = calc["system"]
        value = exact_energy(system, reg)
        if value is None:
            raise _UserError(f"no exact solver applies to system {calc.config['system']['name']!r}")
        n = getattr(system.space, "size", None)
        per = f"   per site {value / n:.10f}" if n else ""
        console.print(f"E0 = {value:.10f}{per}", highlight=False)

    _guard(body)


@app.command()
def plot(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory."),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="PNG path (default: RUN_DIR/energy.png)."),
):
    """Plot energy vs step (with error bars and the exact value when known) to a PNG."""

    def body():
        from nqs_core import read_log

        records = read_log(run_dir)
        if not records:
            raise _UserError(f"no log records in {run_dir} (is it a run directory?)")
        exact_value = None
        result_file = pathlib.Path(run_dir) / "result.json"
        if result_file.exists():
            exact_value = json.loads(result_file.read_text()).get("exact_energy")
        path = output or pathlib.Path(run_dir) / "energy.png"
        plot_energy(records, exact_value, path)
        console.print(f"Wrote {path}", highlight=False)

    _guard(body)


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


def _attach_plugin_commands(app: typer.Typer) -> None:
    """Add the subcommands that plugins register under kind "command".

    A registered `typer.Typer` becomes a command group (`nqs NAME SUB ...`), a
    function becomes one command (`nqs NAME ...`). Built-in command names win;
    a clash is reported and the plugin's command skipped.
    """
    from nqs_core import get_registry

    builtin = {c.name or c.callback.__name__ for c in app.registered_commands}
    builtin |= {g.name for g in app.registered_groups}
    for entry in get_registry().entries("command"):
        if entry.name in builtin:
            err_console.print(
                f"[yellow]nqs: warning:[/] plugin {escape(repr(entry.plugin))} registers command "
                f"{escape(repr(entry.name))}, which already exists; skipped",
                highlight=False,
            )
            continue
        if isinstance(entry.obj, typer.Typer):
            app.add_typer(entry.obj, name=entry.name, help=entry.summary or None)
        else:
            app.command(entry.name, help=inspect.getdoc(entry.obj))(entry.obj)
        builtin.add(entry.name)


_attach_plugin_commands(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
