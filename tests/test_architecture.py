"""Architecture rules, checked on the source text (AST), not by running it.

- Plugins read what a core protocol declares, not what one implementation
  happens to have: no `getattr(` / `hasattr(` in `plugins/` (issue 16, item 1).
- `nqs_core` has no import cycle, imports no plugin, and imports at module
  level only, except for the lazy imports of heavy or optional libraries
  listed below with their reasons.
- The CLI package (`cli/nqs_cli`) has no import circle and no function-local
  import of a sibling module: `_common` at the bottom, the command modules
  import only it, `_app` assembles them.
- No plugin imports another plugin, and plugins use only the public API of
  `nqs_core` (no `nqs_core._private` module).

Each allow-list below names the file and the exact expression, with the reason
it is allowed; a new entry needs a reason of the same kind.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "nqs_core"
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())
PLUGIN_NAMES = frozenset(p.name for p in PLUGINS)
# the example plugins of the docs are plugins too: they show the rules to plugin authors
EXAMPLE_PLUGINS = sorted(p.parent for p in (ROOT / "docs").glob("example_*plugin/*/__init__.py"))


def _files(package: pathlib.Path) -> list[pathlib.Path]:
    return sorted(package.rglob("*.py"))


def _parse(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module):
    """`(node, is_local)` for every import that runs (not under `if TYPE_CHECKING:`);
    `is_local` when it sits inside a function or class body."""
    out = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, local))
            visit(child, local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)))

    visit(tree, False)
    return out


def _absolute_modules(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names of the modules an import statement loads, relative imports
    resolved inside the flat package `package`."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        base = node.module or ""
    elif node.level == 1:
        base = package + ("." + node.module if node.module else "")
    else:  # pragma: no cover - the packages are flat
        raise AssertionError(f"relative import beyond the package: level {node.level}")
    # `from pkg import name` may load the submodule pkg.name
    return [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]


# ---------------------------------------------------------------------------------------
# (a) no getattr / hasattr on protocol objects in plugins

#: `(file, call)` pairs allowed to use getattr/hasattr, each on something that is
#: not a protocol object.
GETATTR_ALLOWED = {
    # NumPy version check: np.bitwise_count exists from NumPy 2.0 on; older NumPy
    # gets the fallback popcount.
    ("plugins/nqs_spins/_space.py", "hasattr(np, 'bitwise_count')"),
}


def _getattr_calls(path: pathlib.Path) -> list[tuple[str, int]]:
    """`(call, line)` of every `getattr(...)` / `hasattr(...)` call in a file."""
    return [
        (ast.unparse(node), node.lineno)
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
    ]


def test_no_getattr_or_hasattr_in_plugins():
    calls = [(_rel(f), call, line) for p in PLUGINS + EXAMPLE_PLUGINS for f in _files(p) for call, line in _getattr_calls(f)]
    found = [f"{path}:{line}: {call}" for path, call, line in calls if (path, call) not in GETATTR_ALLOWED]
    assert not found, (
        "plugins must read attributes a core protocol declares (declare it there, or use "
        "isinstance on the protocol or on the plugin's own class), not probe with getattr/hasattr:\n"
        + "\n".join(found)
    )
    # every allow-list entry still exists (a stale entry would allow a new use elsewhere)
    present = {(path, call) for path, call, _ in calls}
    assert GETATTR_ALLOWED <= present, f"stale allow-list entries: {sorted(GETATTR_ALLOWED - present)}"


def test_getattr_scan_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(space):\n    return getattr(space, "total_sz", None) or hasattr(space, "n_up")\n')
    assert _getattr_calls(bad) == [("getattr(space, 'total_sz', None)", 2), ("hasattr(space, 'n_up')", 2)]


# ---------------------------------------------------------------------------------------
# (a') the full sum is an ordinary sampler: no isinstance on its classes outside its module

#: The module that defines the full-sum family (state, sampler, estimator).
FULL_SUM_MODULE = "nqs_core/_fullsum.py"


def _full_sum_isinstance(path: pathlib.Path) -> list[tuple[str, int]]:
    """`(call, line)` of every `isinstance(...)` / `issubclass(...)` naming a `FullSum*` class."""
    out = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass"):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if any(n.startswith("FullSum") for n in names):
                out.append((ast.unparse(node), node.lineno))
    return out


def test_no_isinstance_on_the_full_sum_outside_its_module():
    files = _files(CORE) + [f for p in PLUGINS for f in _files(p)] + _files(ROOT / "cli" / "nqs_cli")
    found = [f"{_rel(f)}:{line}: {call}" for f in files if _rel(f) != FULL_SUM_MODULE for call, line in _full_sum_isinstance(f)]
    assert not found, (
        "the full sum is a sampler whose samples carry weights (nqs_core.Samples); read the weights "
        "(or the sampler's declared default_estimator) instead of asking for its class:\n" + "\n".join(found)
    )


def test_full_sum_isinstance_scan_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(d):\n    return isinstance(d.sampler, nqs_core.FullSumSampler) or isinstance(d, (A, FullSumState))\n")
    assert [line for _, line in _full_sum_isinstance(bad)] == [2, 2]


# ---------------------------------------------------------------------------------------
# (b) nqs_core has no import cycle


def _package_graph(directory: pathlib.Path, package: str, local: bool | None = None) -> dict[str, set[str]]:
    """Module import graph of the flat package `directory/*.py` (`__init__`
    included): an edge `a -> b` when module `a` imports module `b` anywhere
    (function-local imports included: a lazy import is how a cycle hides).
    With `local=True` only the imports inside functions count, with `False` only
    those at module level."""
    modules = {p.stem: p for p in directory.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node, is_local in _imports(_parse(path)):
            if local is not None and is_local != local:
                continue
            base, *named = _absolute_modules(node, package)
            if isinstance(node, ast.ImportFrom) and base == package:
                # `from . import x`: the submodule x, or a name of the package itself
                targets = [n.split(".")[1] if n.split(".")[1] in modules else "__init__" for n in named]
            else:
                dotted = [base, *named] if isinstance(node, ast.Import) else [base]
                parts = [d.split(".") for d in dotted if d.split(".")[0] == package]
                targets = [p[1] if len(p) > 1 and p[1] in modules else "__init__" for p in parts]
            edges.update(t for t in targets if t != name)
        graph[name] = edges
    return graph


def _core_graph() -> dict[str, set[str]]:
    """Module import graph of `nqs_core/*.py` (see `_package_graph`)."""
    return _package_graph(CORE, "nqs_core")


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes (first == last), or `None`."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_core_imports_are_acyclic():
    graph = _core_graph()
    assert graph["__init__"], "the graph is empty: the scan is broken"
    assert "_space" in graph["_sampler"]
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle in nqs_core: " + " -> ".join(cycle)


def test_core_graph_sees_the_package_imports():
    graph = _core_graph()
    # the package re-exports lazily (nqs_core._lazy): at import it needs only that helper
    assert graph["__init__"] == {"_lazy"}
    assert graph["_lazy"] == set()
    assert graph["distributed"] == {"_distributed"}
    assert "_distributed" in graph["_io"]


def test_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


# ---------------------------------------------------------------------------------------
# (b') the CLI package: layers without a circle (issue 28, deliverable 6)

CLI = ROOT / "cli" / "nqs_cli"
#: the bottom of the CLI (consoles, exit codes, the one error path) and the top (assembly)
CLI_BOTTOM, CLI_TOP = "_common", "_app"


def _cli_problems(directory: pathlib.Path, package: str) -> list[str]:
    """What breaks the CLI's layering: an import circle, a function-local import
    of a sibling module (how a back edge hides), a command module importing
    anything of the package but the bottom module, the bottom importing a sibling."""
    problems = []
    cycle = _find_cycle(_package_graph(directory, package))
    if cycle:
        problems.append("import circle: " + " -> ".join(cycle))
    for name, edges in sorted(_package_graph(directory, package, local=True).items()):
        problems += [f"{name} imports {e} inside a function" for e in sorted(edges)]
    for name, edges in sorted(_package_graph(directory, package, local=False).items()):
        allowed = {
            CLI_BOTTOM: set(), CLI_TOP: set(_package_graph(directory, package)) - {CLI_TOP, "__init__", "__main__"},
            "__init__": {CLI_TOP}, "__main__": {CLI_TOP},
        }.get(name, {CLI_BOTTOM})
        problems += [f"{name} imports {e} (a layer above, or beside it)" for e in sorted(edges - allowed)]
    return problems


def test_cli_has_no_import_circle_and_plain_layers():
    graph = _package_graph(CLI, "nqs_cli")
    assert {"_common", "_app", "_run", "_measure"} <= set(graph), "the scan does not see the CLI modules"
    assert "_common" in graph["_run"] and "_run" in graph["_app"]
    assert _cli_problems(CLI, "nqs_cli") == []


def test_cli_scan_finds_hidden_back_edges(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from ._app import main\n")
    (pkg / "_common.py").write_text("X = 1\n")
    (pkg / "_app.py").write_text("from ._run import run\n\ndef main():\n    run()\n")
    (pkg / "_run.py").write_text("from ._common import X\n\ndef run():\n    from ._app import main\n    return main, X\n")
    (pkg / "_plot.py").write_text("from ._run import run\n")
    assert _cli_problems(pkg, "pkg") == [
        "import circle: _app -> _run -> _app",
        "_run imports _app inside a function",
        "_plot imports _run (a layer above, or beside it)",
    ]


# ---------------------------------------------------------------------------------------
# (c) plugins are independent of each other; the core imports no plugin; public API only


def _top_level_imports(path: pathlib.Path, package: str) -> list[tuple[str, int]]:
    return [
        (dotted, node.lineno)
        for node, _ in _imports(_parse(path))
        for dotted in _absolute_modules(node, package)
    ]


def _is_private_core(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == "nqs_core" and any(p.startswith("_") for p in parts[1:])


def _private_core_imports(path: pathlib.Path, package: str) -> list[tuple[str, int]]:
    """`(private nqs_core module, line)` for each import of one (`import nqs_core._x`,
    `from nqs_core._x import y`, `from nqs_core import _x`)."""
    out = []
    for node, _ in _imports(_parse(path)):
        base, *named = _absolute_modules(node, package)
        modules = [base] if isinstance(node, ast.ImportFrom) else [base, *named]
        if isinstance(node, ast.ImportFrom) and base == "nqs_core":
            modules = named
        out += [(m, node.lineno) for m in modules if _is_private_core(m)]
    return out


def _private_core_attributes(path: pathlib.Path) -> list[tuple[str, int]]:
    """`nqs_core._x` attribute reads (a private module reached without importing it)."""
    return [
        (ast.unparse(node), node.lineno)
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "nqs_core"
        and node.attr.startswith("_")
    ]


def _plugin_findings(plugin: pathlib.Path) -> list[str]:
    """Imports of other plugins and of private `nqs_core` modules in a plugin package."""
    found = []
    for f in _files(plugin):
        where = f.relative_to(plugin.parent).as_posix()
        for dotted, line in _top_level_imports(f, plugin.name):
            top = dotted.split(".")[0]
            if top in PLUGIN_NAMES and top != plugin.name:
                found.append(f"{where}:{line}: imports the plugin {top} (plugins talk through nqs_core only)")
        for module, line in _private_core_imports(f, plugin.name):
            found.append(f"{where}:{line}: imports the private {module} (use the public nqs_core API)")
        for expr, line in _private_core_attributes(f):
            found.append(f"{where}:{line}: uses the private {expr} (use the public nqs_core API)")
    return found


@pytest.mark.parametrize("plugin", PLUGINS + EXAMPLE_PLUGINS, ids=lambda p: p.name)
def test_plugin_imports_no_other_plugin_and_no_core_private(plugin):
    found = _plugin_findings(plugin)
    assert not found, "\n".join(found)


def test_no_plugin_imports_nqs_spins():
    """Operators, local spaces and lattices a plugin needs live in nqs_core
    (issue 28): no other plugin may import the spins plugin."""
    found = [
        f"{f.relative_to(plugin.parent).as_posix()}:{line}: imports nqs_spins"
        for plugin in PLUGINS + EXAMPLE_PLUGINS
        if plugin.name != "nqs_spins"
        for f in _files(plugin)
        for dotted, line in _top_level_imports(f, plugin.name) + [(n, ln) for _, n, ln in _local_imports(f)]
        if dotted.split(".")[0] == "nqs_spins"
    ]
    assert not found, "\n".join(found)


def test_plugin_scan_can_fail(tmp_path):
    pkg = tmp_path / "nqs_bad"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from ._x import f\n")
    (pkg / "_x.py").write_text(
        "import nqs_core\nfrom nqs_core._distributed import n_ranks\nfrom nqs_core import _tree, parameters\n"
        "def f():\n    import nqs_spins\n    return nqs_core._config.build\n"
    )
    assert _plugin_findings(pkg) == [
        "nqs_bad/_x.py:5: imports the plugin nqs_spins (plugins talk through nqs_core only)",
        "nqs_bad/_x.py:2: imports the private nqs_core._distributed (use the public nqs_core API)",
        "nqs_bad/_x.py:3: imports the private nqs_core._tree (use the public nqs_core API)",
        "nqs_bad/_x.py:6: uses the private nqs_core._config (use the public nqs_core API)",
    ]


def test_core_imports_no_plugin():
    found = [
        f"{_rel(f)}:{line}: imports {dotted}"
        for f in sorted(CORE.glob("*.py"))
        for dotted, line in _top_level_imports(f, "nqs_core")
        if dotted.split(".")[0] in PLUGIN_NAMES | {"nqs_cli"}
    ]
    assert not found, "the core must not import a plugin or the CLI:\n" + "\n".join(found)


#: `(file, private module)` imports the CLI may still make, with the reason (none today).
CLI_PRIVATE_ALLOWED: dict[tuple[str, str], str] = {}


def test_cli_uses_the_public_core_api():
    """The CLI is a client of nqs_core like a plugin: public names only."""
    found = []
    for f in _files(ROOT / "cli"):
        for module, line in _private_core_imports(f, "nqs_cli"):
            if (_rel(f), module) not in CLI_PRIVATE_ALLOWED:
                found.append(f"{_rel(f)}:{line}: imports the private {module}")
        found += [f"{_rel(f)}:{line}: uses the private {expr}" for expr, line in _private_core_attributes(f)]
    assert not found, "\n".join(found)


def test_private_import_detection():
    assert _is_private_core("nqs_core._distributed")
    assert not _is_private_core("nqs_core.distributed")
    assert not _is_private_core("nqs_core")


# ---------------------------------------------------------------------------------------
# (d) no function-local imports in nqs_core

#: `(file, imported module)` lazy imports allowed inside functions, with the reason.
LOCAL_IMPORTS_ALLOWED = {
    # MPI is optional and only imported when the process was started by an MPI
    # launcher: `import mpi4py` initialises MPI.
    ("nqs_core/_distributed.py", "mpi4py"): "optional, initialises MPI on import",
    ("nqs_core/_distributed.py", "mpi4jax"): "optional, imported with MPI only",
    ("nqs_core/_sweep.py", "matplotlib"): "heavy (about a second to import), only when a sweep is plotted",
}


def _local_imports(path: pathlib.Path) -> list[tuple[str, str, int]]:
    out = []
    for node, local in _imports(_parse(path)):
        if not local:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            names = [("." * node.level) + (node.module or "")]
        out += [(_rel(path), name, node.lineno) for name in names]
    return out


def test_no_function_local_imports_in_core():
    imports = [i for f in sorted(CORE.glob("*.py")) for i in _local_imports(f)]
    found = [
        f"{path}:{line}: import of {name} inside a function"
        for path, name, line in imports
        if (path, name.split(".")[0] if not name.startswith(".") else name) not in LOCAL_IMPORTS_ALLOWED
    ]
    assert not found, (
        "nqs_core imports at module level (a lazy import hides a cycle or a slow start-up; "
        "allow-list heavy optional libraries with a reason):\n" + "\n".join(found)
    )
    present = {(path, name.split(".")[0] if not name.startswith(".") else name) for path, name, _ in imports}
    # an entry whose import is gone must go too
    stale = set(LOCAL_IMPORTS_ALLOWED) - present
    assert not stale, f"stale allow-list entries: {sorted(stale)}"


# ---------------------------------------------------------------------------------------
# (e) one registration style: a COMPONENTS table and one documented loop


def _registration_problems(path: pathlib.Path) -> list[str]:
    tree = _parse(path)
    problems = []
    tables = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    components = tables.get("COMPONENTS")
    if not isinstance(components, ast.Tuple) or not all(
        isinstance(e, ast.Tuple) and len(e.elts) == 3 and all(isinstance(c, ast.Constant) for c in e.elts[:2])
        for e in components.elts
    ):
        problems.append("no module-level COMPONENTS tuple of (kind, config name, object)")
    hooks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "nqs_register"]
    if len(hooks) != 1 or not ast.get_docstring(hooks[0]):
        problems.append("no documented nqs_register hook")
    else:
        body = hooks[0].body[1:]
        loops = [n for n in body if isinstance(n, ast.For) and isinstance(n.iter, ast.Name)]
        if len(loops) != len(body) or [n.iter.id for n in loops][:1] != ["COMPONENTS"]:
            problems.append("nqs_register is not a loop over COMPONENTS (and tables such as ALIASES)")
    return [f"{_rel(path)}: {p}" for p in problems]


def test_one_registration_style():
    files = [p / "_plugin.py" for p in PLUGINS] + [CORE / "_builtin.py"]
    assert all(f.is_file() for f in files), [f for f in files if not f.is_file()]
    problems = [p for f in files for p in _registration_problems(f)]
    assert not problems, "register as nqs_core/_builtin.py does:\n" + "\n".join(problems)


def test_registration_scan_can_fail(tmp_path):
    old_style = tmp_path / "_plugin.py"
    old_style.write_text(
        "from nqs_core import hookimpl\n\n@hookimpl\ndef nqs_register(registry):\n"
        "    registry.add('ansatz', 'rbm', object)\n"
    )
    assert _registration_problems(old_style) == [
        "_plugin.py: no module-level COMPONENTS tuple of (kind, config name, object)",
        "_plugin.py: no documented nqs_register hook",
    ]
