"""MkDocs hooks that generate the parts of the docs that must not rot.

Markers in a page's Markdown are replaced before the page is rendered:

- `<!-- nqs:components -->`: a table of every component the built-in plugins
  register (kind, name, plugin, summary, page), read from the registry, so a new
  or renamed component appears without editing the page.
- `<!-- nqs:components plugin=NAME -->`: the same table for one plugin.
- `<!-- nqs:api -->`: the API reference: one mkdocstrings block (`::: module.Name`)
  for every public name that `nqs_core` re-exports, grouped by module.

`mkdocs.yml` names this file under `hooks:`; `tests/test_docs.py` checks that the
generated tables list every registered component and that the API reference
lists every public protocol.
"""

from __future__ import annotations

import posixpath
import re

#: The page of docs/components/ that documents each built-in plugin.
PLUGIN_PAGES = {
    "core": "core.md",
    "spins": "spins.md",
    "networks": "networks.md",
    "optim": "optim.md",
    "autoregressive": "autoregressive.md",
    "continuum": "continuum.md",
    "deuteron": "deuteron.md",
    "phi4": "phi4.md",
    "vq": "vq.md",
    "dynamics": "dynamics.md",
}

_COMPONENTS = re.compile(r"<!--\s*nqs:components(?:\s+plugin=(\w+))?\s*-->")
_API = re.compile(r"<!--\s*nqs:api\s*-->")


def _registry():
    from nqs_core._registry import load_registry

    return load_registry(autoload=False)  # the built-in plugins: what these docs describe


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def component_table(plugin: str | None = None, page_path: str = "components/index.md") -> str:
    """A Markdown table of the registered components (of one plugin, or all),
    with links relative to the page at `page_path` (relative to docs/)."""
    reg = _registry()
    here = posixpath.dirname(page_path)
    rows = ["| kind | name | plugin | summary | defined in | page |", "| --- | --- | --- | --- | --- | --- |"]
    for entry in sorted(reg.entries(), key=lambda e: (e.kind, e.plugin, e.name)):
        if plugin is not None and entry.plugin != plugin:
            continue
        page = PLUGIN_PAGES.get(entry.plugin)
        link = f"[{entry.plugin}]({posixpath.relpath('components/' + page, here or '.')})" if page else ""
        where = entry.reference or f"{entry.obj.__module__}:{entry.obj.__qualname__}"
        rows.append(f"| `{entry.kind}` | `{entry.name}` | `{entry.plugin}` | {_cell(entry.summary)} | `{where}` | {link} |")
    return "\n".join(rows)


def public_names() -> dict[str, list[str]]:
    """`nqs_core`'s public names by implementing module (from its lazy-export map)."""
    import nqs_core

    by_module: dict[str, list[str]] = {}
    for name in nqs_core.__all__:
        if name == "lazy_exports":
            by_module.setdefault("nqs_core._lazy", []).append(name)
            continue
        module = nqs_core.__getattr__.where.get(name)
        if module is not None and module.startswith("."):
            module = "nqs_core" + module
        if module is None:  # a public submodule (nqs_core.testing, nqs_core.distributed)
            by_module.setdefault(f"nqs_core.{name}", [])
            continue
        by_module.setdefault(module, []).append(name)
    return by_module


def api_reference() -> str:
    """mkdocstrings blocks for every public name of `nqs_core`, grouped by module."""
    out = []
    for module, names in sorted(public_names().items()):
        title = module.removeprefix("nqs_core.").lstrip("_")
        out.append(f"## `{title}`\n")
        if not names:
            out.append(f"::: {module}\n    options:\n      show_root_heading: false\n      members: false\n")
        for name in sorted(names):
            out.append(f"::: {module}.{name}\n    options:\n      heading_level: 3\n      show_root_full_path: false\n")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    path = page.file.src_uri
    markdown = _COMPONENTS.sub(lambda m: component_table(m.group(1), path), markdown)
    if _API.search(markdown):
        markdown = _API.sub(lambda m: api_reference(), markdown)
    return markdown


