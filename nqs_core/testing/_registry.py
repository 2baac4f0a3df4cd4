"""Parametrising tests over a registry kind (`registered`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .._registry import Registry, get_registry

# -- the registry ----------------------------------------------------------------


def registered(
    kind: str,
    factories: Mapping[str, Callable[[], Any]] | None = None,
    *,
    default: Callable[[str], Any] | None = None,
    uncovered: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> list[tuple[str, Callable[[], Any]]]:
    """`(name, factory)` for every registered component of `kind`, for
    `pytest.mark.parametrize("name, factory", registered(...))`.

    Every registered name must be covered: by `factories[name]` (a
    zero-argument callable building what the test needs), else by
    `default(name)` (called lazily, e.g. building a small config with that
    name), or be listed in `uncovered` with the reason it is not checked.

    **Raises:** `ValueError` for a registered name that is not covered, an
    empty reason, or a name in `factories` / `uncovered` that is not
    registered (a stale table).
    """
    registry = get_registry() if registry is None else registry
    factories = dict(factories or {})
    uncovered = dict(uncovered or {})
    names = registry.names(kind)
    stale = sorted((set(factories) | set(uncovered)) - set(names))
    if stale:
        raise ValueError(f"registered({kind!r}): {', '.join(stale)} are not registered {kind} names; remove them from the table")
    out = []
    for name in names:
        if name in uncovered:
            if not str(uncovered[name]).strip():
                raise ValueError(f"registered({kind!r}): {name} is uncovered without a reason; give one")
            continue
        if name in factories:
            out.append((name, factories[name]))
        elif default is not None:
            out.append((name, lambda name=name: default(name)))
        else:
            raise ValueError(
                f"registered({kind!r}): {kind} {name!r} has no factory; add one (or a default), "
                "or list it in uncovered with the reason"
            )
    return out
