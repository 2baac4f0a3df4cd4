"""`nqs info` (a component's documentation and fields) and `nqs exact` (the exact reference)."""

from __future__ import annotations

import inspect
import pathlib
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import SetOption, UserError, console, load, registry


def info(
    name: str = typer.Argument(..., help="Component name, e.g. rbm or ising."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Disambiguate when several kinds use the name."),
):
    """Show a component's documentation and config fields."""
    from nqs_core import component_fields, describe_type

    reg = registry()
    entries = [reg.get(kind, name)] if kind else reg.find(name)
    if not entries:
        valid = ", ".join(sorted({e.name for e in reg.entries()}))
        raise UserError(f"no component named {name!r}; valid names: {valid}")
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


def exact(
    config: pathlib.Path = typer.Argument(..., help="TOML config; its lattice, space and system tables are used."),
    set_: Optional[List[str]] = SetOption,
    digits: Optional[int] = typer.Option(None, "--digits", min=0, max=17, help="Decimals to print (default: the full float64 value, repr)."),
):
    """Exact ground-state energy of the config's system (Lanczos exact diagonalisation)."""
    from nqs_core import build, exact_energy, memory_limit, run_memory_limit

    reg = registry()
    cfg = load(config, set_ or [])
    show = repr if digits is None else (lambda v: f"{v:.{digits}f}")
    if "system" not in cfg:  # a driver with its own problem (e.g. the deuteron): its own exact reference
        calc = build(cfg, registry=reg, exact=False)
        name = calc.config["driver"]["name"]
        value = getattr(calc.driver, "exact_energy", None)
        if value is None or calc.driver.objective != "energy":
            raise UserError(
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
        raise UserError(f"no exact solver applies to system {calc.config['system']['name']!r}")
    n = system.space.size  # AbstractSystem.space is an AbstractSpace
    per = f"   per site {show(float(value) / n)}" if n else ""
    console.print(f"E0 = {show(float(value))}{per}", highlight=False)
