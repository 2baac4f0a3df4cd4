"""Plugin hooks and the component registry."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pathlib
import sys
import re
import traceback
import warnings
from typing import Any, Callable

import pluggy

PROJECT = "nqs"
ENTRY_POINT_GROUP = "nqs.plugins"
#: Set to 1 to load only the built-in plugins (those shipped in the `nqs` distribution).
DISABLE_AUTOLOAD_ENV = "NQS_DISABLE_PLUGIN_AUTOLOAD"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The kinds of component a plugin can register, and what each is for.
KINDS: dict[str, str] = {
    "lattice": "graphs of sites and bonds (chain, square, ...)",
    "space": "configuration spaces (spin-1/2 Hilbert space, particle positions, fields)",
    "system": "Hamiltonians and classical actions",
    "ansatz": "variational wave functions and other networks",
    "sampler": "Monte Carlo and direct samplers",
    "rule": "Metropolis moves (local flip, exchange, ...) that the metropolis and parallel_tempering samplers combine",
    "estimator": "turn samples into statistics and gradients",
    "preconditioner": "turn gradients into update directions (SR, SRt, ...)",
    "optimizer": "optax optimizers that apply the update",
    "driver": "the loop that runs a calculation",
    "integrator": "time steppers of the TDVP driver (Euler, Heun, RK4, adaptive RK23)",
    "exact": "exact reference solvers: f(system, max_states) -> ground-state energy or None",
    "observable": "quantities measured on a state with error bars (magnetisation, correlations, S(q), operators)",
    "command": "extra `nqs` subcommands: a typer.Typer (a command group) or a function (one command)",
}


class HookSpecs:
    """The hooks an nqs plugin implements."""

    @hookspec
    def nqs_register(self, registry: "Registry") -> None:
        """Add this plugin's components with `registry.add(kind, name, obj)`."""


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


_ABBREVIATIONS = {"eq", "eqs", "e.g", "i.e", "al", "cf", "fig", "ref", "vs", "sec"}


#: A lazy reference to a component: `"package.module:Name"` (imported on first use).
_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclasses.dataclass(frozen=True, eq=False)
class Entry:
    """One registered component.

    `target` is the component itself or a reference `"package.module:Name"`;
    a reference is imported the first time `obj` is read (so that listing
    components and starting the command line do not import every model).
    `summary` comes from the docstring, read from the source without
    importing when the component has not been imported yet.
    """

    kind: str
    name: str
    target: Any
    plugin: str
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def reference(self) -> str | None:
        """The `"package.module:Name"` the component was registered as, or `None`."""
        return self.target if isinstance(self.target, str) else None

    @property
    def loaded(self) -> bool:
        """Whether `obj` is available without importing anything."""
        return self.reference is None or "obj" in self._cache

    @property
    def obj(self) -> Callable[..., Any]:
        """The component (a class or factory), imported on first use.

        **Raises:** `RegistryError` naming the component, its plugin and the
        import error if its module cannot be imported.
        """
        if self.reference is None:
            return self.target
        if "obj" not in self._cache:
            self._cache["obj"] = _import_reference(self)
        return self._cache["obj"]

    @property
    def summary(self) -> str:
        """First sentence of the docstring (first paragraph, cut at '. ')."""
        if self.loaded:
            doc = inspect.getdoc(self.obj)
        else:
            doc = _source_docstring(self.target)
            if doc is None:  # not a plain def/class in its module's source: import it
                try:
                    doc = inspect.getdoc(self.obj)
                except RegistryError as exc:
                    return f"(cannot be imported: {exc.args[0].split(': ', 1)[-1]})"
        return first_sentence(doc or "")


def first_sentence(doc: str) -> str:
    """The first sentence of the first paragraph of a docstring (`Entry.summary`)."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    for m in re.finditer(r"\.\s+(?=[A-Z`(])", para):
        before = para[: m.start()]
        word = before.split()[-1] if before.split() else ""
        # not a sentence end: "S_i . S_j", "Eq. 12", "e.g. X", "et al. X"
        if before.endswith(" ") or word.rstrip(".").lower() in _ABBREVIATIONS:
            continue
        return para[: m.start() + 1]
    return para


def _plugin_output():
    """Send what plugin code prints while it is imported or registers itself to
    stderr: stdout belongs to the command (`nqs list --json`, `nqs measure --json`)."""
    return contextlib.redirect_stdout(sys.stderr)


def _import_reference(entry: Entry) -> Any:
    module, _, attr = entry.target.partition(":")
    try:
        with _plugin_output():
            obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except BaseException as exc:  # SystemExit at import too: a broken component, named
        raise RegistryError(
            f"{entry.kind} {entry.name!r} of plugin {entry.plugin!r} cannot be imported from {entry.target!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return obj


def _module_source(module: str) -> pathlib.Path | None:
    """The source file of `module`, found without importing it or its packages."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return pathlib.Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    locations = list(spec.submodule_search_locations or [])
    for i, part in enumerate(parts[1:], start=1):
        last = i == len(parts) - 1
        found = None
        for loc in locations:
            pkg = pathlib.Path(loc) / part
            if (pkg / "__init__.py").is_file():
                found = pkg / "__init__.py"
                locations = [str(pkg)]
                break
            if last and (pkg.with_suffix(".py")).is_file():
                found = pkg.with_suffix(".py")
                break
        if found is None:
            return None
        if last:
            return found
    return None


def _source_docstring(reference: str) -> str | None:
    """The docstring of the class or function `reference` names, read from its
    module's source (`None` if it is not a plain top-level def or class there,
    e.g. an assignment or an inherited docstring: then the caller imports it)."""
    module, _, attr = reference.partition(":")
    if module in sys.modules:  # already imported: the real object is at hand
        obj = sys.modules[module]
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return inspect.getdoc(obj)
    path = _module_source(module)
    if path is None or "." in attr:
        return None
    try:
        tree = _parsed(path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attr:
            return ast.get_docstring(node)
        # a command group, `app = typer.Typer(help="...")`: its help is its documentation
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == attr for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            for kw in node.value.keywords:
                if kw.arg == "help" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    return inspect.cleandoc(kw.value.value)
            return None
    return None


@functools.lru_cache(maxsize=None)
def _parsed(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@dataclasses.dataclass(frozen=True)
class Alias:
    """An old name of a renamed component: looking it up warns and gives the
    component registered under the new name."""

    kind: str
    old: str
    new: str
    plugin: str


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    plugin: str
    error: str
    details: str


class Registry:
    """Named components per kind, with the plugin that provided each.

    Plugins receive a view of it in their `nqs_register` hook and call
    `registry.add(kind, name, obj)`; `obj` is a class (or factory function)
    whose constructor arguments are the component's config fields.
    Duplicate names within a kind are rejected. A renamed component keeps its
    old name with `registry.alias(kind, old, new)`: configs that use the old
    name still work, with a `FutureWarning` naming the new one.
    """

    def __init__(self):
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._aliases: dict[str, dict[str, Alias]] = {k: {} for k in KINDS}
        self.failures: list[PluginFailure] = []
        self.plugins: list[str] = []
        self._current: str = "<python>"

    # -- writing -----------------------------------------------------------
    def _check_free(self, kind: str, name: str) -> None:
        if kind not in self._entries:
            raise RegistryError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        prev = self._entries[kind].get(name) or self._aliases[kind].get(name)
        if prev is not None:
            what = "" if isinstance(prev, Entry) else f" (as an old name of {prev.new!r})"
            raise RegistryError(
                f"{kind} {name!r} is already registered by plugin {prev.plugin!r}{what} "
                f"(plugin {self._current!r} tried to register it again)"
            )

    def add(self, kind: str, name: str, obj: Callable[..., Any] | str) -> None:
        """Register `obj` as the component `name` of `kind`.

        `obj` is the component (a class or factory function) or a reference
        `"package.module:Name"` to it, imported only when the component is
        first used: a plugin whose `_plugin.py` registers references (and
        imports only `nqs_core`) costs nothing at start-up, whatever its
        components import.
        """
        self._check_free(kind, name)
        if isinstance(obj, str) and not _REFERENCE.match(obj):
            raise RegistryError(
                f"{kind} {name!r} of plugin {self._current!r}: reference {obj!r} is not of the form 'package.module:Name'"
            )
        self._entries[kind][name] = Entry(kind, name, obj, self._current)

    def alias(self, kind: str, old: str, new: str) -> None:
        """Keep `old` as another name of the component `new` of `kind` (after a
        rename). Looking up `old` gives `new`'s entry and warns with a
        `FutureWarning` that names `new`; `names` and `entries` list only `new`.
        `new` may be registered later or by another plugin (it must exist when
        `old` is looked up), but must not itself be an old name."""
        self._check_free(kind, old)
        if new == old or new in self._aliases[kind]:
            raise RegistryError(f"{kind} alias {old!r} -> {new!r}: the new name must be a component's own name")
        self._aliases[kind][old] = Alias(kind, old, new, self._current)

    def remove(self, kind: str, name: str) -> None:
        """Remove the component (or old name) `name` of `kind`, if registered."""
        self._entries[kind].pop(name, None)
        self._aliases[kind].pop(name, None)

    # -- reading -----------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        if kind not in self._entries:
            raise RegistryError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        if name not in self._entries[kind] and name in self._aliases[kind]:
            return self._resolve(self._aliases[kind][name])
        try:
            return self._entries[kind][name]
        except KeyError:
            valid = ", ".join(sorted(self._entries[kind])) or "(none registered)"
            raise RegistryError(f"unknown {kind} {name!r}; valid names: {valid}") from None

    def _resolve(self, alias: Alias) -> Entry:
        if alias.new not in self._entries[alias.kind] and alias.new not in self._aliases[alias.kind]:
            raise RegistryError(
                f"{alias.kind} {alias.old!r} is an old name for {alias.new!r}, which no loaded plugin provides"
            )
        warnings.warn(
            f"{alias.kind} {alias.old!r} is an old name for {alias.new!r}; use name = {alias.new!r}",
            FutureWarning,
            stacklevel=3,
        )
        return self.get(alias.kind, alias.new)

    def names(self, kind: str) -> list[str]:
        """The registered names of `kind` (old names of renamed components not included)."""
        return sorted(self._entries[kind])

    def aliases(self, kind: str | None = None) -> list[Alias]:
        """The old names kept for renamed components (of `kind`, or of every kind)."""
        kinds = [kind] if kind else list(KINDS)
        return [self._aliases[k][n] for k in kinds for n in sorted(self._aliases[k])]

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]

    def find(self, name: str) -> list[Entry]:
        """All entries called `name`, across kinds (an old name gives the
        renamed component's entry, with its warning)."""
        found = [t[name] for t in self._entries.values() if name in t]
        for aliases in self._aliases.values():  # a loop, not a comprehension: the warning's stack level
            if name in aliases:
                found.append(self._resolve(aliases[name]))
        return found

    def register_plugin(self, plugin: Any, name: str | None = None) -> None:
        """Call the `nqs_register` hook of one plugin object or module directly
        (for plugins defined in a script or a test, without an entry point)."""
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        self._call(name, plugin.nqs_register)

    def _call(self, name: str, fn: Callable[..., Any]) -> None:
        self._current = name
        before = {k: dict(v) for k, v in self._entries.items()}
        before_aliases = {k: dict(v) for k, v in self._aliases.items()}
        try:
            with _plugin_output():
                fn(registry=self)
            self.plugins.append(name)
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the others down
            self._entries = before  # nor leave half of itself registered
            self._aliases = before_aliases
            self.failures.append(
                PluginFailure(name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )
        finally:
            self._current = "<python>"


def _builtin(ep: importlib.metadata.EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == "nqs"


def load_registry(autoload: bool | None = None) -> Registry:
    """Build a registry from every plugin in the `nqs.plugins` entry-point group.

    Built-in plugins come through the same group. With `autoload=False` (or
    the environment variable `NQS_DISABLE_PLUGIN_AUTOLOAD=1`) only the
    built-in ones load. A plugin that fails to import or to register is
    recorded in `registry.failures` with its name; the others still load.
    """
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0")
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    registry = Registry()
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _builtin(e), e.name))
    seen: dict[str, str] = {}
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        if ep.name in seen:
            registry.failures.append(
                PluginFailure(ep.name, f"entry-point name {ep.name!r} of distribution {dist!r} is already used by {seen[ep.name]!r}; skipped", "")
            )
            continue
        seen[ep.name] = dist
        if not autoload and not _builtin(ep):
            continue
        try:
            with _plugin_output():
                module = ep.load()
            pm.register(module, name=ep.name)
        except BaseException as exc:  # SystemExit / KeyboardInterrupt at import too: reported and skipped
            registry.failures.append(
                PluginFailure(ep.name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )
    for plugin_name, plugin in list(pm.list_name_plugin()):
        # hooks nqs does not define (a typo such as `nqs_regster`) are reported per plugin
        known = {a for a in dir(HookSpecs) if a.startswith("nqs_")}
        unknown = [a for a in dir(plugin) if a.startswith("nqs_") and a not in known and callable(getattr(plugin, a))]
        if unknown:
            registry.failures.append(PluginFailure(plugin_name, f"unknown hook(s) {', '.join(unknown)}; nqs defines nqs_register", ""))
    for impl in pm.hook.nqs_register.get_hookimpls():
        registry._call(impl.plugin_name, impl.function)
    return registry


_DEFAULT: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _DEFAULT
    if _DEFAULT is None or reload:
        _DEFAULT = load_registry()
    return _DEFAULT


def warn_failures(registry: Registry, file=sys.stderr) -> None:
    for f in registry.failures:
        print(f"nqs: plugin {f.plugin!r} failed to load: {f.error}", file=file)
