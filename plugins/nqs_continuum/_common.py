"""Small argument checks shared by the continuum components."""

from __future__ import annotations

import math

import nqs_core

as_int = nqs_core.check_int


def as_float(name: str, value, positive: bool = False, lo: float | None = None, hi: float | None = None) -> float:
    """`value` as a finite Python float (optionally > 0 or inside `(lo, hi)`)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if positive and out <= 0.0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if lo is not None and not out > lo:
        raise ValueError(f"{name} must be > {lo}, got {out}")
    if hi is not None and not out < hi:
        raise ValueError(f"{name} must be < {hi}, got {out}")
    return out
