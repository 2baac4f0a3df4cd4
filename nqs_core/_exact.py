"""The exact reference energy of a system: the registered exact solvers, asked on MPI rank 0."""

from __future__ import annotations

from ._distributed import is_root, python_comm
from ._registry import Registry, get_registry


def exact_energy(system, registry: Registry | None = None, max_states: int | None = None):
    """Ask every registered exact solver (kind `exact`) for the ground-state
    energy of `system`; the first that answers wins. `None` when none applies
    (or the space has more than `max_states` states)."""
    registry = registry or get_registry()
    for entry in registry.entries("exact"):
        value = entry.obj(system, max_states=max_states)
        if value is not None:
            return float(value)
    return None


def reference_energy(system, registry: Registry, max_states: int):
    """`exact_energy` of `system` computed on MPI rank 0 and broadcast to every
    rank (`None` for no system or when no solver applies).

    **Raises:** the solver's `ValueError` / `TypeError` (on rank 0).
    """
    if system is None:
        return None
    comm = python_comm()
    value = exact_energy(system, registry, max_states=max_states) if is_root() else None
    return comm.bcast(value, root=0) if comm is not None else value
