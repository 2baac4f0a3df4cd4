"""Typer application behind the `nqs` console script."""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import pathlib
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._doctor import version_callback

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="nqs: neural quantum states and neural Monte Carlo in JAX. Run `nqs run` for the default calculation; "
    "`nqs list command` lists the commands that plugins add.",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class _UserError(Exception):
    pass


#: Exit codes: 2 for a problem with the input (config, command line, files,
#: sizes), 3 for a run that stopped at a divergence, 1 for an internal error.
EXIT_USER, EXIT_DIVERGED, EXIT_INTERNAL = 2, 3, 1
#: A run stopped by SIGINT / SIGTERM after writing a checkpoint: 128 + the signal.
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
#: the run finished but its result failed the exact cross-check (result.json flagged)
EXIT_CHECK_FAILED = 4
#: `NQS_DEBUG=1` (or `--verbose`) prints the traceback of an internal error.
DEBUG_ENV = "NQS_DEBUG"
_VERBOSE = {"on": False}


def _verbose() -> bool:
    return _VERBOSE["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _fail(message: str, code: int = EXIT_USER) -> None:
    message = " ".join(str(message).split())  # one line, whatever the exception held
    err_console.print(f"[bold red]nqs: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def _os_message(exc: OSError) -> str:
    # an OSError raised with only a message (e.g. FileNotFoundError("no checkpoint in ..."))
    # has no strerror: its message is the text
    what = exc.strerror or (str(exc) if exc.args else "") or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return f"{what}{where}"


def _expected_errors() -> tuple[type, ...]:
    """The user-facing error types of the core, taken only from core modules
    already imported (a command that never imported them cannot raise them,
    and importing them would import jax)."""
    found: list[type] = [_UserError]
    for module, name in (("nqs_core._config", "ConfigError"), ("nqs_core._registry", "RegistryError"),
                         ("nqs_core._validate", "MemoryLimitError"), ("nqs_core._io", "CheckpointError"),
                         ("nqs_core._distributed", "MPILaunchError")):
        if module in sys.modules:
            found.append(vars(sys.modules[module])[name])
    return tuple(found)


def _guard(fn):
    """Run a command body: the one error path of the CLI.

    Expected failures (config, command line, files, sizes and memory,
    checkpoints, plugins) become one line on stderr naming the problem and exit
    code 2; anything else is an internal error: one line, exit code 1, and the
    traceback with `--verbose` or `NQS_DEBUG=1`.
    """
    try:
        return fn()
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as exc:
        if isinstance(exc, _expected_errors()):
            _fail(str(exc))
        if isinstance(exc, OSError):
            _fail(_os_message(exc))
        if isinstance(exc, MemoryError):  # an allocation the memory checks did not foresee: the input is too large
            _fail(
                f"out of memory{': ' + str(exc) if str(exc) else ''}; use a smaller system, fewer samples or "
                "parameters, or a smaller [run] max_memory_gb so that nqs refuses such sizes before allocating"
            )
        if _verbose():
            import traceback

            traceback.print_exc()
        hint = "" if _verbose() else f"; run with --verbose (or {DEBUG_ENV}=1) for the traceback"
        _fail(f"internal error: {type(exc).__name__}: {exc}{hint}", code=EXIT_INTERNAL)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", "-V", callback=version_callback, is_eager=True, help="Print the nqs version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help=f"Print the traceback of internal errors (also {DEBUG_ENV}=1)."),
):
    """nqs: neural quantum states and neural Monte Carlo in JAX. Run `nqs run` for the default calculation."""
    _VERBOSE["on"] = verbose


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
    objective = result.calculation.driver.objective  # "energy" for VMC
    if e is None:
        console.print(f"No final {objective} estimate (n_eval_batches = 0 or the run stopped).")
    else:
        line = f"[bold]{objective.capitalize()}[/]: {escape(str(e))}"
        console.print(line, highlight=False)
        if result.exact_energy is not None:
            console.print(f"[bold]Exact[/]:  {result.exact_energy:.10f}   {_error_vs_exact(result)}", highlight=False)
    check = getattr(result, "exact_check", None) or {}
    if check.get("status") in ("agrees", "disagrees"):
        e_check = check["energy"]
        console.print(
            f"[bold]Exact sum, same parameters[/] ({check['n_states']} states): {e_check['exact']:.10g}   "
            f"sampled {e_check['sampled']:.10g} ± {e_check['error'] if e_check['error'] is not None else float('nan'):.2g}: "
            f"{'agrees' if check['status'] == 'agrees' else 'DISAGREES'}",
            highlight=False,
        )
    console.print(f"Run directory: {escape(str(result.run_dir))}", highlight=False)
    if result.stopped_early:
        reason = result.stop_reason or "a non-finite energy"
        verb = "stopped" if ("sampling froze" in reason or "samples collapsed" in reason or "R-hat" in reason) else "diverged"
        _fail(
            f"the run {verb} at {reason}; the checkpoint holds the last good "
            f"step {int(result.state.step)}: continue with a smaller step, e.g. "
            f"`nqs resume {result.run_dir} --set {'optimizer' if 'optimizer' in result.calculation.config else 'driver'}.learning_rate=...`",
            code=EXIT_DIVERGED,
        )
    if check.get("status") == "disagrees":
        import nqs_core

        what = nqs_core.describe_disagreement(check)
        if getattr(result, "failed_exact_check", False):
            _fail(
                f"the sampled result disagrees with the exact sum over the same parameters: {what} "
                "(non-ergodic or biased sampling; try parallel tempering or a rule mixture, or set "
                "[run] exact_check = 'warn' to only warn); result.json is flagged",
                code=EXIT_CHECK_FAILED,
            )
        else:
            console.print(f"[bold yellow]warning[/]: the sampled result disagrees with the exact sum: {escape(what)}", highlight=False)


@contextlib.contextmanager
def _stopped_by_signal():
    """A run stopped by SIGTERM / SIGINT (`nqs_core.RunInterrupted`): one line
    naming the step and the resume command on stderr, exit 143 / 130."""
    from nqs_core import RunInterrupted, is_root

    try:
        yield
    except RunInterrupted as exc:
        if is_root():
            err_console.print(f"[bold yellow]nqs:[/] {escape(exc.message())}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT) from None


def _error_vs_exact(result) -> str:
    """`relative error 1.2e-04`, or the absolute error when the exact energy is 0
    (zero couplings, a graph without edges: the relative error is undefined)."""
    if result.relative_error is not None:
        return f"relative error {result.relative_error:.2e}"
    return f"absolute error {abs(float(result.energy.mean.real) - result.exact_energy):.2e} (exact energy 0)"


SetOption = typer.Option(None, "--set", "-s", help="Override a config value: table.field=value (repeatable).")


@app.command()
def run(
    config: Optional[pathlib.Path] = typer.Argument(None, help="TOML config; omit to run the built-in default (TFIM chain L=16, RBM + SR)."),
    set_: Optional[List[str]] = SetOption,
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<system>-<time>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    profile: bool = typer.Option(
        False, "--profile", help="After the run, time each part of one step (sampling, local energies, log-derivatives, solve, update) and print the split; also RUN_DIR/profile.json."
    ),
):
    """Run a calculation from a TOML config and print the final energy."""

    def body():
        import nqs_core

        _registry()
        cfg = _load(config, set_ or [])
        if config is None:
            console.print("Running the default problem: TFIM chain L=16, h=1, PBC, RBM(alpha=1) + SR.", highlight=False)
        with _stopped_by_signal():
            result = nqs_core.run(cfg, run_dir=output, progress=not quiet, console=console)
        if nqs_core.is_root():
            _report(result)
        if profile:
            table = nqs_core.profile_run(result)
            if nqs_core.is_root():
                console.print(table, highlight=False, markup=False)

    _guard(body)


@app.command()
def resume(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory made by `nqs run`."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Run up to this many steps in total (default: the config's n_steps)."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", "-s",
        help="Change a field between stages (repeatable): run.n_steps, optimizer.learning_rate, preconditioner.diag_shift, ...",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Continue a run from its last checkpoint (or from step 0 if it was stopped before its first one)."""

    def body():
        import nqs_core

        _check_one_step_count(steps, set_ or [])
        _registry()
        with _stopped_by_signal():
            result = nqs_core.resume(run_dir, n_steps=steps, progress=not quiet, console=console, overrides=set_ or [])
        if nqs_core.is_root():
            _report(result)

    _guard(body)


def _check_one_step_count(steps: int | None, overrides: List[str]) -> None:
    """Refuse `--steps` together with `--set run.n_steps=...`: two answers to one
    question, of which one would be ignored (whether or not they agree)."""
    if steps is None:
        return
    for item in overrides:
        if item.split("=", 1)[0].strip() == "run.n_steps":
            raise _UserError(
                f"--steps {steps} and --set {item.strip()} both give the total number of steps; give it once "
                "(--steps N is short for --set run.n_steps=N)"
            )


from ._doctor import doctor as _doctor  # noqa: E402  (command bodies in their own modules)
from ._list import list_ as _list  # noqa: E402

app.command("list")(_list)
app.command("doctor")(_doctor)


@app.command()
def info(
    name: str = typer.Argument(..., help="Component name, e.g. rbm or ising."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Disambiguate when several kinds use the name."),
):
    """Show a component's documentation and config fields."""

    def body():
        from nqs_core import component_fields
        from nqs_core import describe_type

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
                value = p.default
                if isinstance(value, typer.models.ParameterInfo):  # a command's typer option
                    value = value.default
                default = "(required)" if value in (inspect.Parameter.empty, ...) else repr(value)
                table.add_row(fname, escape(describe_type(p.annotation)), escape(default))
            console.print(table)

    _guard(body)


@app.command()
def exact(
    config: pathlib.Path = typer.Argument(..., help="TOML config; its lattice, space and system tables are used."),
    set_: Optional[List[str]] = SetOption,
    digits: Optional[int] = typer.Option(None, "--digits", min=0, max=17, help="Decimals to print (default: the full float64 value, repr)."),
):
    """Exact ground-state energy of the config's system (Lanczos exact diagonalisation)."""

    def body():
        from nqs_core import build, exact_energy, memory_limit, run_memory_limit

        reg = _registry()
        cfg = _load(config, set_ or [])
        show = repr if digits is None else (lambda v: f"{v:.{digits}f}")
        if "system" not in cfg:  # a driver with its own problem (e.g. the deuteron): its own exact reference
            calc = build(cfg, registry=reg, exact=False)
            name = calc.config["driver"]["name"]
            value = getattr(calc.driver, "exact_energy", None)
            if value is None or calc.driver.objective != "energy":
                raise _UserError(
                    f"the config has no [system] table and the {name} driver gives no exact reference; "
                    "`nqs exact` diagonalises a config's [system] (see `nqs list system`)"
                )
            console.print(f"E0 = {show(float(value))}   (the {name} driver's own exact reference)", highlight=False)
            return
        calc = build(cfg, registry=reg, exact=False, stop_after="system")
        system = calc["system"]
        with memory_limit(run_memory_limit(calc.run)):
            value = exact_energy(system, reg)
        if value is None:
            raise _UserError(f"no exact solver applies to system {calc.config['system']['name']!r}")
        n = system.space.size  # AbstractSystem.space is an AbstractSpace
        per = f"   per site {show(float(value) / n)}" if n else ""
        console.print(f"E0 = {show(float(value))}{per}", highlight=False)

    _guard(body)


@app.command()
def plot(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory."),
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="PNG path (default: RUN_DIR/energy.png)."),
):
    """Plot energy vs step (with error bars and the exact value when known) to a PNG."""

    def body():
        from nqs_core import read_log

        try:
            records = read_log(run_dir)
        except ValueError as exc:
            raise _UserError(str(exc)) from None
        # accepted steps with a finite energy; a step redone after a rejection counts once (its last record)
        kept = {r["step"]: r for r in records if "rejected" not in r and math.isfinite(r.get("energy", math.nan))}
        records = [kept[k] for k in sorted(kept)]
        if not records:
            raise _UserError(f"no finite energies in the log of {run_dir} (is it a run directory?)")
        exact_value = None
        result_file = pathlib.Path(run_dir) / "result.json"
        if result_file.exists():
            try:
                exact_value = json.loads(result_file.read_text()).get("exact_energy")
            except (ValueError, AttributeError):
                raise _UserError(f"{result_file} is not a JSON object; the run directory is damaged") from None
            if not isinstance(exact_value, (int, float)) or not math.isfinite(exact_value):
                exact_value = None
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


from ._measure import measure as _measure  # noqa: E402  (the command body lives in its own module)

app.command("measure")(_measure)


def _attach_plugin_commands(app: typer.Typer, only: str | None = None) -> None:
    """Add the subcommands that plugins register under kind "command".

    A registered `typer.Typer` becomes a command group (`nqs NAME SUB ...`), a
    function becomes one command (`nqs NAME ...`). Built-in command names win;
    a clash is reported and the plugin's command skipped. With `only`, just
    that command is attached (and only its module imported), if a plugin
    registers it; otherwise all are.
    """
    from nqs_core import RegistryError, get_registry

    builtin = {c.name or c.callback.__name__ for c in app.registered_commands}
    builtin |= {g.name for g in app.registered_groups}
    entries = get_registry().entries("command")
    if only is not None and any(e.name == only for e in entries):
        entries = [e for e in entries if e.name == only]
    for entry in entries:
        if entry.name in builtin:
            err_console.print(
                f"[yellow]nqs: warning:[/] plugin {escape(repr(entry.plugin))} registers command "
                f"{escape(repr(entry.name))}, which already exists; skipped",
                highlight=False,
            )
            continue
        try:
            obj = entry.obj
        except RegistryError as exc:  # a plugin whose command module is broken: named, skipped
            err_console.print(f"[yellow]nqs: warning:[/] {escape(str(exc))}; skipped", highlight=False, soft_wrap=True)
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=entry.name, help=entry.summary or None)
        else:
            app.command(entry.name, help=inspect.getdoc(obj))(obj)
        builtin.add(entry.name)


def _plugin_command_named(argv: list[str]) -> tuple[bool, str | None]:
    """Whether the command line names a command that is not built in, and which.

    Attaching a plugin's command imports that plugin's command module (and
    with it, often, jax), which takes seconds; `nqs --help` and the built-in
    commands do without, and `nqs NAME ...` attaches only NAME.

    **Returns:** `(attach, name)`: attach plugin commands at all, and the one
    named (`None`: all of them, e.g. when a test runner drives the app).
    """
    if os.path.basename(argv[0]) not in ("nqs", "__main__.py", "-m"):
        return True, None  # not the console script (e.g. a test runner driving the app): attach all
    builtin = {c.name or c.callback.__name__ for c in app.registered_commands}
    builtin |= {g.name for g in app.registered_groups}
    words = [a for a in argv[1:] if not a.startswith("-")]
    if words and words[0] not in builtin:
        return True, words[0]
    return False, None


_attach, _named = _plugin_command_named(sys.argv)
if _attach:
    _attach_plugin_commands(app, only=_named)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
