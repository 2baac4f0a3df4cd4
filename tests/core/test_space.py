"""The core space protocols: the declared constraint of a discrete space."""

import jax
import jax.numpy as jnp
import numpy as np

from nqs_core import AbstractDiscreteSpace, SumConstraint


class _Bits(AbstractDiscreteSpace):
    """A discrete space that declares nothing about constraints."""

    n: int = 3
    shape = property(lambda self: (self.n,))
    dtype = property(lambda self: jnp.float64)
    local_states = property(lambda self: (-1.0, 1.0))
    n_states = property(lambda self: 2**self.n)

    def random_state(self, key, n):
        return jax.random.choice(key, jnp.array([-1.0, 1.0]), (n, self.n))

    def all_states(self):
        return np.array(np.meshgrid(*[[-1.0, 1.0]] * self.n, indexing="ij")).reshape(self.n, -1).T


def test_unconstrained_by_default():
    assert _Bits().constraint is None


def test_sum_constraint_is_static_data():
    c = SumConstraint(2)
    assert c.total == 2.0 and isinstance(c.total, float)
    assert c == SumConstraint(2.0) and hash(c) == hash(SumConstraint(2.0))
    assert jax.tree.leaves(c) == []  # static: it never becomes a traced value
