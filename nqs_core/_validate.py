"""Argument checks shared by the core and the plugins."""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import operator
import os


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


def check_chains(n_samples, n_chains) -> tuple[int, int]:
    """`(n_samples, n_chains)` as integers, refusing combinations that cannot be
    met exactly: every chain gives `n_samples // n_chains` samples, so
    `n_samples` must be a positive multiple of `n_chains`.

    **Raises:** `TypeError` / `ValueError` naming the fields and the nearest
    valid `n_samples`.
    """
    n_samples = check_int("n_samples", n_samples, minimum=1)
    n_chains = check_int("n_chains", n_chains, minimum=1)
    if n_chains > n_samples:
        raise ValueError(
            f"n_chains = {n_chains} is more than n_samples = {n_samples}; "
            f"use n_chains <= n_samples (each chain gives n_samples / n_chains samples)"
        )
    if n_samples % n_chains:
        lo, hi = n_samples - n_samples % n_chains, n_samples + n_chains - n_samples % n_chains
        raise ValueError(
            f"n_samples = {n_samples} is not a multiple of n_chains = {n_chains}; "
            f"use n_samples = {lo} or {hi} (or another n_chains)"
        )
    return n_samples, n_chains


def check_positive(name: str, value) -> float:
    """`value` as a finite `float` > 0 (a learning rate, a width, ...).

    **Raises:** `TypeError` if it is not a number, `ValueError` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


#: Environment variable with the default memory limit of `check_memory`, in GB.
MEMORY_ENV = "NQS_MAX_MEMORY_GB"
_MEMORY_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("nqs_memory_limit", default=None)


def default_memory_limit() -> float:
    """Bytes `check_memory` allows when no limit is set: `$NQS_MAX_MEMORY_GB`
    if set, else half of the machine's physical memory (8 GB where unknown)."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            return float(env) * 1e9
        except ValueError:
            raise ValueError(f"{MEMORY_ENV} must be a number of GB, got {env!r}") from None
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8e9


@contextlib.contextmanager
def memory_limit(limit_gb: float | None):
    """Within the block, `check_memory` without an explicit limit allows
    `limit_gb` GB (`None`: the default, see `default_memory_limit`)."""
    token = _MEMORY_LIMIT.set(None if limit_gb is None else float(limit_gb) * 1e9)
    try:
        yield
    finally:
        _MEMORY_LIMIT.reset(token)


class MemoryLimitError(ValueError):
    """A computation would need more memory than the configured limit."""


def check_memory(n_bytes: float, what: str, limit: float | None = None) -> float:
    """Refuse a computation that would need more than `limit` bytes.

    Call it with an estimate *before* allocating (exact diagonalisation,
    full sums over a space, exact sampling, parameters).

    **Arguments:**

    - `n_bytes`: the estimated peak memory.
    - `what`: what needs it, for the message (e.g. "exact diagonalisation of 2^40 states").
    - `limit`: bytes allowed; `None`: the limit of the enclosing `memory_limit`
      block, else `default_memory_limit()` ([run] max_memory_gb in a config,
      `$NQS_MAX_MEMORY_GB` on the command line).

    **Returns:** `n_bytes`. **Raises:** `MemoryLimitError` (a `ValueError`) naming both numbers.
    """
    if limit is None:
        limit = _MEMORY_LIMIT.get()
    if limit is None:
        limit = default_memory_limit()
    if not n_bytes <= limit:
        raise MemoryLimitError(
            f"{what} would need about {format_bytes(n_bytes)}, more than the limit of {format_bytes(limit)}; "
            f"use a smaller system, or raise the limit ([run] max_memory_gb or ${MEMORY_ENV}) if the machine has the memory"
        )
    return n_bytes


def format_bytes(n: float) -> str:
    """`5.1e12` -> `"5.1 TB"` (decimal units)."""
    for unit, size in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"
