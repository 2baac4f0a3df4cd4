"""Estimators: samples -> statistics, gradients, log-derivative matrices."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array

from ._ansatz import AbstractAnsatz
from ._stats import Stats
from ._system import AbstractSystem


class Estimate(eqx.Module):
    """What an estimator returns for one set of samples.

    **Fields:**

    - `stats`: `Stats` of the estimated quantity (the energy for VMC).
    - `local_values`: the per-sample values, shape `(n_chains, n_per_chain)`.
    """

    stats: Stats
    local_values: Array


class AbstractEstimator(eqx.Module):
    """Turns samples into an `Estimate` and into the ingredients of an update.

    `gradient` returns the gradient of the estimated loss with respect to the
    parameters as a pytree shaped like them (complex leaves carry
    `d/dRe + 1j d/dIm`). `natural_gradient_data` returns the centred
    log-derivative matrix `Y` of shape `(M, P)` (one row per sample, `P` real
    parameters, divided by `sqrt(M)`) and the centred residual vector `eps`
    (`(M,)`) so that the force is `F = Re[Y^T eps]` and the quantum geometric
    tensor `S = Re[Y^H Y]` (seed 000, Eqs. 5-8).

    Estimators whose loss depends on the optimisation step (an annealing
    schedule, say) override `at_step`, which the VMC driver calls at every step
    with the current step number (a traced scalar), and may report scalars of
    their own through `step_info` (added to the step's log record).
    """

    def at_step(self, step: Array) -> "AbstractEstimator":
        """The estimator to use at optimisation step `step` (default: itself)."""
        return self

    def step_info(self) -> dict[str, Array]:
        """Scalars to log for the current step (default: none)."""
        return {}

    @abc.abstractmethod
    def __call__(self, ansatz: AbstractAnsatz, system: AbstractSystem, samples: Array) -> Estimate:
        raise NotImplementedError

    @abc.abstractmethod
    def gradient(self, ansatz: AbstractAnsatz, samples: Array, estimate: Estimate):
        raise NotImplementedError

    @abc.abstractmethod
    def natural_gradient_data(
        self, ansatz: AbstractAnsatz, samples: Array, estimate: Estimate
    ) -> tuple[Array, Array]:
        raise NotImplementedError
