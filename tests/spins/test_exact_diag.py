"""Exact diagonalisation against the reference numbers of tests/data/reference.json (provenance in tests/data/README.md)."""

import json
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp

import nqs_core
import nqs_spins as ns

REF = json.loads((pathlib.Path(__file__).parents[1] / "data" / "reference.json").read_text())


def tfim(length):
    chain = ns.Chain(length)
    return ns.Ising(ns.SpinHalf(lattice=chain), chain, J=1.0, h=1.0)


def heisenberg_chain(length, pbc=True, units="spin", marshall_sign=False):
    chain = ns.Chain(length, pbc=pbc)
    space = ns.SpinHalf(lattice=chain, total_sz=0.0)
    return ns.Heisenberg(space, chain, units=units, marshall_sign=marshall_sign)


def square(length, pbc=True, J2=0.0, marshall_sign=False):
    lattice = ns.Square(length, pbc=pbc)
    space = ns.SpinHalf(lattice=lattice, total_sz=0.0)
    return ns.J1J2(space, lattice, J1=1.0, J2=J2, marshall_sign=marshall_sign)


def test_tfim_chain_16():
    assert ns.exact_energy(tfim(16)) == pytest.approx(REF["tfim_chain_pbc_pauli_total"]["16"], abs=1e-8)


def test_tfim_closed_form_small():
    """E0 = -2 / sin(pi / (2L)) at J = h = 1 (PBC), dense path."""
    for length in (6, 10):
        assert ns.exact_energy(tfim(length)) == pytest.approx(-2 / np.sin(np.pi / (2 * length)), abs=1e-10)


@pytest.mark.slow
def test_tfim_chain_20():
    """Full 2^20-state space (about 15 s on 2 cores)."""
    assert ns.exact_energy(tfim(20)) == pytest.approx(REF["tfim_chain_pbc_pauli_total"]["20"], abs=1e-8)


@pytest.mark.parametrize(
    "length, energy",
    [
        (16, REF["heisenberg_chain_pbc_pauli_total"]["16"]),
        (20, REF["heisenberg_chain_pbc_pauli_total"]["20"]),
        pytest.param(22, REF["heisenberg_chain_pbc_pauli_total"]["22"], marks=pytest.mark.slow),
    ],
)
def test_heisenberg_chain_pbc_pauli(length, energy):
    assert ns.exact_energy(heisenberg_chain(length, units="pauli")) == pytest.approx(energy, abs=1e-8)


def test_heisenberg_chain_obc():
    assert ns.exact_energy(heisenberg_chain(12, pbc=False)) / 12 == pytest.approx(REF["heisenberg_chain_obc_s_per_site"]["12"], abs=1e-8)
    assert ns.exact_energy(heisenberg_chain(16, pbc=False)) == pytest.approx(REF["heisenberg_chain_obc_s_total"]["16"], abs=1e-6)


@pytest.mark.parametrize(
    "J2, pbc, per_site",
    [(0.0, True, REF["square_4x4_s_per_site"]["J2=0,pbc"]), (0.5, True, REF["square_4x4_s_per_site"]["J2=0.5,pbc"]),
     (0.0, False, REF["square_4x4_s_per_site"]["J2=0,obc"])],
)
def test_square_4x4(J2, pbc, per_site):
    assert ns.exact_energy(square(4, pbc=pbc, J2=J2)) / 16 == pytest.approx(per_site, abs=1e-8)


def test_heisenberg_square_helper_agrees():
    lattice = ns.Square(4)
    h = ns.Heisenberg(ns.SpinHalf(lattice=lattice, total_sz=0.0), lattice)
    assert ns.exact_energy(h) / 16 == pytest.approx(REF["square_4x4_s_per_site"]["J2=0,pbc"], abs=1e-8)


def test_marshall_sign_keeps_spectrum():
    a = ns.ground_state_energy(square(4, J2=0.5), k=3)
    b = ns.ground_state_energy(square(4, J2=0.5, marshall_sign=True), k=3)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_full_space_contains_sector_ground_state():
    lattice = ns.Chain(10)
    full = ns.Heisenberg(ns.SpinHalf(lattice=lattice), lattice)
    sector = ns.Heisenberg(ns.SpinHalf(lattice=lattice, total_sz=0.0), lattice)
    assert ns.exact_energy(full) == pytest.approx(ns.exact_energy(sector), abs=1e-10)


def test_sparse_dense_lanczos_agree(monkeypatch):
    system = heisenberg_chain(12)  # 924 states
    h = ns.to_sparse(system)
    assert isinstance(h, sp.csr_matrix) and h.shape == (924, 924) and h.dtype == np.float64
    assert abs(h - h.T).max() == 0.0
    np.testing.assert_array_equal(h.toarray(), ns.to_dense(system))
    dense = ns.ground_state_energy(system, k=4)  # dense eigh below DENSE_LIMIT states
    assert np.all(np.diff(dense) >= 0)
    monkeypatch.setattr(ns._exact, "DENSE_LIMIT", 100)  # force Lanczos
    np.testing.assert_allclose(ns.ground_state_energy(system, k=4), dense, atol=1e-9)
    e0, psi = ns.ground_state(system)
    assert e0 == pytest.approx(dense[0], abs=1e-10)
    assert np.linalg.norm(h @ psi - e0 * psi) < 1e-8


def test_to_dense_refuses_large_spaces():
    with pytest.raises(ValueError, match="to_sparse"):
        ns.to_dense(tfim(16))


def test_registered_exact_solver():
    assert nqs_core.get_registry().get("exact", "exact_diagonalization").obj is ns.exact_solver
    assert ns.exact_solver(tfim(8), max_states=1000) == pytest.approx(-2 / np.sin(np.pi / 16))
    assert ns.exact_solver(tfim(12), max_states=1000) is None
    assert ns.exact_solver(object()) is None
