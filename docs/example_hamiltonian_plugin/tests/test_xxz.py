"""Tests of the example XXZ plugin against closed forms and the built-in Heisenberg model.

Run them with the plugin installed: `pip install -e docs/example_hamiltonian_plugin`,
then `python -m pytest docs/example_hamiltonian_plugin/tests`."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nqs_core  # noqa: E402
from nqs_core import testing  # noqa: E402
from nqs_xxz import XXZ  # noqa: E402


def chain_system(length, pbc, delta, name="xxz", **fields):
    """Build `name` on a spin-1/2 chain at `S^z = 0` through the registry (as a config does)."""
    reg = nqs_core.get_registry()
    lattice = reg.get("lattice", "chain").obj(length, pbc=pbc)
    space = reg.get("space", "spin_half").obj(lattice=lattice, total_sz=0.0)
    if name == "xxz":
        return XXZ(space, lattice, delta=delta, **fields), reg
    return reg.get("system", name).obj(space, lattice, **fields), reg


def test_registered_through_the_entry_point():
    entry = nqs_core.get_registry().get("system", "xxz")
    assert entry.obj is XXZ and entry.plugin == "xxz"


@pytest.mark.parametrize("length", [6, 8, 10])
def test_xx_open_chain_is_free_fermions(length):
    """delta = 0, open chain: Jordan-Wigner gives hopping J/2, single-particle
    energies J cos(pi k / (L + 1)), and the S^z = 0 ground state fills the L/2 negative ones."""
    system, reg = chain_system(length, pbc=False, delta=0.0)
    eps = np.cos(np.pi * np.arange(1, length + 1) / (length + 1))
    closed = float(np.sum(eps[eps < 0]))
    assert nqs_core.exact_energy(system, reg) == pytest.approx(closed, abs=1e-10)


@pytest.mark.parametrize("pbc", [True, False])
def test_delta_one_is_the_heisenberg_model(pbc):
    xxz, reg = chain_system(10, pbc, delta=1.0)
    heis, _ = chain_system(10, pbc, None, name="heisenberg")
    assert nqs_core.exact_energy(xxz, reg) == pytest.approx(nqs_core.exact_energy(heis, reg), abs=1e-10)


def test_ising_limit_and_hermiticity():
    """delta -> large: the Neel states, E0 = J delta / 4 (-n_bonds) + O(1/delta); every
    matrix element appears with its transpose."""
    system, reg = chain_system(8, pbc=True, delta=50.0)
    e0 = nqs_core.exact_energy(system, reg)
    assert -50.0 / 4 * 8 - 8 / 50.0 < e0 < -50.0 / 4 * 8
    states = np.asarray(system.space.all_states())
    index = {tuple(s): i for i, s in enumerate(states)}
    h = np.zeros((len(states), len(states)))
    for i, s in enumerate(states):
        xps, mels = system.connected(jnp.asarray(s))
        for xp, m in zip(np.asarray(xps), np.asarray(mels)):
            h[i, index[tuple(xp)]] += m
    np.testing.assert_allclose(h, h.T, atol=0)
    assert np.linalg.eigvalsh(h)[0] == pytest.approx(e0, abs=1e-9)


@pytest.mark.parametrize("pbc, delta", [(True, 1.0), (False, 0.3)])
def test_keeps_the_system_contract(pbc, delta):
    """Hermitian, stays at S^z = 0, and the exact ground state has the local energy E0 everywhere."""
    system, _ = chain_system(6, pbc=pbc, delta=delta)
    testing.check_system(system)


def test_bad_input_is_one_line():
    reg = nqs_core.get_registry()
    chain = reg.get("lattice", "chain").obj(6)
    space = reg.get("space", "spin_half").obj(lattice=reg.get("lattice", "chain").obj(8))
    with pytest.raises(ValueError, match="8 sites but the lattice 6"):
        XXZ(space, chain)
