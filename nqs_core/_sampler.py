"""Target distributions and samplers."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, Scalar

from ._ansatz import AbstractAnsatz
from ._hilbert import AbstractSpace
from ._system import AbstractAction


class AbstractDistribution(eqx.Module):
    """An unnormalised probability density on configurations."""

    @abc.abstractmethod
    def log_prob(self, x: Array) -> Scalar:
        """Unnormalised `log p(x)` of one configuration (real)."""
        raise NotImplementedError


class BornDistribution(AbstractDistribution):
    """`p(x) = |psi(x)|^2` of an ansatz: `log p = 2 Re log psi`."""

    ansatz: AbstractAnsatz

    def log_prob(self, x):
        return 2.0 * jnp.real(self.ansatz(x))


class BoltzmannDistribution(AbstractDistribution):
    """`p(phi) = exp(-S[phi])` of a classical action."""

    action: AbstractAction

    def log_prob(self, x):
        return -self.action(x)


class AbstractSampler(eqx.Module):
    """Draws configurations from a distribution; state is carried explicitly.

    `sample` returns samples shaped `(n_chains, n_samples_per_chain, *shape)`
    so that statistics can compare chains (R-hat), the new state, and a dict of
    scalar diagnostics (at least `"acceptance"` where it has a meaning).
    """

    space: eqx.AbstractVar[AbstractSpace]
    n_samples: eqx.AbstractVar[int]
    n_chains: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> Any:
        """Initial sampler state (a pytree of arrays: chains, keys, step sizes)."""
        raise NotImplementedError

    @abc.abstractmethod
    def sample(
        self, distribution: AbstractDistribution, state: Any
    ) -> tuple[Array, Any, dict[str, Array]]:
        """`(samples, new_state, info)`."""
        raise NotImplementedError

    @property
    def n_samples_per_chain(self) -> int:
        return -(-self.n_samples // self.n_chains)
