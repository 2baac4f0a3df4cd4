"""Time-dependent couplings: piecewise-linear schedules of numeric fields of `[system]`.

`[[driver.schedule]]` tables of the TDVP driver (and `nqs exact --evolve`) name
a field of the `[system]` table (dotted for nested fields: `terms.1.coupling`)
and the points `(times, values)` it passes through. Between the points the
value is interpolated linearly, outside them it is constant; a repeated time
is a jump (the later value holds from that time on). A quench at `t = 0` needs
no schedule: start from the ground state of `H0` (`[run] init_from`) and
evolve with `H1` in `[system]`.

Couplings enter a Hamiltonian linearly, so `H(t)` is
`H(v0) + sum_f (f(t) - v0_f) (H(v0_f + 1) - H(v0_f))` with `v0` the values
of the `[system]` table: two builds per field, whatever the Hamiltonian.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from ._run_options import ConfigError


@dataclasses.dataclass(frozen=True)
class Ramp:
    """One scheduled field: piecewise linear through `(times, values)`.

    **Attributes:** `field` (dotted path inside `[system]`), `times`
    (non-decreasing), `values` (same length)."""

    field: str
    times: tuple[float, ...]
    values: tuple[float, ...]

    def value(self, t: float) -> float:
        """The field's value at time `t` (right-continuous at a jump)."""
        i = int(np.searchsorted(np.asarray(self.times), t, side="right")) - 1
        return float(_interpolate(self.times, self.values, i, t))

    def value_jnp(self, t):
        """The field's value at a traced time `t` (inside `jax.jit`)."""
        times = jnp.asarray(self.times, dtype=jnp.float64)
        values = jnp.asarray(self.values, dtype=jnp.float64)
        n = len(self.times)
        i = jnp.searchsorted(times, t, side="right") - 1
        lo = jnp.clip(i, 0, n - 1)
        hi = jnp.clip(i + 1, 0, n - 1)
        span = times[hi] - times[lo]
        frac = jnp.where(span > 0, (t - times[lo]) / jnp.where(span > 0, span, 1.0), 0.0)
        inside = values[lo] + frac * (values[hi] - values[lo])
        return jnp.where(i < 0, values[0], jnp.where(i >= n - 1, values[n - 1], inside))

    @property
    def breaks(self) -> tuple[float, ...]:
        """The times where the value's slope changes (integrators stop there)."""
        return tuple(sorted(set(self.times)))


def _interpolate(times, values, i, t):
    n = len(times)
    if i < 0:
        return values[0]
    if i >= n - 1:
        return values[-1]
    t0, t1 = times[i], times[i + 1]
    return values[i] + (t - t0) / (t1 - t0) * (values[i + 1] - values[i])


def parse_schedule(entries: Sequence[dict[str, Any]] | None) -> tuple[Ramp, ...]:
    """The `[[driver.schedule]]` tables as `Ramp`s (`ConfigError` naming the
    problem for a malformed entry: a missing field, unequal lengths, times
    that decrease or are not finite, a field scheduled twice)."""
    if entries is None:
        return ()
    if isinstance(entries, dict) or not isinstance(entries, (list, tuple)):
        raise ConfigError("[driver] schedule must be an array of tables: [[driver.schedule]] with field, times, values")
    ramps, seen = [], set()
    for j, entry in enumerate(entries):
        where = f"[[driver.schedule]] entry {j}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with field, times, values")
        unknown = sorted(set(entry) - {"field", "times", "values"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: field, times, values")
        missing = [k for k in ("field", "times", "values") if k not in entry]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (e.g. field = \"h\", times = [0.0, 1.0], values = [2.0, 0.5])")
        field, times, values = entry["field"], entry["times"], entry["values"]
        if not isinstance(field, str) or not field or field.startswith(".") or field.endswith("."):
            raise ConfigError(f"{where}: field must name a field of [system], e.g. \"h\" or \"terms.1.coupling\"; got {field!r}")
        if field == "name":
            raise ConfigError(f"{where}: the system's name cannot be scheduled; schedule a numeric field")
        for label, seq in (("times", times), ("values", values)):
            if not isinstance(seq, (list, tuple)) or not seq:
                raise ConfigError(f"{where}: {label} must be a non-empty list of numbers")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in seq):
                raise ConfigError(f"{where}: {label} must hold finite numbers, got {seq!r}")
        if len(times) != len(values):
            raise ConfigError(f"{where}: times and values must have the same length, got {len(times)} and {len(values)}")
        if any(b < a for a, b in zip(times, times[1:])):
            raise ConfigError(f"{where}: times must not decrease, got {list(times)}")
        if any(a == b == c for a, b, c in zip(times, times[1:], times[2:])):
            raise ConfigError(f"{where}: a time appears three times ({list(times)}); a jump repeats a time once")
        if field in seen:
            raise ConfigError(f"{where}: field {field!r} is scheduled twice; give it one entry")
        seen.add(field)
        ramps.append(Ramp(field, tuple(float(t) for t in times), tuple(float(v) for v in values)))
    return tuple(ramps)


def field_value(system_table: dict[str, Any], field: str) -> float:
    """The value of the dotted `field` in a `[system]` table (`ConfigError`
    when it is missing or not a number: only numeric fields can be scheduled)."""
    node: Any = system_table
    for k in field.split("."):
        if isinstance(node, list) and k.isdigit() and int(k) < len(node):
            node = node[int(k)]
        elif isinstance(node, dict) and k in node:
            node = node[k]
        else:
            raise ConfigError(
                f"[[driver.schedule]] field {field!r} is not in [system]; write the field in [system] too "
                "(its value there is the base point of the schedule)"
            )
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ConfigError(f"[[driver.schedule]] field {field!r} of [system] is {node!r}, not a number; only numeric fields can be scheduled")
    return float(node)


def set_field(system_table: dict[str, Any], field: str, value: float) -> None:
    """Set the dotted numeric `field` of a `[system]` table in place (it must
    exist and be a number: `field_value`)."""
    field_value(system_table, field)
    *path, last = field.split(".")
    node: Any = system_table
    for k in path:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def schedule_breaks(ramps: Sequence[Ramp], t0: float, t1: float) -> tuple[float, ...]:
    """The break points of the ramps strictly inside `(t0, t1)`, sorted."""
    return tuple(sorted({b for r in ramps for b in r.breaks if t0 < b < t1}))
