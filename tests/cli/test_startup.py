"""CLI start-up: `nqs --help` imports neither jax nor any plugin (checked by module
names, not by timing, which is flaky on a loaded machine); plugin commands still run."""

import subprocess
import sys

CHECK = """
import sys
sys.argv = ["nqs", "--help"]
import nqs_cli
heavy = sorted(m for m in ("jax", "nqs_core", "nqs_spins", "nqs_networks", "nqs_optim", "kfac_jax", "blackjax", "matplotlib") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_help_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_plugin_command_attaches_when_named():
    out = subprocess.run([sys.executable, "-m", "nqs_cli", "grow", "--help"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout and "grow" in out.stdout
