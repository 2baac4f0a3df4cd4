"""`nqs list`: the registered components, one line each, grouped by kind."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ._common import UserError, console, registry


def list_(
    kind: Optional[str] = typer.Argument(None, help="Only this kind (system, ansatz, sampler, ...)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of {kind, name, plugin, summary} for scripts."),
):
    """List the registered components and the plugin that provides each (one line per component)."""
    from nqs_core import KINDS

    reg = registry()
    if kind is not None and kind not in KINDS:
        raise UserError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    entries = reg.entries(kind)
    if json_out:
        rows = [{"kind": e.kind, "name": e.name, "plugin": e.plugin, "summary": e.summary} for e in entries]
        typer.echo(json.dumps(rows, indent=1))
        return
    for line in format_entries(entries, KINDS, console.width):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def format_entries(entries, kinds, width: int) -> list[str]:
    """Lines of `nqs list`: a heading per kind (`kind (count): description`),
    then `  name  plugin  summary` per component (columns aligned within a kind),
    every line cut to `width` characters.

    **Returns:** the lines, none longer than `width`.
    """
    if not entries:
        return ["(no components registered)"]
    lines: list[str] = []
    for k, about in kinds.items():
        group = [e for e in entries if e.kind == k]
        if not group:
            continue
        if lines:
            lines.append("")
        lines.append(_cut(f"{k} ({len(group)}): {about}", width))
        name_w = max(len(e.name) for e in group)
        plugin_w = max(len(e.plugin) for e in group)
        for e in group:
            lines.append(_cut(f"  {e.name:<{name_w}}  {e.plugin:<{plugin_w}}  {e.summary}".rstrip(), width))
    return lines


def _cut(text: str, width: int) -> str:
    width = max(width, 20)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
