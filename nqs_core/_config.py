"""Configuration resolution: one table per component, resolved against the registry
(the `[run]` table: `_run_options.py`; the annotations and the build rule:
`_annotations.py`; reading and writing TOML: `_toml.py`; the exact reference:
`_exact.py`)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import jax
import numpy as np

from ._annotations import (
    COMPONENT_TABLES,
    _accepts,
    _coerce,
    _from_table,
    _has_non_finite,
    _is_registry,
    _plain,
    _signature,
    component_fields,
    component_kind,
    describe_type,
    table_arguments,
)
from ._driver_protocol import AbstractSamplingDriver
from ._exact import reference_energy
from ._keys import nested_key, observable_key, table_key
from ._registry import Registry, RegistryError, get_registry
from ._run_options import RUN_FIELDS, RUN_FIELDS_READ_BY, ConfigError, _run_options, divergence_guard, run_memory_limit
from ._sampler import AbstractSampler
from ._schedule import field_value, set_field
from ._validate import check_memory, memory_limit

__all__ = [  # re-exported: the names other modules and plugins import from here
    "COMPONENT_TABLES", "RUN_FIELDS", "BuildContext", "Calculation", "ConfigError", "build", "component_fields",
    "component_kind", "describe_type", "divergence_guard", "resolve_exact_energy", "run_memory_limit",
]


#: Names of the components built when a table is left out, for a driver that
#: takes that table (VMC takes all three; the driver defaults to `vmc`).
DEFAULT_NAMES = {"estimator": "energy", "preconditioner": "identity", "optimizer": "sgd", "driver": "vmc"}

# -- building -------------------------------------------------------------


class Calculation:
    """A resolved configuration: the built components and the run options.

    **Attributes:** `components` (table name -> object), `driver`, `run`
    (the `[run]` options), `config` (the full config with every default filled
    in, as written to the run directory), `registry`, `observables` (the
    `[observables.NAME]` tables: name -> observable).
    """

    def __init__(self, components, run, config, registry, observables=None):
        self.components = components
        self.run = run
        self.config = config
        self.registry = registry
        #: the `[observables]` tables: config name -> built observable
        self.observables = dict(observables or {})

    @property
    def driver(self):
        return self.components["driver"]

    def __getitem__(self, table):
        return self.components[table]


def build(
    config: dict[str, Any], registry: Registry | None = None, exact: bool = False, stop_after: str | None = None
) -> Calculation:
    """Resolve a config dict into components; every problem raises `ConfigError`
    with a one-line message naming the table, the field and what is valid.

    The build runs no physics: `[run] exact_energy = "auto"` stays "auto"
    until `resolve_exact_energy(calc)` (which `nqs_core.run` and `resume`
    call after the build) solves the system. `exact=True` calls it here, for
    scripts; `stop_after="system"` builds only the tables up to and including
    that one."""
    registry = registry or get_registry()
    run = _run_options(config)
    ctx = BuildContext(registry, run, config=config)
    with memory_limit(run_memory_limit(run)):
        calc = _build(config, ctx, stop_after)
        if stop_after is None:
            _check_everything_is_read(config, calc, ctx.injected)
            if exact:
                resolve_exact_energy(calc)
    return calc


def resolve_exact_energy(calc: Calculation) -> float | None:
    """`[run] exact_energy = "auto"`: solve the built system exactly when it is
    small enough (`[run] exact_max_states`; every registered `exact` solver,
    see `nqs_core._exact.reference_energy`) and hand the value to the driver,
    the run options and the resolved config (`"none"` when no solver applies).
    Nothing happens for a number, `"none"`, or a driver without
    `exact_energy`. Runs under the config's memory limit.

    **Returns:** the reference energy, or `None`.
    """
    run = calc.run
    if run["exact_energy"] != "auto":
        return None if run["exact_energy"] == "none" else run["exact_energy"]
    if "exact_energy" not in _driver_tables(calc.config, calc.registry):
        return None
    with memory_limit(run_memory_limit(run)):
        value = _auto_exact(calc.registry, calc.components.get("system"), run["exact_max_states"])
    run["exact_energy"] = value
    calc.config["run"]["exact_energy"] = value if value is not None else "none"
    calc.driver.exact_energy = value
    return value


def _build(config, ctx: BuildContext, stop_after) -> Calculation:
    registry, run = ctx.registry, ctx.run
    unknown_tables = sorted(set(config) - set(COMPONENT_TABLES) - {"run", OBSERVABLES_TABLE})
    if unknown_tables == ["sweep"]:
        raise ConfigError("the config has a [sweep] table: run it with `nqs sweep CONFIG` (`nqs run` runs one point)")
    if unknown_tables:
        raise ConfigError(
            f"unknown table(s) {', '.join('[' + t + ']' for t in unknown_tables)}; "
            f"valid tables: {', '.join('[' + t + ']' for t in ('run',) + COMPONENT_TABLES + (OBSERVABLES_TABLE,))}"
        )
    last = COMPONENT_TABLES.index(stop_after) if stop_after else len(COMPONENT_TABLES)
    takes = _driver_tables(config, registry)
    for t in required_tables(takes):
        if t not in config and COMPONENT_TABLES.index(t) <= last:
            raise ConfigError(f"missing table [{t}] (it needs at least a name; see `nqs list {t}`)")
    root = jax.random.PRNGKey(run["seed"])
    built: dict[str, Any] = {}
    resolved: dict[str, Any] = {"run": {k: v for k, v in run.items()}}
    ctx.resolved = resolved

    for index, table in enumerate(COMPONENT_TABLES[: last + 1]):
        if table not in config and (table not in DEFAULT_NAMES or (table != "driver" and table not in takes)):
            continue
        spec = config.get(table, {"name": _default_name(table, built)})
        if not isinstance(spec, dict):
            raise ConfigError(f"[{table}] must be a table with a 'name' field")
        spec = dict(spec)
        name = spec.pop("name", _default_name(table, built))
        if name is None:
            if table not in takes and not _taken_by_another(config, registry, table):
                raise ConfigError(_unused_table(table, config, registry))  # e.g. a --set on a driver without it
            raise ConfigError(f"[{table}] needs a 'name'; valid names: {', '.join(registry.names(table)) or '(none)'}")
        try:
            entry = registry.get(table, name)
        except RegistryError as exc:
            raise ConfigError(f"[{table}] {exc}") from None
        obj, fields = _construct(entry, spec, built, table_key(root, index), ctx)
        built[table] = obj
        resolved[table] = {"name": name, **fields}
    _check_preconditioner(built, resolved)
    observables = {}
    if stop_after is None:
        observables, resolved_obs = _build_observables(config, ctx, built, root)
        if resolved_obs:
            resolved[OBSERVABLES_TABLE] = resolved_obs
    return Calculation(built, run, resolved, registry, observables)


def _driver_tables(config, registry) -> dict[str, inspect.Parameter]:
    """The constructor arguments of the configured driver (`[driver] name`,
    default `vmc`): the component tables it takes by argument name decide which
    tables a config needs and which defaults are built."""
    spec = config.get("driver", {})
    name = spec.get("name", DEFAULT_NAMES["driver"]) if isinstance(spec, dict) else DEFAULT_NAMES["driver"]
    try:
        entry = registry.get("driver", name)
    except RegistryError as exc:
        raise ConfigError(f"[driver] {exc}") from None
    # a user field named like a table (`sampler: str`) does not take that table
    return {n: p for n, p in _signature(entry.obj).parameters.items() if n not in COMPONENT_TABLES or _from_table(p)}


def required_tables(takes: dict[str, inspect.Parameter]) -> tuple[str, ...]:
    """The component tables a driver needs in a config: those it takes without
    a default and without a default component (VMC: system, ansatz, sampler)."""
    return tuple(
        t for t in COMPONENT_TABLES
        if t in takes and t not in DEFAULT_NAMES and takes[t].default is inspect.Parameter.empty
    )


# -- full sums and observables ----------------------------------------------

#: The table of named observables, `[observables.NAME]` with a `name` (registry kind `observable`) and fields.
OBSERVABLES_TABLE = "observables"


def _default_name(table, built):
    """The component name used when a table gives none: the sampler's
    `default_estimator` for `[estimator]` (the `full_sum` sampler names its
    look-up estimator), else `DEFAULT_NAMES`."""
    if table == "estimator" and isinstance(built.get("sampler"), AbstractSampler):
        return built["sampler"].default_estimator
    return DEFAULT_NAMES.get(table)


def _check_preconditioner(built, resolved):
    """Refuse, when the config is built, a preconditioner that cannot work with
    the system (e.g. a metric that needs continuous coordinates on spins)."""
    precond, system = built.get("preconditioner"), built.get("system")
    if precond is None or system is None:
        return
    try:
        precond.check_system(system)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[preconditioner] {resolved['preconditioner']['name']}: {exc}") from None


def _check_everything_is_read(config, calc, injected) -> None:
    """Refuse a config (or a `--set`) that asks for something the chosen driver
    never reads: a component table that no built component takes (e.g.
    `[optimizer]` beside a driver with its own optimiser), or a `[run]` field,
    set to other than its default, that belongs to what the driver does not do."""
    name = calc.config["driver"]["name"]
    if calc.observables and not isinstance(calc.driver, AbstractSamplingDriver):
        return  # the [observables] themselves are refused first (nqs_core._run._check_driver): the clearer message
    takes = _driver_tables(config, calc.registry)
    for table in COMPONENT_TABLES:
        if table == "driver" or table not in config or table in injected or table in takes:
            continue
        raise ConfigError(_unused_table(table, config, calc.registry))
    run = config.get("run", {})
    for field, argument in RUN_FIELDS_READ_BY.items():
        if field in run and argument not in takes and run[field] != RUN_FIELDS[field][0]:
            raise ConfigError(
                f"[run] {field} = {run[field]!r} is not read by the {name} driver, so it would be ignored; remove it"
            )


def _unused_table(table, config, registry) -> str:
    """The message for a component table that the driver and the other components ignore."""
    spec = config.get("driver", {})
    name = spec.get("name", DEFAULT_NAMES["driver"]) if isinstance(spec, dict) else DEFAULT_NAMES["driver"]
    fields = component_fields(registry.get("driver", name).obj)
    given = [f for f in config[table] if f != "name"] if isinstance(config[table], dict) else []
    hint = [f"driver.{f}" for f in given if f in fields]
    instead = f" (set {', '.join(hint)} instead)" if hint else f" (the driver's own fields: `nqs info {name}`)"
    return f"[{table}] is not used by the {name} driver, so its fields would be ignored; remove the table{instead}"


def _taken_by_another(config, registry, table) -> bool:
    """Whether a component named in another table of `config` takes `table` (see `component_kind`)."""
    for other in COMPONENT_TABLES:
        spec = config.get(other)
        if other == table or not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        try:
            if table in table_arguments(registry.get(other, spec["name"]).obj):
                return True
        except RegistryError:  # reported when that table is built
            continue
    return False


def _build_observables(config, ctx: BuildContext, built, root):
    """Build the `[observables.NAME]` tables (after every component, so that
    observables receive `lattice`, `space`, `system` by argument name)."""
    registry, run = ctx.registry, ctx.run
    every = run.get("observe_every", 0)
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError(f"[run] observe_every must be a non-negative integer, got {every!r}")
    tables = config.get(OBSERVABLES_TABLE, {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(
            "[observables] must hold one table per observable, e.g. [observables.mz] with name = \"magnetization\""
        )
    out, resolved = {}, {}
    for i, (label, table) in enumerate(tables.items()):
        spec = dict(table)
        name = spec.pop("name", None)
        where = f"[{OBSERVABLES_TABLE}.{label}]"
        if name is None:
            raise ConfigError(f"{where} needs a 'name'; valid names: {', '.join(registry.names('observable')) or '(none)'}")
        try:
            entry = registry.get("observable", name)
        except RegistryError as exc:
            raise ConfigError(f"{where} {exc}") from None
        try:
            obj, fields = _construct(entry, spec, built, observable_key(root, i), ctx)
        except ConfigError as exc:
            raise ConfigError(f"{where} {exc}") from None
        out[label] = obj
        resolved[label] = {"name": name, **fields}
    return out, resolved


class BuildContext:
    """What a build hands down to every `_construct` (instead of module globals):
    the `registry` the names are resolved in, the `[run]` options and the set of
    tables whose component was passed to another one (`injected`)."""

    def __init__(self, registry: Registry, run: dict[str, Any], injected: set[str] | None = None, config: dict[str, Any] | None = None):
        self.registry = registry
        self.run = run
        self.injected = set() if injected is None else injected
        #: the config being built, and its tables as resolved so far (for `SystemBuilder`)
        self.config = config
        self.resolved: dict[str, Any] = {}


class SystemBuilder:
    """The `[system]` of a config built again with some fields changed: what a
    driver with time-dependent couplings takes as its `rebuild_system` argument
    (injected by the build, never a user field).

    `builder({"h": 0.5})` returns the system with `h = 0.5` (dotted names
    reach nested fields: `"terms.1.coupling"`); `builder.value("h")` is the
    field's value in the resolved `[system]` table (defaults filled in)."""

    def __init__(self, config: dict[str, Any], registry: Registry, system_table: dict[str, Any]):
        self._config = config
        self._registry = registry
        self._table = system_table

    def value(self, field: str) -> float:
        """The numeric value of `field` in the resolved `[system]` table (`ConfigError` otherwise)."""
        return field_value(self._table, field)

    def __call__(self, overrides: dict[str, float]):
        config = copy.deepcopy(self._config)
        config["system"] = copy.deepcopy(self._table)
        for field, value in overrides.items():
            set_field(config["system"], field, value)
        return build(config, self._registry, stop_after="system").components["system"]


def _nested(entry, fname, kind, table, built, key, ctx):
    """Build the component of a nested table `table` (a dict with a `name`) of kind `kind`."""
    where = f"{entry.kind} {entry.name!r}"
    sub = dict(table)
    sub_name = sub.pop("name", None)
    if sub_name is None:
        raise ConfigError(f"field {fname!r} of {where} is a {kind} table and needs a 'name'")
    try:
        sub_entry = ctx.registry.get(kind, sub_name)
    except RegistryError as exc:
        raise ConfigError(f"field {fname!r} of {where}: {exc}") from None
    obj, sub_fields = _construct(sub_entry, sub, built, key, ctx)
    return obj, {"name": sub_name, **sub_fields}


def _construct(entry, spec, built, key, ctx: BuildContext):
    """Build one component from its table `spec` (the build rule: `component_kind`)."""
    fields = component_fields(entry.obj)
    params = _signature(entry.obj).parameters
    where = f"{entry.kind} {entry.name!r}"
    nested_from_table = {n for n, p in params.items() if _from_table(p) and isinstance(spec.get(n), dict)}
    unknown = sorted(set(spec) - set(fields) - nested_from_table)
    if unknown:
        valid = ", ".join(fields) or "(none)"
        raise ConfigError(f"unknown field(s) {', '.join(unknown)} for {where}; valid fields: {valid}")
    kwargs: dict[str, Any] = {}
    resolved_fields: dict[str, Any] = {}
    for fname, param in fields.items():
        kind = component_kind(param)
        if fname in spec and kind is not None and isinstance(spec[fname], dict):
            # a component inside a component (e.g. the ansatz a symmetriser wraps)
            kwargs[fname], resolved_fields[fname] = _nested(entry, fname, kind, spec[fname], built, nested_key(key, len(kwargs) + 1), ctx)
            continue
        if fname in spec:
            value = spec[fname]
            if _has_non_finite(value):
                raise ConfigError(f"field {fname!r} of {where} must be finite, got {value!r}")
            if not _accepts(param.annotation, value):
                raise ConfigError(
                    f"field {fname!r} of {where} must be {describe_type(param.annotation)}, "
                    f"got {type(value).__name__} {value!r}"
                )
            kwargs[fname] = _coerce(param.annotation, value)
            resolved_fields[fname] = value
        elif param.default is inspect.Parameter.empty:
            raise ConfigError(f"missing field {fname!r} for {where} ({describe_type(param.annotation)})")
        else:
            resolved_fields[fname] = _plain(param.default)
    for pname, param in params.items():
        if pname in fields:
            continue
        if _is_registry(param.annotation):
            kwargs[pname] = ctx.registry
        elif pname == "key":
            kwargs["key"] = key
        elif pname == "exact_energy":
            ex = ctx.run["exact_energy"]
            kwargs["exact_energy"] = None if ex in ("none", "auto") else ex
        elif pname == "divergence":
            kwargs["divergence"] = divergence_guard(ctx.run)
        elif pname == "rebuild_system":
            if ctx.config is None or "system" not in ctx.resolved:
                raise ConfigError(f"{where} needs a [system] table")
            kwargs["rebuild_system"] = SystemBuilder(ctx.config, ctx.registry, ctx.resolved["system"])
        elif pname in nested_from_table:
            kwargs[pname], resolved_fields[pname] = _nested(entry, pname, pname, spec[pname], built, nested_key(key, len(kwargs) + 1), ctx)
        elif pname in built:
            kwargs[pname] = built[pname]
            ctx.injected.add(pname)
        elif param.default is inspect.Parameter.empty and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            raise ConfigError(f"{where} needs a [{pname}] table")
    try:
        if entry.kind == "ansatz":
            _check_parameter_memory(entry, kwargs)
        obj = entry.obj(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[{entry.kind}] {entry.name}: {exc}") from None
    return obj, {k: v for k, v in resolved_fields.items() if v is not None}


#: Training holds about this many copies of the parameters (parameters,
#: gradient, direction, optimizer moments).
PARAMETER_COPIES = 4


def _check_parameter_memory(entry, kwargs) -> None:
    """Refuse an ansatz whose parameters alone exceed the memory limit, from
    `jax.eval_shape` of its constructor (nothing is allocated)."""
    try:
        shapes = jax.eval_shape(lambda: entry.obj(**kwargs))
    except Exception:  # a constructor that cannot be traced: it reports its own errors when built
        return
    leaves = [a for a in jax.tree.leaves(shapes) if hasattr(a, "shape") and hasattr(a, "dtype")]
    n_bytes = sum(int(np.prod(a.shape, dtype=np.float64)) * np.dtype(a.dtype).itemsize for a in leaves)
    n_params = sum(int(np.prod(a.shape, dtype=np.float64)) for a in leaves)
    check_memory(PARAMETER_COPIES * n_bytes, f"the ansatz's {n_params:.3g} parameters (x{PARAMETER_COPIES} for gradients and optimizer state)")


def _auto_exact(registry: Registry, system, max_states: int):
    """`[run] exact_energy = 'auto'`: the exact reference of `system` (see `reference_energy`)."""
    try:
        return reference_energy(system, registry, max_states)
    except (ValueError, TypeError) as exc:  # e.g. a Hamiltonian that is not Hermitian
        raise ConfigError(f"[run] exact_energy = 'auto': the exact solver failed: {exc} (set exact_energy = 'none' to skip it)") from None
