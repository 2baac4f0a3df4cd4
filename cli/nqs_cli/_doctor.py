"""`nqs doctor`: versions, devices and plugins, for bug reports."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import typer

from ._common import console

#: Distributions whose versions `nqs doctor` reports (absent ones say so).
PACKAGES = (
    "nqs", "jax", "jaxlib", "equinox", "optax", "lineax", "numpy", "scipy", "pluggy", "typer", "rich",
    "matplotlib", "kfac-jax", "blackjax", "mpi4py", "mpi4jax", "netket",
)


def doctor(
    tracebacks: bool = typer.Option(False, "--tracebacks", help="Also print the traceback of every plugin that failed to load."),
):
    """Print versions, devices and the plugins with their status (paste this into a bug report)."""
    for line in report(tracebacks):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def versions() -> dict[str, str | None]:
    """Installed version of each of `PACKAGES` (`None` when not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def report(tracebacks: bool = False) -> list[str]:
    """The lines `nqs doctor` prints: Python and platform, package versions,
    JAX devices and settings, and every plugin (loaded, or failed with its
    error), with any registered component whose module cannot be imported."""
    import jax

    from nqs_core import RegistryError, get_registry

    lines = [f"python    {sys.version.split()[0]} ({platform.python_implementation()}, {sys.executable})"]
    lines.append(f"platform  {platform.platform()}")
    lines.append("")
    lines.append("packages")
    for name, v in versions().items():
        lines.append(f"  {name:<12} {v or '(not installed)'}")
    lines.append("")
    lines.append("jax")
    lines.append(f"  backend      {jax.default_backend()}")
    for d in jax.devices():
        lines.append(f"  device       {d.id}: {d.device_kind} ({d.platform})")
    lines.append(f"  x64          {bool(jax.config.jax_enable_x64)}")
    lines.append(f"  processes    {jax.process_count()}")
    reg = get_registry()
    lines.append("")
    lines.append(f"plugins ({len(reg.plugins)} loaded, {len(reg.failures)} failed)")
    counts: dict[str, int] = {}
    broken: dict[str, list[str]] = {}
    for e in reg.entries():
        counts[e.plugin] = counts.get(e.plugin, 0) + 1
        try:  # components load on first use; the doctor imports every one
            e.obj
        except RegistryError as exc:
            broken.setdefault(e.plugin, []).append(str(exc))
    for name in reg.plugins:
        bad = broken.get(name, [])
        status = "ok     " if not bad else "BROKEN "
        lines.append(f"  {name:<16} {status} {counts.get(name, 0)} components" + (f", {len(bad)} cannot be imported" if bad else ""))
        lines.extend(f"      {' '.join(m.split())}" for m in bad)
    for f in reg.failures:
        lines.append(f"  {f.plugin:<16} FAILED  {' '.join(f.error.split())}")
        if tracebacks and f.details:
            lines.extend("      " + t for t in f.details.rstrip().splitlines())
    if reg.failures and not tracebacks:
        lines.append("  (nqs doctor --tracebacks prints where each failure happened)")
    return lines


def version() -> str:
    """The installed nqs version (single source: `pyproject.toml`, read through `importlib.metadata`)."""
    return importlib.metadata.version("nqs")


def version_callback(value: bool) -> None:
    """`nqs --version`: print the version and exit."""
    if value:
        typer.echo(f"nqs {version()}")
        raise typer.Exit()
