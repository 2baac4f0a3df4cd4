"""Lazy re-exports for package `__init__` modules (PEP 562).

`import nqs_core` (and `import nqs_spins`, ...) must not import jax: `nqs list`,
`nqs --help` and a refused `nqs exact` would otherwise spend seconds loading
models they never use. A package therefore names what it re-exports and where
each name lives; the module is imported on the first access of one of its
names, and the value is then stored in the package so the next access is an
ordinary attribute lookup.

This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable


def lazy_exports(
    package: str,
    exports: dict[str, Iterable[str]],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The `__getattr__`, `__dir__` and `__all__` of a package whose public names
    are imported on first use.

    Use it at the end of a package's `__init__.py` (it is public as `nqs_core.lazy_exports`):

    ```python
    from nqs_core import lazy_exports

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {
        "._system": ["Heisenberg", "Ising"],
        "._space": ["SpinHalf"],
    }, submodules=["operators"])
    ```

    **Arguments:**

    - `package`: the package's `__name__`.
    - `exports`: module (relative to `package`, or absolute) -> the names it
      provides. `from package import Name` and `package.Name` import that
      module on first use.
    - `submodules`: submodules that are themselves public (`package.operators`).

    **Returns:** `(__getattr__, __dir__, __all__)` for the package's namespace.
    **Raises:** `ValueError` at definition if a name is exported twice.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by both {where[name]!r} and {module!r}")
            where[name] = module
    subs = tuple(submodules)
    public = sorted(set(where) | set(subs))

    def __getattr__(name: str) -> Any:
        pkg = sys.modules[package]
        if name in where:
            value = getattr(importlib.import_module(where[name], package), name)
        elif name in subs:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(pkg, name, value)  # the next access does not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    #: name -> module (as given) of every lazy export, for tools that document the
    #: package without importing it (the API reference of docs/api.md)
    __getattr__.where = dict(where)

    return __getattr__, __dir__, public
