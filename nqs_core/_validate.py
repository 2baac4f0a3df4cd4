"""Argument checks shared by the core and the plugins."""

from __future__ import annotations

import operator


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as an `int` that is at least `minimum`.

    Accepts Python and NumPy integers (anything with `__index__`), not `bool`.

    **Raises:** `TypeError` naming `name` if `value` is not an integer,
    `ValueError` if it is below `minimum`.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {out}")
    return out
