"""The build rule's half that reads signatures: which constructor arguments are
components (by protocol annotation), context values or user fields, and how
TOML values are checked and converted against the annotations."""

from __future__ import annotations

import inspect
import math
import types
import typing
from typing import Any

import optax

from ._ansatz import AbstractAnsatz
from ._estimator import AbstractEstimator
from ._integrator import AbstractIntegrator
from ._lattice import AbstractLattice
from ._preconditioner import AbstractPreconditioner
from ._registry import Registry
from ._sampler import AbstractSampler
from ._space import AbstractSpace
from ._system import AbstractSystem

#: Component tables in the order they are built; later ones may take earlier
#: ones as constructor arguments of the same name (`space`, `system`, ...).
COMPONENT_TABLES = ("lattice", "space", "system", "ansatz", "sampler", "estimator", "preconditioner", "optimizer", "driver")

#: Constructor arguments filled from the build's context (never user fields):
#: the table's random key, the exact reference, VMC's divergence guard from `[run]`,
#: and `rebuild_system` (a `nqs_core._config.SystemBuilder`: the `[system]` table
#: built again with some fields changed, for time-dependent couplings).
_CONTEXT = {"key", "exact_energy", "divergence", "rebuild_system"}


def _signature(obj) -> inspect.Signature:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target, eval_str=True)
    except Exception:
        sig = inspect.signature(target)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    return sig.replace(parameters=params)


def component_kind(param: inspect.Parameter) -> str | None:
    """The build rule: the registry kind of a constructor argument that is a
    component, else `None` (a user field or a context value).

    A parameter annotated with a protocol (`space: AbstractSpace`,
    `inner: AbstractAnsatz | None`, `optimizer: optax.GradientTransformation`)
    is a component of that kind: it is built from a nested table when the
    component's table gives one, else taken from the table of that kind when
    the parameter is named after it. A parameter without an annotation (or
    `Any`) named like a table (`lattice`, `system`, ...) is that table's
    component too. Any other parameter is a user field, whatever its name
    (`sampler: str` is a field)."""
    kind = _nested_kind(param.annotation)
    if kind is not None:
        return kind
    if param.name in COMPONENT_TABLES and param.annotation in (inspect.Parameter.empty, Any):
        return param.name
    return None


def _from_table(param: inspect.Parameter) -> bool:
    """Whether a constructor argument is filled from the table it is named after."""
    return param.name in COMPONENT_TABLES and component_kind(param) == param.name


def _is_context(param: inspect.Parameter) -> bool:
    return param.name in _CONTEXT or _is_registry(param.annotation)


def _is_registry(annotation) -> bool:
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return any(c is Registry for c in candidates)


def component_fields(obj) -> dict[str, inspect.Parameter]:
    """User-facing config fields of a component: constructor arguments that are
    neither taken from another table (see `component_kind`) nor context values
    (`key`, `exact_energy`, `divergence`, an argument annotated `Registry`).
    Components that may be given as nested tables (`inner: AbstractAnsatz`)
    are fields."""
    return {
        n: p
        for n, p in _signature(obj).parameters.items()
        if not _from_table(p) and not _is_context(p) and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def table_arguments(obj) -> dict[str, inspect.Parameter]:
    """The constructor arguments of `obj` taken from other tables, by table name."""
    return {n: p for n, p in _signature(obj).parameters.items() if _from_table(p)}


def describe_type(annotation) -> str:
    """A type annotation as a user reads it in an error message: `int`,
    `float | None`, `list[int]`, or `any` for a parameter without one.

    **Arguments:**

    - `annotation`: a type or typing construct (e.g. `inspect.Parameter.annotation`).

    **Returns:** the readable name.
    """
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _accepts(annotation, value) -> bool:
    """Loose check of a TOML value against a type annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    return True  # a type TOML cannot express: let the constructor decide


def _coerce(annotation, value):
    """Convert TOML values where the annotation asks for it (int -> float, list -> tuple)."""
    if isinstance(value, int) and not isinstance(value, bool):
        args = typing.get_args(annotation) or (annotation,)
        if float in args and int not in args:
            return float(value)
    if isinstance(value, list):
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation) or (annotation,)
        if origin is tuple or tuple in args or any(typing.get_origin(a) is tuple for a in args):
            return tuple(value)
    return value


def _has_non_finite(value) -> bool:
    """Whether a TOML value holds `nan` or `inf` (no component takes them)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def _nested_kind(annotation) -> str | None:
    """The registry kind of an annotation naming a core protocol (or a union with None)."""
    protocols = {
        AbstractAnsatz: "ansatz",
        AbstractSystem: "system",
        AbstractSampler: "sampler",
        AbstractEstimator: "estimator",
        AbstractPreconditioner: "preconditioner",
        optax.GradientTransformation: "optimizer",
        AbstractLattice: "lattice",
        AbstractSpace: "space",
        AbstractIntegrator: "integrator",
    }
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    for c in candidates:
        if inspect.isclass(c):
            for proto, kind in protocols.items():
                if issubclass(c, proto):
                    return kind
    return None


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (bool, int, float, str, list, dict)) or value is None:
        return value
    return None
