"""The `nqs` application: assembles the command modules, and the plugin commands in `main`.

The layers (no module imports one above it; `tests/test_architecture.py` checks it):
`_common` (consoles, exit codes, the one error path) < the command modules
(`_run`, `_info`, `_exact`, `_plot`, `_list`, `_doctor`, `_measure`, `_sweep`: plain functions) <
`_app` (this module). Importing it loads no plugin and no jax.
"""

from __future__ import annotations

import copy
import inspect
import sys

import typer
from rich.markup import escape

from ._common import DEBUG_ENV, err_console, guarded, registry, set_verbose
from ._doctor import doctor, version_callback
from ._exact import exact
from ._info import info
from ._list import list_
from ._measure import measure
from ._plot import plot
from ._run import resume, run
from ._sweep import sweep

#: the built-in commands, in the order of `nqs --help`
BUILTIN = (("run", run), ("resume", resume), ("list", list_), ("doctor", doctor), ("info", info), ("exact", exact),
           ("plot", plot), ("measure", measure), ("sweep", sweep))


def _main(
    version: bool = typer.Option(False, "--version", "-V", callback=version_callback, is_eager=True, help="Print the nqs version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help=f"Print the traceback of internal errors (also {DEBUG_ENV}=1)."),
):
    """nqs: neural quantum states and neural Monte Carlo in JAX. Run `nqs run` for the default calculation."""
    set_verbose(verbose)


def make_app(plugins: bool = False) -> typer.Typer:
    """A fresh `nqs` application with the built-in commands, each run through
    the one error path.

    **Arguments:**

    - `plugins`: also attach every command the plugins register (what a test
      runner driving `nqs deuteron` needs); otherwise `attach_plugin_commands`
      adds them.
    """
    new = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help="nqs: neural quantum states and neural Monte Carlo in JAX. Run `nqs run` for the default calculation; "
        "`nqs list command` lists the commands that plugins add.",
        pretty_exceptions_enable=False,
    )
    new.callback()(_main)
    for name, command in BUILTIN:
        new.command(name)(guarded(command))
    if plugins:
        attach_plugin_commands(new, registry())
    return new


#: the built-in commands (what `from nqs_cli import app` gives a test runner)
app = make_app()


def command_names(application: typer.Typer) -> set[str]:
    """The names of the commands and groups of `application`."""
    names = {c.name or c.callback.__name__ for c in application.registered_commands}
    return names | {g.name for g in application.registered_groups}


def attach_plugin_commands(application: typer.Typer, registry, only: str | None = None) -> None:
    """Add the subcommands that plugins register under kind "command" to `application`.

    A registered `typer.Typer` becomes a command group (`nqs NAME SUB ...`), a
    function becomes one command (`nqs NAME ...`); either runs through the one
    error path (`guard`), so an error of a plugin command is one line
    `nqs: error: ...` with exit code 2 (1 for an internal error). Built-in
    command names win; a clash is reported and the plugin's command skipped.
    With `only`, just that command is attached (and only its module
    imported), if a plugin registers it; otherwise all are.
    """
    from nqs_core import RegistryError  # importing nqs_core at the top would slow down `nqs --help`

    taken = command_names(application)
    entries = registry.entries("command")
    if only is not None and any(e.name == only for e in entries):
        entries = [e for e in entries if e.name == only]
    for entry in entries:
        if entry.name in taken:
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
            application.add_typer(_guarded_group(obj), name=entry.name, help=entry.summary or None)
        else:
            application.command(entry.name, help=inspect.getdoc(obj))(guarded(obj))
        taken.add(entry.name)


def _guarded_group(group: typer.Typer) -> typer.Typer:
    """`group` with every command callback run through `guard` (the plugin's
    object is left as it is: a copy of each command's record is changed)."""
    new = copy.copy(group)
    new.registered_commands = []
    for command in group.registered_commands:
        command = copy.copy(command)
        command.callback = guarded(command.callback)
        new.registered_commands.append(command)
    new.registered_groups = [copy.copy(g) for g in group.registered_groups]
    for sub in new.registered_groups:
        sub.typer_instance = _guarded_group(sub.typer_instance)
    return new


def plugin_command_named(application: typer.Typer, argv: list[str]) -> tuple[bool, str | None]:
    """Whether the command line names a command that `application` does not have, and which.

    Attaching a plugin's command imports that plugin's command module (and
    with it, often, jax), which takes seconds; `nqs --help` and the built-in
    commands do without, and `nqs NAME ...` attaches only NAME.

    **Returns:** `(attach, name)`: attach plugin commands at all, and the one
    named (`None`: all of them, e.g. `nqs` called with no command word).
    """
    words = [a for a in argv[1:] if not a.startswith("-")]
    if words and words[0] not in command_names(application):
        return True, words[0]
    return False, None


def main(argv: list[str] | None = None) -> None:
    """The `nqs` console script: the built-in commands, plus the plugin command
    the command line names (attached here, not when `nqs_cli` is imported).

    **Arguments:**

    - `argv`: the command line, program name first (default `sys.argv`).
    """
    argv = list(sys.argv if argv is None else argv)
    application = make_app()
    attach, named = plugin_command_named(application, argv)
    if attach:
        attach_plugin_commands(application, registry(), only=named)
    application(args=argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
