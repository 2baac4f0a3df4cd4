"""Plugin commands (kind "command") in the CLI: attached by `main` / `attach_plugin_commands`,
not when `nqs_cli` is imported, and run through the same error path as the built-in
commands (issue 28, deliverable 6)."""

import subprocess
import sys

import typer
from typer.testing import CliRunner

import nqs_core
from nqs_cli import attach_plugin_commands, make_app

runner = CliRunner()


def _registry_with(*commands):
    """A registry holding only the test plugin's `(name, command)` pairs."""

    class Plugin:
        @staticmethod
        @nqs_core.hookimpl
        def nqs_register(registry):
            for name, command in commands:
                registry.add("command", name, command)

    reg = nqs_core.load_registry(autoload=False)
    reg.register_plugin(Plugin, "demo_plugin")
    return reg


def test_plugin_commands_attach_to_the_cli():
    group = typer.Typer(help="Tools of a test plugin.")

    @group.command()
    def hello(name: str = "world"):
        print(f"hello {name}")

    def single(x: int = 2):
        """Print twice x."""
        print(2 * x)

    app = typer.Typer()
    app.command("run")(lambda: None)
    attach_plugin_commands(app, _registry_with(("demo", group), ("twice", single), ("run", single)))  # "run" clashes
    assert "hello bob" in runner.invoke(app, ["demo", "hello", "--name", "bob"]).output
    assert runner.invoke(app, ["twice", "--x", "5"]).output.strip() == "10"


def _bad_config(n: int = 1):
    """Refuse every n."""
    raise nqs_core.ConfigError(f"n = {n} is refused;\n use another n")


def _bug():
    """An internal error."""
    raise ZeroDivisionError("a bug")


def test_plugin_command_errors_take_the_one_error_path():
    group = typer.Typer()
    group.command("sub")(_bad_config)
    app = make_app()
    attach_plugin_commands(app, _registry_with(("bad", _bad_config), ("grp", group), ("bug", _bug)))
    for argv in (["bad", "--n", "3"], ["grp", "sub", "--n", "3"]):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2, (argv, r.output)
        assert r.stderr.strip().splitlines() == ["nqs: error: n = 3 is refused; use another n"], r.stderr
        assert "Traceback" not in r.output
    r = runner.invoke(app, ["bug"])
    assert r.exit_code == 1 and r.stderr.strip().splitlines()[0].startswith("nqs: error: internal error: ZeroDivisionError: a bug")
    # the plugin's own object is not changed: wrapping happens on a copy
    assert group.registered_commands[0].callback is _bad_config


NO_SIDE_EFFECT = """
import sys
sys.argv = ["pytest", "grow", "--help"]  # a test runner's argv naming a plugin command
import nqs_cli
print(sorted(m for m in ("nqs_core", "nqs_autoregressive", "jax") if m in sys.modules) or "none")
print(sorted(c.name for c in nqs_cli.app.registered_commands))
"""


def test_importing_nqs_cli_attaches_nothing():
    out = subprocess.run([sys.executable, "-c", NO_SIDE_EFFECT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    modules, commands = out.stdout.strip().splitlines()
    assert modules == "none"
    assert commands == str(sorted(["run", "resume", "list", "doctor", "info", "exact", "plot", "measure", "sweep"]))


def test_a_plugin_command_stopped_by_a_signal_exits_143_with_the_resume_line():
    import signal

    from nqs_core._signals import RunInterrupted

    def stopped():
        """A run stopped by SIGTERM after its checkpoint of step 2."""
        raise RunInterrupted(signal.SIGTERM, run_dir="runs/x", step=2)

    app = make_app()
    attach_plugin_commands(app, _registry_with(("stopped", stopped)))
    r = runner.invoke(app, ["stopped"])
    assert r.exit_code == 143, r.output
    assert r.stderr.strip().splitlines() == [
        "nqs: stopped by SIGTERM after step 2; the checkpoint holds step 2: continue with `nqs resume runs/x`"
    ]
