"""Configuration spaces."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, PRNGKeyArray


class AbstractSpace(eqx.Module):
    """The space that configurations live in.

    A configuration is one array of shape `shape`: spins on a lattice, particle
    positions, or the values of a classical field. Everything in nqs handles one
    configuration at a time and batches with `jax.vmap`.
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of one configuration."""

    @property
    @abc.abstractmethod
    def dtype(self):
        """dtype of a configuration array."""

    @abc.abstractmethod
    def random_state(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` random valid configurations, shape `(n, *shape)`."""

    @property
    def size(self) -> int:
        """Number of degrees of freedom (product of `shape`)."""
        return int(np.prod(self.shape))


class SumConstraint(eqx.Module):
    """The constraint of a discrete space whose configurations all have the same
    sum of entries: `sum(x) == total`.

    For spins 1/2 (local states -1, 1) at fixed magnetisation `S^z` the sum is
    `total = 2 S^z`, so a configuration of `n` sites has `(n + total) / 2` up
    spins; for occupation numbers it is the particle number. (NetKet calls the
    same thing `SumConstraint` of a constrained `DiscreteHilbert`.)

    **Arguments:**

    - `total`: the fixed sum of a configuration's entries.
    """

    total: float = eqx.field(static=True)

    def __init__(self, total: float):
        self.total = float(total)


class QuantumNumber(eqx.Module):
    """A quantum number that labels every basis configuration: the weighted sum
    `value(x) = scale * sum_i w_i x_i` of a configuration's entries (`w_i = 1`
    without `weights`).

    It is what `nqs exact` groups the basis by: the total `S^z = sum(x) / 2` of
    a spin space (`scale = 0.5`), the particle number `N = sum(n)` of occupation
    numbers (`scale = 1`), or, with `weights`, a sum over some entries only
    (e.g. the up-spin particles of a spinful fermion configuration). A
    Hamiltonian conserves it when it has no matrix element between
    configurations of different values; `nqs exact` checks that on the matrix.

    **Arguments:**

    - `name`: the label printed and written (`"Sz"`, `"N"`).
    - `scale`: the factor in front of the sum.
    - `weights`: optional per-entry weights, of the configuration's shape.
    """

    name: str = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    weights: tuple | None = eqx.field(static=True)

    def __init__(self, name: str, scale: float = 1.0, weights=None):
        self.name = str(name)
        self.scale = float(scale)
        self.weights = None if weights is None else tuple(np.asarray(weights, dtype=np.float64).ravel().tolist())

    def values(self, states: np.ndarray) -> np.ndarray:
        """The value of every configuration of `states` (`(n, *shape)`, NumPy),
        rounded to 9 decimals so that equal values compare equal."""
        flat = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
        total = flat.sum(axis=1) if self.weights is None else flat @ np.asarray(self.weights)
        return np.round(self.scale * total, 9) + 0.0


class AbstractDiscreteSpace(AbstractSpace):
    """A finite set of configurations on `n_sites` sites with `local_states` each.

    Optional constraints (fixed magnetisation, particle number) are part of the
    space: `random_state`, `all_states` and samplers respect them, and
    `constraint` declares which one holds, so that samplers, systems and ansätze
    can check or enforce it without knowing the concrete space.
    """

    @property
    @abc.abstractmethod
    def local_states(self) -> tuple[float, ...]:
        """The values one site can take, e.g. `(-1.0, 1.0)` for spin 1/2."""

    @abc.abstractmethod
    def all_states(self) -> np.ndarray:
        """Every configuration in the space (respecting constraints), as a NumPy
        array `(n_states, *shape)`, sorted in a deterministic order. Only for
        spaces small enough to enumerate (exact diagonalisation, exact sums)."""

    @property
    @abc.abstractmethod
    def n_states(self) -> int:
        """Number of configurations (respecting constraints)."""

    @property
    def constraint(self) -> SumConstraint | None:
        """The constraint every configuration of the space satisfies, or `None`
        for an unconstrained space (the default). A space with a constraint
        returns it here; see `SumConstraint`."""
        return None

    @property
    def quantum_numbers(self) -> tuple[QuantumNumber, ...]:
        """The quantum numbers that label the configurations of the space (a
        Hamiltonian may conserve them): `nqs exact` block-diagonalises by them
        and prints the spectrum per sector. Default: none. Spin spaces give
        the total `S^z`, spaces of occupation numbers the particle number."""
        return ()


class AbstractContinuousSpace(AbstractSpace):
    """Real-valued configurations: particle positions or field values."""

    @property
    def dtype(self):
        return jax.numpy.float64 if jax.config.jax_enable_x64 else jax.numpy.float32
