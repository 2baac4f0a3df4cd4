"""Parameter sweeps: one run directory per point of a grid of config values,
collected into a summary table (`nqs sweep`, `nqs plot SWEEP_DIR`).

A sweep is a base config plus axes (dotted fields, each with a list of
values), combined as a Cartesian product or zipped. Every point is an ordinary
run (`nqs_core.run`) in a directory of its own under the sweep directory,
named by its index and values (`000_system.h=0.2`). The sweep's spec (base
config, axes, mode, points) is saved in `sweep.json`, so that a sweep that
was stopped continues where it stopped and an edited sweep is refused.
Optionally each point starts from the parameters of the previous finished
point (`warm_start`, through `[run] init_from`): the iterative-retraining
idea (Hibat-Allah et al. 2020, Sec. III) applied along a coupling.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime
import io
import itertools
import json
import math
import pathlib
import re
from typing import Any, Callable

import jax

from ._config import ConfigError, _auto_exact, build, get_registry
from ._io import CHECKPOINT_META, CONFIG_FILE, RESULT_FILE, strict_json, write_text
from ._lock import LOCK_FILE, RunLock, lock_note
from ._run import fingerprint, resume, run
from ._spectrum import exact_from_config
from ._toml import apply_overrides, load_config, set_dotted, tomllib

#: files of a sweep directory
SPEC_FILE, SUMMARY_CSV, SUMMARY_JSON = "sweep.json", "summary.csv", "summary.json"
#: the settings of a `[sweep]` table; every other key is a swept field
SWEEP_SETTINGS = ("mode", "warm_start", "output")
MODES = ("product", "zip")
#: `[sweep]` range tables: `{start = 0.2, stop = 2.0, count = 10}`
RANGE_KEYS = ("start", "stop", "count")
#: status of a point in the summary, and the `nqs` exit code it stands for
STATUS_CODES = {"ok": 0, "stopped": 3, "check_failed": 4, "pending": None}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*:\s*(\d+)\s*$")


def parse_range(text: str) -> list | None:
    """The values of a range `start:stop:count` (inclusive, like
    `numpy.linspace`: `0.2:2.0:10` is 10 values from 0.2 to 2.0), or `None`
    when `text` is not one. Integer ends whose values are all integers give
    ints (`8:16:5` is 8, 10, 12, 14, 16).

    **Raises:** `ConfigError` for a count below 1.
    """
    if not isinstance(text, str):
        return None
    m = _RANGE.match(text)
    if m is None:
        return None
    start, stop, count = m.group(1), m.group(2), int(m.group(3))
    return linspace(_number(start), _number(stop), count, what=text)


def _number(text: str):
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


def linspace(start, stop, count, what: str = "range") -> list:
    """`count` values from `start` to `stop`, both included (ints when both ends
    are ints and every value is an integer)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{what}: the count must be an integer >= 1 (start:stop:count), got {count!r}")
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{what}: {name} must be a finite number, got {v!r}")
    if count == 1:
        return [start]
    # rounded to 12 significant digits: 0.6, not 0.6000000000000001 (names, tables, plots)
    values = [float(f"{start + (stop - start) * i / (count - 1):.12g}") for i in range(count)]
    values[-1] = stop  # exact end point
    if isinstance(start, int) and isinstance(stop, int) and all(float(v).is_integer() for v in values):
        return [int(v) for v in values]
    return [float(v) for v in values]


def axis_values(key: str, spec: Any) -> list:
    """The values of one swept field: a list, a range string `start:stop:count`
    or a range table `{start, stop, count}` (else `ConfigError`)."""
    if isinstance(spec, list):
        values = spec
    elif isinstance(spec, str) and parse_range(spec) is not None:
        values = parse_range(spec)
    elif isinstance(spec, dict) and set(spec) == set(RANGE_KEYS):
        values = linspace(spec["start"], spec["stop"], spec["count"], what=f"[sweep] {key}")
    else:
        raise ConfigError(
            f"[sweep] {key} = {spec!r}: give a list of values ([0.2, 0.5, 1.0]), a range \"start:stop:count\" "
            "or a range table {start = 0.2, stop = 2.0, count = 10}"
        )
    if not values:
        raise ConfigError(f"[sweep] {key}: the list of values is empty")
    return list(values)


@dataclasses.dataclass
class SweepSpec:
    """What a sweep runs: the base config, the swept fields and how they combine.

    **Attributes:** `base` (the config of every point before its values are
    set; no `[sweep]` table), `axes` (list of `(dotted field, values)`),
    `mode` ("product": every combination, the first field slowest; "zip": the
    i-th values together), `warm_start` (start each point from the parameters
    of the previous finished point), `output` (the sweep directory's default).
    """

    base: dict[str, Any]
    axes: list[tuple[str, list]]
    mode: str = "product"
    warm_start: bool = False
    output: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"[sweep] mode = {self.mode!r}: choose \"product\" (every combination) or \"zip\" (values paired in order)")
        if not isinstance(self.warm_start, bool):
            raise ConfigError(f"[sweep] warm_start must be true or false, got {self.warm_start!r}")
        if not self.axes:
            raise ConfigError(
                "the sweep sweeps nothing: give a field with several values, e.g. --set system.h=0.2:2.0:10 "
                "or a [sweep] table with system.h = [0.2, 0.5, 1.0]"
            )
        keys = [k for k, _ in self.axes]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"the sweep names a field twice: {', '.join(sorted({k for k in keys if keys.count(k) > 1}))}")
        if self.mode == "zip" and len({len(v) for _, v in self.axes}) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.axes)
            raise ConfigError(f"[sweep] mode = \"zip\" pairs the values in order, so every field needs as many values ({sizes})")

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes]

    def points(self) -> list[dict[str, Any]]:
        """The points in order: field -> value."""
        lists = [v for _, v in self.axes]
        combos = zip(*lists) if self.mode == "zip" else itertools.product(*lists)
        return [dict(zip(self.keys, c)) for c in combos]

    def point_name(self, index: int, values: dict[str, Any]) -> str:
        """The directory name of a point: `003_system.h=0.8` (index first, so names sort in order)."""
        width = max(3, len(str(len(self.points()) - 1)))
        parts = "_".join(f"{k}={_short_value(v)}" for k, v in values.items())
        name = re.sub(r"[^A-Za-z0-9._=+\-]", "-", f"{index:0{width}d}_{parts}")
        return name[:120]

    def point_config(self, values: dict[str, Any]) -> dict[str, Any]:
        """The config of one point: the base with the point's values set."""
        config = copy.deepcopy(self.base)
        for key, value in values.items():
            set_dotted(config, key.split("."), copy.deepcopy(value), what=f"sweep field {key!r}")
        return config

    def to_json(self) -> dict[str, Any]:
        points = self.points()
        return {
            "base": self.base, "axes": [{"field": k, "values": v} for k, v in self.axes], "mode": self.mode,
            "warm_start": self.warm_start,
            "points": [{"index": i, "name": self.point_name(i, p), "values": p} for i, p in enumerate(points)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SweepSpec":
        return cls(base=data["base"], axes=[(a["field"], a["values"]) for a in data["axes"]], mode=data["mode"],
                   warm_start=data["warm_start"])


def _short_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _flatten_sweep(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """The swept fields of a `[sweep]` table: TOML dotted keys (`system.h = [...]`)
    arrive as nested tables; a list, a range string or a range table ends a field."""
    out = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if not prefix and key in SWEEP_SETTINGS:
            continue
        if isinstance(value, dict) and set(value) != set(RANGE_KEYS):
            out.extend(_flatten_sweep(value, name + "."))
        else:
            out.append((name, value))
    return out


def _get_dotted(config, keys):
    node = config
    for k in keys:
        if isinstance(node, dict) and k in node:
            node = node[k]
        elif isinstance(node, list) and k.isdigit() and int(k) < len(node):
            node = node[int(k)]
        else:
            return None
    return node


def split_sweep_sets(config: dict[str, Any], overrides: list[str]) -> tuple[list[str], list[tuple[str, list]]]:
    """Split `nqs sweep --set` items into plain overrides and swept fields.

    A value `start:stop:count` is swept; so is a TOML list (`[0.2, 0.5]`)
    unless the field already holds a list in `config` (then the list is the
    field's value, e.g. `lattice.extent=[4,4]`; sweep such a field in the
    `[sweep]` table). Everything else is an ordinary override.
    """
    plain, axes = [], []
    for item in overrides or []:
        if "=" not in item:
            plain.append(item)  # apply_overrides names the problem
            continue
        key, raw = (s.strip() for s in item.split("=", 1))
        values = parse_range(raw)
        if values is None and raw.startswith("["):
            try:
                parsed = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                parsed = None
            if isinstance(parsed, list) and not isinstance(_get_dotted(config, key.split(".")), list):
                values = parsed
        if values is None:
            plain.append(item)
        else:
            if not values:
                raise ConfigError(f"--set {item}: the list of values is empty")
            axes.append((key, values))
    return plain, axes


def sweep_spec(config: dict[str, Any], overrides: list[str] | None = None) -> SweepSpec:
    """The sweep of a config (its `[sweep]` table) and of `nqs sweep --set` items
    (swept fields: see `split_sweep_sets`; the others override the base config).

    **Raises:** `ConfigError` for a malformed `[sweep]` table, nothing swept, a
    field swept twice, zip lengths that differ, or a value that does not fit
    the config (an index out of range, a field of a value).
    """
    config = copy.deepcopy(config)
    table = config.pop("sweep", {})
    if not isinstance(table, dict):
        raise ConfigError("[sweep] must be a table: [sweep] with system.h = [0.2, 0.5, 1.0], mode, warm_start, output")
    plain, cli_axes = split_sweep_sets(config, overrides or [])
    base = apply_overrides(config, plain)
    axes = [(k, axis_values(k, v)) for k, v in _flatten_sweep(table)]
    cli_keys = {k for k, _ in cli_axes}
    axes = [(k, v) for k, v in axes if k not in cli_keys] + cli_axes  # the command line wins
    output = table.get("output", "")
    if not isinstance(output, str):
        raise ConfigError(f"[sweep] output must be a folder (a string), got {output!r}")
    spec = SweepSpec(base=base, axes=axes, mode=table.get("mode", "product"), warm_start=table.get("warm_start", False),
                     output=output)
    for i, p in enumerate(spec.points()):
        spec.point_config(p)  # an index out of range etc. fails here, before anything runs
    return spec


def default_sweep_dir(spec: SweepSpec) -> pathlib.Path:
    """`[sweep] output`, else `<[run] output>/sweep-<system>-<time>`."""
    if spec.output:
        return pathlib.Path(spec.output)
    run = spec.base.get("run", {}) if isinstance(spec.base.get("run"), dict) else {}
    system = spec.base.get("system", {}).get("name", "run") if isinstance(spec.base.get("system"), dict) else "run"
    return pathlib.Path(run.get("output", "runs")) / f"sweep-{system}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


# -- running ----------------------------------------------------------------


@dataclasses.dataclass
class SweepResult:
    """Outcome of `run_sweep`: the sweep directory, the summary rows (one per
    point, in order; see `summary_rows`) and the points run in this call."""

    sweep_dir: pathlib.Path
    rows: list[dict[str, Any]]
    ran: list[int] = dataclasses.field(default_factory=list)
    skipped: list[int] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] in ("stopped", "check_failed")]

    @property
    def exit_code(self) -> int:
        """0, or the highest exit code among the points (3: a point stopped early, 4: one failed the exact cross-check)."""
        return max([STATUS_CODES[r["status"]] or 0 for r in self.rows] + [0])


def read_spec(sweep_dir) -> SweepSpec:
    """The spec saved in a sweep directory (`ConfigError` if it is not one)."""
    path = pathlib.Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"not a sweep directory (no {SPEC_FILE}): {sweep_dir}")
    try:
        return SweepSpec.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); start a new sweep") from None


def _spec_difference(old: dict, new: dict) -> str | None:
    for key, what in (("axes", "swept fields or values"), ("mode", "[sweep] mode"), ("warm_start", "[sweep] warm_start")):
        if old.get(key) != new.get(key):
            return what
    if old.get("base") != new.get("base"):
        a, b = _flat(old.get("base", {})), _flat(new.get("base", {}))
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return "config values (" + ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "") + ")"
    return None


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def open_sweep(spec: SweepSpec | None, sweep_dir) -> tuple[SweepSpec, pathlib.Path]:
    """The spec and directory of a sweep to run or continue: a new (or empty)
    directory gets `spec`; one that holds a sweep continues it, if `spec` is
    `None` or the same sweep (else `ConfigError`, one line)."""
    sweep_dir = pathlib.Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError(f"the sweep output {sweep_dir} is a file, not a directory; choose another --output")
    if (sweep_dir / SPEC_FILE).exists():
        stored = read_spec(sweep_dir)
        if spec is not None:
            diff = _spec_difference(json.loads(json.dumps(stored.to_json())), json.loads(json.dumps(spec.to_json())))
            if diff is not None:
                raise ConfigError(
                    f"{sweep_dir} holds a sweep with other {diff}; continue it as it was with `nqs sweep --resume "
                    f"{sweep_dir}`, or start the edited sweep in another directory (--output)"
                )
        return stored, sweep_dir
    if spec is None:
        raise ConfigError(f"not a sweep directory (no {SPEC_FILE}): {sweep_dir}")
    if sweep_dir.exists() and any(p.name != LOCK_FILE for p in sweep_dir.iterdir()):
        raise ConfigError(f"the sweep output {sweep_dir} is not empty and holds no sweep; choose another --output")
    return spec, sweep_dir


def check_points(spec: SweepSpec, registry=None) -> list:
    """Build every point's config (no physics runs) so that a value that does
    not fit fails before the first point runs; with `warm_start`, also check
    that every point's parameters have the shapes of the first's.

    **Returns:** the resolved config of each point.
    """
    resolved, shapes = [], None
    for i, values in enumerate(spec.points()):
        try:
            calc = build(spec.point_config(values), registry)
        except ConfigError as exc:
            raise ConfigError(f"sweep point {spec.point_name(i, values)}: {exc}") from None
        resolved.append(calc.config)
        if spec.warm_start:
            params = getattr(calc.driver, "parameters", None)
            if params is None:
                raise ConfigError(f"warm_start: the {calc.config['driver']['name']} driver has no parameters to carry over; set warm_start = false")
            here = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), jax.eval_shape(params))
            structure = jax.tree.structure(jax.eval_shape(params))
            if shapes is None:
                shapes, first = (structure, here), spec.point_name(i, values)
            elif (structure, here) != shapes:
                raise ConfigError(
                    f"warm_start needs the same parameter shapes at every point, but {spec.point_name(i, values)} has other "
                    f"shapes than {first} (the sweep changes the ansatz or the system size); set [sweep] warm_start = false"
                )
    return resolved


def _point_status(run_dir: pathlib.Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The result of a finished point (`result.json` read, with `status`), or
    `None` when it has not finished."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except ValueError:
        return None
    if result.get("stop_reason") is not None or result.get("stopped_at_nan") is not None:
        status = "stopped"
    elif (result.get("exact_check") or {}).get("status") == "disagrees" and config.get("run", {}).get("exact_check", "error") == "error":
        status = "check_failed"
    else:
        status = "ok"
    return {**result, "status": status}


def _check_fingerprint(run_dir: pathlib.Path, config: dict[str, Any], name: str) -> None:
    """Refuse a point directory whose checkpoint was made with other physics than the sweep's point."""
    try:
        meta = json.loads((run_dir / CHECKPOINT_META).read_text())
    except (OSError, ValueError):
        return
    stored = meta.get("fingerprint") if isinstance(meta, dict) else None
    if stored is not None and stored != fingerprint(config)["fingerprint"]:
        raise ConfigError(
            f"sweep point {name}: its run directory {run_dir} was made with another config than the sweep's point "
            "(edited by hand?); move that directory aside to run the point again"
        )


def run_sweep(spec: SweepSpec | None, sweep_dir, progress: bool = True, console=None,
              on_point: Callable[[str, dict[str, Any]], None] | None = None, registry=None) -> SweepResult:
    """Run (or continue) the sweep `spec` in `sweep_dir`.

    Every point is an ordinary run (`nqs_core.run`) in `sweep_dir/<name>`,
    with the locks, health checks and exact cross-check of any run. A point
    with a `result.json` and the same physics fingerprint is skipped; one that
    was interrupted continues from its checkpoint (`nqs_core.resume`); the
    others run. A point that stops early or fails the exact cross-check is
    recorded as failed and the sweep goes on. `summary.csv` and `summary.json`
    are rewritten after every point. The sweep directory is locked while it runs.

    **Arguments:**

    - `spec`: the sweep (`sweep_spec`), or `None` to continue the sweep saved in `sweep_dir`.
    - `sweep_dir`: the sweep directory (new, empty, or one holding this sweep).
    - `on_point`: called with `("start" | "done" | "skipped", row)` for every point.

    **Returns:** `SweepResult`. **Raises:** `ConfigError` (refused before
    anything runs: a point that does not fit, warm-start shapes, an edited
    sweep), `RunInterrupted` after SIGINT / SIGTERM (the summary written first).
    """
    spec, sweep_dir = open_sweep(spec, sweep_dir)
    resolved = check_points(spec, registry)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(sweep_dir, "nqs sweep").acquire()
    try:
        lock_note(lock)
        if not (sweep_dir / SPEC_FILE).exists():
            write_text(sweep_dir / SPEC_FILE, json.dumps(spec.to_json(), indent=1))
        out = SweepResult(sweep_dir, [])
        points = spec.points()
        results: list[dict[str, Any] | None] = [None] * len(points)
        names = [spec.point_name(i, p) for i, p in enumerate(points)]
        for i, p in enumerate(points):  # first pass: what is already done
            d = sweep_dir / names[i]
            results[i] = _point_status(d, resolved[i])
            if results[i] is not None:
                _check_fingerprint(d, resolved[i], names[i])
        try:
            for i, values in enumerate(points):
                d = sweep_dir / names[i]
                if results[i] is not None:
                    out.skipped.append(i)
                    if on_point:
                        on_point("skipped", _row(spec, i, values, names[i], results[i]))
                    continue
                if on_point:
                    on_point("start", _row(spec, i, values, names[i], None))
                if (d / CONFIG_FILE).exists():
                    _check_fingerprint(d, resolved[i], names[i])
                    resume(d, progress=progress, console=console)
                else:
                    config = spec.point_config(values)
                    if spec.warm_start:
                        prev = next((j for j in range(i - 1, -1, -1) if results[j] and results[j]["status"] == "ok"), None)
                        if prev is not None:
                            config.setdefault("run", {})["init_from"] = str((sweep_dir / names[prev]).resolve())
                    run(config, run_dir=d, progress=progress, console=console)
                results[i] = _point_status(d, resolved[i])
                out.ran.append(i)
                _write_summary(spec, sweep_dir, points, names, results)
                if on_point:
                    on_point("done", _row(spec, i, values, names[i], results[i]))
        finally:
            out.rows = _write_summary(spec, sweep_dir, points, names, results)
        return out
    finally:
        lock.release()


# -- the summary --------------------------------------------------------------

#: summary columns every row has, after the index, the point name and the swept fields
BASE_COLUMNS = ("status", "exit_code", "energy", "energy_error", "variance", "v_score", "exact_energy", "relative_error", "step")


def _row(spec: SweepSpec, index: int, values: dict[str, Any], name: str, result: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"index": index, "point": name, **values}
    result = result or {"status": "pending"}
    energy = result.get("energy") if isinstance(result.get("energy"), dict) else {}
    row.update({
        "status": result["status"], "exit_code": STATUS_CODES[result["status"]],
        "energy": energy.get("mean"), "energy_error": energy.get("error"), "variance": energy.get("variance"),
        "v_score": _v_score(result.get("v_score")), "exact_energy": result.get("exact_energy"),
        "relative_error": result.get("relative_error"), "step": result.get("step"),
    })
    row["observables"] = result.get("observables") or {}
    return row


def _v_score(value):
    """`result.json` "v_score" as one number (a number, or a table with "value"), else `None`."""
    if isinstance(value, dict):
        value = value.get("value", value.get("mean"))
    return value if _scalar(value) else None


def _scalar(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def summary_rows(spec: SweepSpec, sweep_dir) -> list[dict[str, Any]]:
    """The summary of a sweep directory as it is now: one dict per point with
    `index`, `point` (directory name), the swept fields, `status` ("ok",
    "stopped", "check_failed" or "pending"), `exit_code`, `energy`,
    `energy_error`, `variance`, `v_score`, `exact_energy`, `relative_error`,
    `step`, and `observables` (the point's `result.json` observables)."""
    sweep_dir = pathlib.Path(sweep_dir)
    points = spec.points()
    names = [spec.point_name(i, p) for i, p in enumerate(points)]
    results = []
    for i in range(len(points)):
        d = sweep_dir / names[i]
        config = {}
        try:
            config = load_config(d / "config.toml") if (d / "config.toml").exists() else {}
        except ConfigError:
            pass
        results.append(_point_status(d, config))
    return [_row(spec, i, p, names[i], results[i]) for i, p in enumerate(points)]


def table_columns(spec: SweepSpec, rows: list[dict[str, Any]]) -> list[str]:
    """The CSV columns: index, point, the swept fields, `BASE_COLUMNS`, then
    `NAME` and `NAME_error` for every scalar observable (array observables
    are in `summary.json` only)."""
    scalar = sorted({k for r in rows for k, v in r["observables"].items() if isinstance(v, dict) and _scalar(v.get("mean"))})
    return ["index", "point", *spec.keys, *BASE_COLUMNS, *[c for n in scalar for c in (n, f"{n}_error")]]


def flat_row(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A summary row as the flat values of `columns` (`None` where unknown)."""
    out = {}
    for c in columns:
        if c in row and c != "observables":
            out[c] = row[c]
        else:
            name, err = (c[: -len("_error")], True) if c.endswith("_error") and c[: -len("_error")] in row["observables"] else (c, False)
            stats = row["observables"].get(name)
            value = stats.get("error" if err else "mean") if isinstance(stats, dict) else None
            out[c] = value if _scalar(value) else None
    return out


def _write_summary(spec, sweep_dir, points, names, results) -> list[dict[str, Any]]:
    rows = [_row(spec, i, p, names[i], results[i]) for i, p in enumerate(points)]
    columns = table_columns(spec, rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in flat_row(r, columns).items()})
    write_text(pathlib.Path(sweep_dir) / SUMMARY_CSV, buffer.getvalue())
    payload = {"fields": spec.keys, "mode": spec.mode, "warm_start": spec.warm_start, "columns": columns, "points": rows}
    write_text(pathlib.Path(sweep_dir) / SUMMARY_JSON, json.dumps(strict_json(payload), indent=1, allow_nan=False))
    return rows


# -- the plot -----------------------------------------------------------------


def exact_energies(spec: SweepSpec, rows: list[dict[str, Any]], max_states: int = 1 << 16, registry=None) -> list[float | None]:
    """The exact ground-state energy at every point: the point's own
    `exact_energy` when its run computed one, else an exact solve of the
    point's system when its space has at most `max_states` states (`None`
    where neither applies)."""
    out = []
    for row, values in zip(rows, spec.points()):
        value = row.get("exact_energy")
        if not _scalar(value):
            try:
                calc = build(spec.point_config(values), registry, stop_after="system")
                value = _auto_exact(registry or get_registry(), calc.components.get("system"), max_states)
            except (ConfigError, ValueError, TypeError):
                value = None
        out.append(float(value) if _scalar(value) else None)
    return out


def exact_observable(spec: SweepSpec, observable: str, max_states: int = 1 << 16, registry=None) -> list[float | None]:
    """The exact value of a scalar `[observables]` entry at every point:
    `<psi0|O|psi0>` on the exact ground state of the point's system
    (`nqs_core.exact_from_config`, the state of `nqs exact`), where its space
    has at most `max_states` states; `None` where it has more, where the
    observable is an array, or where no exact solver applies."""
    out: list[float | None] = []
    for values in spec.points():
        value = None
        try:
            config = spec.point_config(values)
            calc = build(config, registry, stop_after="system")
            if int(calc.components["system"].space.n_states) <= max_states:
                stats = exact_from_config(config, 1, registry).measure([observable]).get(observable)
                mean = None if stats is None else jax.numpy.asarray(stats.mean)
                if mean is not None and mean.ndim == 0:
                    value = float(jax.numpy.real(mean))
        except (ConfigError, ValueError, TypeError, AttributeError, NotImplementedError, OverflowError, MemoryError):  # MemoryLimitError is a ValueError
            value = None
        out.append(value)
    return out


def plot_sweep(sweep_dir, observable: str = "energy", output=None, x: str | None = None, exact: bool = True,
               max_states: int = 1 << 16) -> tuple[pathlib.Path, pathlib.Path]:
    """Plot an observable of a sweep against a swept field, with error bars
    and, where the space has at most `max_states` states, the exact curve (the
    energy, or a scalar observable on the exact ground state of every point);
    the same numbers as CSV next to the PNG (column `exact_<observable>`).

    **Arguments:**

    - `sweep_dir`: a sweep directory (`nqs sweep`).
    - `observable`: "energy" (default), "variance", "v_score", or the name of a
      scalar `[observables]` entry.
    - `output`: the PNG path (default `SWEEP_DIR/<observable>.png`; the CSV gets the same stem).
    - `x`: the field on the horizontal axis (default: the first swept field;
      with several fields, one curve per value of the others).

    **Returns:** `(png_path, csv_path)`. **Raises:** `ConfigError` for an unknown
    observable or field, or a sweep without finished points.
    """
    import matplotlib  # heavy: imported when a plot is made (allow-listed in tests/test_architecture.py)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = pathlib.Path(sweep_dir)
    spec = read_spec(sweep_dir)
    rows = summary_rows(spec, sweep_dir)
    x = x or spec.keys[0]
    if x not in spec.keys:
        raise ConfigError(f"--x {x!r} is not a swept field; the sweep sweeps {', '.join(spec.keys)}")
    done = [r for r in rows if r["status"] != "pending"]
    if not done:
        raise ConfigError(f"no point of the sweep in {sweep_dir} has finished yet; nothing to plot")
    known = {"energy", "variance", "v_score"} | {k for r in done for k, v in r["observables"].items() if isinstance(v, dict)}
    if observable not in known:
        raise ConfigError(f"unknown observable {observable!r} for this sweep; valid: {', '.join(sorted(known))}")

    def y_of(r):
        if observable in ("energy", "variance", "v_score"):
            return r[observable], (r["energy_error"] if observable == "energy" else None)
        stats = r["observables"].get(observable)
        if not isinstance(stats, dict) or not _scalar(stats.get("mean")):
            if isinstance(stats, dict):
                raise ConfigError(f"the observable {observable!r} is an array, not one number per point; plot it with `nqs plot POINT_DIR`")
            return None, None
        return stats["mean"], stats.get("error")

    if not exact or observable in ("variance", "v_score"):
        exacts = [None] * len(rows)
    elif observable == "energy":
        exacts = exact_energies(spec, rows, max_states)
    else:
        exacts = exact_observable(spec, observable, max_states)
    others = [k for k in spec.keys if k != x]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(json.dumps(r[k]) for k in others), []).append(i)
    png = pathlib.Path(output) if output else sweep_dir / f"{observable}.png"
    csv_path = png.with_suffix(".csv")
    with_error = observable == "energy" and any(e not in (None, 0) for e in exacts)
    fig, axes = plt.subplots(2 if with_error else 1, 1, figsize=(6.4, 6.4 if with_error else 4.2), sharex=True, squeeze=False)
    ax = axes[0, 0]
    lines = []
    for g, (label_values, idx) in enumerate(groups.items()):
        label = ", ".join(f"{k} = {json.loads(v)}" for k, v in zip(others, label_values))
        xs, ys, es, ex = [], [], [], []
        for i in idx:
            y, e = y_of(rows[i])
            lines.append({"point": rows[i]["point"], **{k: rows[i][k] for k in spec.keys}, observable: y,
                          f"{observable}_error": e, **({f"exact_{observable}": exacts[i]} if exact else {}),
                          "status": rows[i]["status"]})
            if _scalar(rows[i][x]) and y is not None:
                xs.append(rows[i][x]), ys.append(y), es.append(e if _scalar(e) else 0.0), ex.append(exacts[i])
        color = f"C{g % 10}"
        ax.errorbar(xs, ys, yerr=es, fmt="o", ms=4, capsize=3, color=color, label=f"nqs {label}".strip())
        pairs = [(a, b) for a, b in zip(xs, ex) if b is not None]
        if pairs:
            ax.plot([a for a, _ in pairs], [b for _, b in pairs], "-", lw=1, color=color, alpha=0.7,
                    label=f"exact {label}".strip())
        if with_error:  # the relative error against the exact energy, on a log scale
            rel = [(a, abs((y - b) / b)) for a, y, b in zip(xs, ys, ex) if b not in (None, 0)]
            axes[1, 0].semilogy([a for a, _ in rel], [r for _, r in rel], "o-", ms=4, color=color)
    if with_error:
        axes[1, 0].set_ylabel("|E - E_exact| / |E_exact|")
    axes[-1, 0].set_xlabel(x)
    ax.set_ylabel(observable)
    ax.legend(fontsize="small")
    ax.set_title(f"{observable} against {x} ({sweep_dir.name})", fontsize="medium")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    columns = list(lines[0]) if lines else []
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for line in lines:
            writer.writerow({k: ("" if v is None else v) for k, v in line.items()})
    return png, csv_path
