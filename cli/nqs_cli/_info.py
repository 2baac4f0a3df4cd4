"""`nqs info`: a component's documentation and fields (`nqs exact` is in `_exact.py`)."""

from __future__ import annotations

import inspect
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import UserError, console, registry


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
