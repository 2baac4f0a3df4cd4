"""The V-score of a variational energy (Wu et al. 2024): its variance relative
to the distance from the infinite-temperature energy, so that results of
different models and sizes compare on one scale."""

from __future__ import annotations

import math

from ._operator import Operator
from ._system import AbstractContinuumHamiltonian, AbstractDiscreteHamiltonian, AbstractHamiltonian


class NoInfiniteTemperatureEnergy(ValueError):
    """The system cannot give `Tr H / dim` (the message says why)."""


def infinite_temperature_energy(system) -> float:
    """`E_inf = Tr H / dim`, the energy at infinite temperature, computed from
    the operator form of a discrete Hamiltonian without enumerating the space.

    Every term of an `Operator` is a product of Weyl matrices `X^a Z^b`
    (Pauli matrices for spin 1/2), and `Tr X^a Z^b = d` for `a = b = 0`, else
    0: the trace of a term over its `d^k` local states divided by `d^k` is its
    coefficient if it is the identity and 0 otherwise, so `Tr H / d^N` is the
    coefficient of the identity in the normal form. The trace runs over the
    whole product space (all `d^N` configurations), also for a run in a fixed
    `total_sz` sector, and a Marshall rotation leaves it unchanged
    (`E_inf = 0` for Heisenberg and J1-J2 models, `tr H / 2^N = 0` for the
    transverse-field Ising model).

    **Arguments:**

    - `system`: a discrete Hamiltonian with an operator form (`to_operator()`
      returning an `nqs_core.Operator`: every spin Hamiltonian of nqs_spins,
      `spin_model`, operators bound with `Operator.on(space)`).

    **Returns:** `E_inf` (a float).

    **Raises:** `ValueError` (`NoInfiniteTemperatureEnergy`) with the reason
    when the system has no finite trace (continuum Hamiltonians, classical
    actions) or gives no operator form.
    """
    if isinstance(system, AbstractContinuumHamiltonian):
        raise NoInfiniteTemperatureEnergy("a continuum Hamiltonian has no finite trace (an infinite-dimensional space)")
    if not isinstance(system, AbstractHamiltonian):
        raise NoInfiniteTemperatureEnergy(f"{type(system).__name__} is not a quantum Hamiltonian (no Tr H / dim)")
    to_operator = getattr(system, "to_operator", None)
    op = to_operator() if callable(to_operator) else None
    if not isinstance(op, Operator):
        kind = "discrete " if isinstance(system, AbstractDiscreteHamiltonian) else ""
        raise NoInfiniteTemperatureEnergy(
            f"the {kind}Hamiltonian {type(system).__name__} gives no operator form (to_operator) to take the trace of"
        )
    return float(complex(op.terms.get((), 0.0)).real)


def v_score(energy_mean: float, energy_variance: float, e_inf: float, n: int) -> float | None:
    """The V-score `V = N Var(E) / (E - E_inf)^2` of Wu et al. 2024
    ("Variational benchmarks for quantum many-body problems", Science 386,
    296): 0 for an exact eigenstate, comparable across models and sizes.

    **Arguments:**

    - `energy_mean`: the variational energy `E` (real part).
    - `energy_variance`: `Var(E) = <H^2> - <H>^2`, the variance of the local energies.
    - `e_inf`: the infinite-temperature energy `Tr H / dim`
      (`infinite_temperature_energy`).
    - `n`: the number of sites (or particles).

    **Returns:** `V` (a float), or `None` when a number is not finite or `E = E_inf`.
    """
    e, var = float(complex(energy_mean).real), float(complex(energy_variance).real)
    if not (math.isfinite(e) and math.isfinite(var) and math.isfinite(e_inf)) or e == e_inf:
        return None
    return int(n) * var / (e - e_inf) ** 2


def system_v_score_inputs(system) -> tuple[float | None, int | None, str | None]:
    """`(e_inf, n, reason)` of a run's system: `E_inf` and the number of sites
    (`space.size`), or `(None, None, why)` when it has no V-score."""
    if system is None:
        return None, None, "the driver has no Hamiltonian"
    try:
        e_inf = infinite_temperature_energy(system)
    except NoInfiniteTemperatureEnergy as exc:
        return None, None, str(exc)
    return e_inf, int(system.space.size), None
