"""The bottom of the CLI: consoles, exit codes and the one error path.

Every command module imports from here and from nowhere else in the package;
`_app.py` imports the command modules and assembles them, so the package has
no import circle (checked in `tests/test_architecture.py`).
"""

from __future__ import annotations

import functools
import os
import pathlib
import sys
import traceback
import warnings
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


class UserError(Exception):
    """A problem with the command line a command found itself: one line, exit code 2."""


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


def set_verbose(on: bool) -> None:
    """`nqs --verbose`: print the traceback of internal errors."""
    _VERBOSE["on"] = bool(on)


def verbose() -> bool:
    """Whether internal errors print their traceback (`--verbose` or `NQS_DEBUG=1`)."""
    return _VERBOSE["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, code: int = EXIT_USER) -> None:
    """Print `nqs: error: MESSAGE` (one line) on stderr and exit with `code`."""
    message = " ".join(str(message).split())  # one line, whatever the exception held
    err_console.print(f"[bold red]nqs: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def os_message(exc: OSError) -> str:
    """`what: filename` of an OSError."""
    # an OSError raised with only a message (e.g. FileNotFoundError("no checkpoint in ..."))
    # has no strerror: its message is the text
    what = exc.strerror or (str(exc) if exc.args else "") or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return f"{what}{where}"


def expected_errors() -> tuple[type, ...]:
    """The user-facing error types of the core, taken only from core modules
    already imported (a command that never imported them cannot raise them,
    and importing them would import jax)."""
    found: list[type] = [UserError]
    for module, name in (("nqs_core._config", "ConfigError"), ("nqs_core._registry", "RegistryError"),
                         ("nqs_core._validate", "MemoryLimitError"), ("nqs_core._io", "CheckpointError"),
                         ("nqs_core._distributed", "MPILaunchError")):
        if module in sys.modules:
            found.append(vars(sys.modules[module])[name])
    return tuple(found)


def guard(fn):
    """Run a command body: the one error path of the CLI.

    Expected failures (config, command line, files, sizes and memory,
    checkpoints, plugins) become one line on stderr naming the problem and exit
    code 2; anything else is an internal error: one line, exit code 1, and the
    traceback with `--verbose` or `NQS_DEBUG=1`.
    """
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(warnings.showwarning)
            return fn()
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt as exc:
        stopped = sys.modules.get("nqs_core._signals")
        if stopped is not None and isinstance(exc, stopped.RunInterrupted):
            # a run stopped by SIGTERM / SIGINT after writing a checkpoint: one line naming
            # the step and the resume command, exit 143 / 130 (any command that runs, plugins' too)
            if sys.modules["nqs_core"].is_root():
                err_console.print(f"[bold yellow]nqs:[/] {escape(exc.message())}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT) from None
        fail("interrupted", code=EXIT_SIGINT)
    except click.ClickException as exc:  # e.g. typer.BadParameter raised inside a command body
        fail(exc.format_message(), code=exc.exit_code)
    except Exception as exc:
        if isinstance(exc, expected_errors()):
            fail(str(exc))
        if isinstance(exc, OSError):
            fail(os_message(exc))
        if isinstance(exc, MemoryError):  # an allocation the memory checks did not foresee: the input is too large
            fail(
                f"out of memory{': ' + str(exc) if str(exc) else ''}; use a smaller system, fewer samples or "
                "parameters, or a smaller [run] max_memory_gb so that nqs refuses such sizes before allocating"
            )
        if verbose():
            traceback.print_exc()
        hint = "" if verbose() else f"; run with --verbose (or {DEBUG_ENV}=1) for the traceback"
        fail(f"internal error: {type(exc).__name__}: {exc}{hint}", code=EXIT_INTERNAL)


def _one_line_warning(fallback):
    """A `warnings.showwarning` that prints the warnings of nqs packages (a
    category defined in `nqs_*`, e.g. `nqs_spins.ClusterMomentumWarning`) as one
    line `nqs: warning: ...` on stderr, and hands the others to `fallback`."""

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0].startswith("nqs"):
            text = " ".join(str(message).split())
            err_console.print(f"[yellow]nqs: warning:[/] {escape(text)}", highlight=False, soft_wrap=True)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def guarded(command):
    """`command` (a Typer command function) run through `guard`, with its
    signature kept (Typer reads the options from it)."""
    if getattr(command, "__nqs_guarded__", False):
        return command

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return guard(lambda: command(*args, **kwargs))

    wrapper.__nqs_guarded__ = True
    return wrapper


def registry():
    """The process-wide registry; a warning line for every plugin that failed to load."""
    from nqs_core import get_registry  # importing nqs_core at the top would slow down `nqs --help`

    reg = get_registry()
    for f in reg.failures:
        err_console.print(f"[yellow]nqs: warning:[/] plugin {escape(repr(f.plugin))} failed to load: {escape(f.error)}", highlight=False)
    return reg


def load(config: Optional[pathlib.Path], overrides: List[str]):
    """The config of a command: the TOML file (or the built-in default) with `--set` overrides."""
    from nqs_core import apply_overrides, default_config, load_config

    cfg = load_config(config) if config is not None else default_config()
    return apply_overrides(cfg, overrides)


#: the `--set` option shared by the commands that read a config
SetOption = typer.Option(None, "--set", "-s", help="Override a config value: table.field=value (repeatable).")


def entry_labels(obs, shape) -> list[str]:
    """One label per entry of an array observable, from its coordinates (the
    tables of `nqs measure` and `nqs exact`)."""
    import numpy as np

    n = int(np.prod(shape)) if shape else 1
    if obs is None or not shape:
        return [""] * n
    coords = obs.coordinates()
    parts = []
    for key in ("quantity", "direction", "r", "q_over_pi"):
        if key == "direction" and "distance" in coords:  # C(r): r says it (dimers: the bond direction)
            continue
        if key in coords:
            arr = np.asarray(coords[key])
            name = "q/pi" if key == "q_over_pi" else key
            parts.append([f"{name}={_coordinate_text(a)}" for a in arr])
    return [" ".join(p[k] for p in parts) for k in range(n)] if parts else [str(k) for k in range(n)]


def _coordinate_text(a) -> str:
    import numpy as np

    a = np.asarray(a)
    if a.dtype.kind in "US":
        return str(a)
    vals = np.atleast_1d(a).astype(float)
    return "(" + ", ".join(f"{v:.4g}" for v in vals) + ")" if vals.size > 1 else f"{vals[0]:.4g}"
