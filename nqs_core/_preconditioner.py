"""Preconditioners: gradient information -> update direction (the protocol and the identity)."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array

from ._ansatz import AbstractAnsatz
from ._estimator import AbstractEstimator, Estimate


class AbstractPreconditioner(eqx.Module):
    """Maps the sampled gradient information to an update direction.

    The direction is shaped like the parameters and plays the role of a
    gradient: it is handed to an optax optimizer, which moves *against* it
    (`sgd(lr)` then gives `theta <- theta - lr * direction`). The identity
    preconditioner returns the energy gradient; SR returns
    `(S + lambda I)^{-1} grad E`.
    """

    @abc.abstractmethod
    def init(self, params) -> Any:
        """Initial state (a pytree; `None` for stateless preconditioners)."""
        raise NotImplementedError

    @abc.abstractmethod
    def __call__(
        self,
        ansatz: AbstractAnsatz,
        samples: Array,
        estimate: Estimate,
        estimator: AbstractEstimator,
        state: Any,
    ) -> tuple[Any, Any, dict[str, Array]]:
        """`(direction, new_state, info)`."""
        raise NotImplementedError


class IdentityPreconditioner(AbstractPreconditioner):
    """No preconditioning: the direction is the energy gradient."""

    def init(self, params):
        return None

    def __call__(self, ansatz, samples, estimate, estimator, state):
        return estimator.gradient(ansatz, samples, estimate), state, {}
