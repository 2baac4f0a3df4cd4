import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
import nqs_spins as ns


def test_defaults_from_lattice():
    space = ns.SpinHalf(lattice=ns.Square(3))
    assert isinstance(space, nqs_core.AbstractDiscreteSpace)
    assert space.n_sites == 9 and space.shape == (9,) and space.size == 9
    assert space.local_states == (-1.0, 1.0)
    assert space.dtype == jnp.float64
    assert space.n_states == 2**9


def test_inconsistent_sizes():
    with pytest.raises(ValueError, match="inconsistent sizes: space has n_sites=8, lattice has 9 sites"):
        ns.SpinHalf(8, lattice=ns.Square(3))
    assert ns.SpinHalf(9, lattice=ns.Square(3)).n_sites == 9
    with pytest.raises(ValueError, match="n_sites or a lattice"):
        ns.SpinHalf()


@pytest.mark.parametrize("total_sz", [None, -1.0, 0.0, 2.0])
def test_constraint_is_declared(total_sz):
    """`SpinHalf` declares its fixed magnetisation as the core space protocol's
    `constraint`: every configuration sums to `2 S^z`."""
    space = ns.SpinHalf(4, total_sz=total_sz)
    if total_sz is None:
        assert space.constraint is None
        return
    assert space.constraint == nqs_core.SumConstraint(2 * total_sz)
    sums = space.all_states().sum(axis=1)
    np.testing.assert_array_equal(sums, np.full(space.n_states, space.constraint.total))


@pytest.mark.parametrize("n, total_sz", [(4, 0.5), (5, 0.0), (4, 3.0), (4, 0.3)])
def test_unreachable_total_sz(n, total_sz):
    with pytest.raises(ValueError, match="not reachable"):
        ns.SpinHalf(n, total_sz=total_sz)


def test_all_states_order_unconstrained():
    space = ns.SpinHalf(3)
    states = space.all_states()
    assert states.shape == (8, 3) and states.dtype == np.float64
    np.testing.assert_array_equal(states[0], [-1, -1, -1])
    np.testing.assert_array_equal(states[1], [-1, -1, 1])  # site 0 is the most significant bit
    np.testing.assert_array_equal(states[4], [1, -1, -1])
    np.testing.assert_array_equal(space.states_to_codes(states), np.arange(8))


@pytest.mark.parametrize("n, total_sz", [(6, 0.0), (7, 0.5), (8, -1.0), (5, 2.5)])
def test_all_states_constrained(n, total_sz):
    space = ns.SpinHalf(n, total_sz=total_sz)
    states = space.all_states()
    n_up = round(n / 2 + total_sz)
    assert space.n_up == n_up
    assert space.n_states == math.comb(n, n_up) == len(states)
    np.testing.assert_array_equal(states.sum(axis=1), 2 * total_sz)
    codes = space.states_to_codes(states)
    assert np.all(np.diff(codes) > 0)
    # the same states, in the same order, as filtering the full space
    full = ns.SpinHalf(n).all_states()
    np.testing.assert_array_equal(states, full[full.sum(axis=1) == 2 * total_sz])


def test_codes_roundtrip_jax():
    space = ns.SpinHalf(10, total_sz=1.0)
    codes = jnp.asarray(space.all_codes())
    states = jax.jit(space.codes_to_states)(codes)
    np.testing.assert_array_equal(jax.jit(space.states_to_codes)(states), codes)


@pytest.mark.parametrize("total_sz", [None, 0.0, 1.0])
def test_random_state(key, total_sz):
    space = ns.SpinHalf(8, total_sz=total_sz)
    x = jax.jit(space.random_state, static_argnums=1)(key, 500)
    assert x.shape == (500, 8) and x.dtype == jnp.float64
    assert set(np.unique(np.asarray(x))) <= {-1.0, 1.0}
    if total_sz is None:
        assert 0.4 < float(jnp.mean(x > 0)) < 0.6
        assert len(np.unique(np.asarray(x.sum(axis=1)))) > 3
    else:
        np.testing.assert_array_equal(x.sum(axis=1), 2 * total_sz)
        # every site is up with probability n_up / n
        np.testing.assert_allclose(jnp.mean(x > 0, axis=0), space.n_up / 8, atol=0.1)
