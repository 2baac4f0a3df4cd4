"""The V-score (Wu et al. 2024) and the infinite-temperature energy E_inf = Tr H / dim,
against the trace of the Hamiltonian built here from Kronecker products."""

import functools

import numpy as np
import pytest

import nqs_core
from nqs_spins import Chain, Heisenberg, Ising, J1J2, Spin, SpinHalf, SpinModel, Square

SX = np.array([[0, 1], [1, 0]]) / 2
SY = np.array([[0, -1j], [1j, 0]]) / 2
SZ = np.diag([1.0, -1.0]) / 2
S = 1 / np.sqrt(2)
SX1 = S * np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])  # spin 1, basis m = 1, 0, -1
SY1 = S * np.array([[0, -1j, 0], [1j, 0, -1j], [0, 1j, 0]])
SZ1 = np.diag([1.0, 0.0, -1.0])


def site_op(m, i, n, other=None, j=None):
    """`m` on site `i` (and `other` on site `j`) of `n` sites, as a Kronecker product."""
    d = m.shape[0]
    return functools.reduce(np.kron, [m if k == i else other if k == j else np.eye(d) for k in range(n)])


def exchange(i, j, n, mats=(SX, SY, SZ), zz=1.0):
    x, y, z = mats
    return site_op(x, i, n, x, j) + site_op(y, i, n, y, j) + zz * site_op(z, i, n, z, j)


def trace_per_state(h):
    return float(np.real(np.trace(h))) / h.shape[0]


def _tfim():
    lattice = Chain(6)
    system = Ising(SpinHalf(6), lattice, J=1.0, h=0.7)
    n = 6
    h = sum(-4 * site_op(SZ, i, n, SZ, j) for i, j in lattice.edges(1)) - 0.7 * sum(2 * site_op(SX, i, n) for i in range(n))
    return system, h


def _xxz_field():
    lattice = Chain(6)
    terms = [{"op": "SxSx + SySy + 0.5 SzSz", "bonds": 1}, {"op": "Sz", "sites": "all", "coupling": -0.3},
             {"op": "I", "sites": [[2]], "coupling": 0.4}, {"op": "SzSz + 0.25", "sites": [[0, 3]], "coupling": 1.5}]
    system = SpinModel(SpinHalf(6), lattice, terms)
    n = 6
    h = sum(exchange(i, j, n, zz=0.5) for i, j in lattice.edges(1)) - 0.3 * sum(site_op(SZ, i, n) for i in range(n))
    h = h + 0.4 * np.eye(2**n) + 1.5 * (site_op(SZ, 0, n, SZ, 3) + 0.25 * np.eye(2**n))
    return system, h


def _j1j2():
    lattice = Square(3)
    system = J1J2(SpinHalf(9, total_sz=0.5), lattice, J1=1.0, J2=0.6, marshall_sign=False)
    n = 9
    h = sum(exchange(i, j, n) for i, j in lattice.edges(1)) + 0.6 * sum(exchange(i, j, n) for i, j in lattice.edges(2))
    return system, h


def _spin_one():
    lattice = Chain(4)
    system = SpinModel(Spin(4, S=1), lattice, [{"op": "SxSx + SySy + SzSz", "bonds": 1}, {"op": "Sz", "sites": "all", "coupling": 0.2}], D=0.8)
    n, mats = 4, (SX1, SY1, SZ1)
    h = sum(exchange(i, j, n, mats) for i, j in lattice.edges(1)) + sum(0.2 * site_op(SZ1, i, n) + 0.8 * site_op(SZ1 @ SZ1, i, n) for i in range(n))
    return system, h


@pytest.mark.parametrize("case", [_tfim, _xxz_field, _j1j2, _spin_one], ids=["tfim", "xxz_field", "j1j2", "spin1_D"])
def test_e_inf_equals_the_trace_of_the_kronecker_hamiltonian(case):
    system, h = case()
    assert np.allclose(h, h.conj().T)
    ref = trace_per_state(h)  # over the whole product space, also for a run at fixed total_sz
    assert nqs_core.infinite_temperature_energy(system) == pytest.approx(ref, abs=1e-12)
    if case is _xxz_field:
        assert ref == pytest.approx(0.4 + 1.5 * 0.25)
    if case is _spin_one:
        assert ref == pytest.approx(0.8 * 4 * 2 / 3)  # D N <m^2>_{m = -1, 0, 1}


def test_e_inf_is_unchanged_by_the_marshall_rotation_and_refused_without_a_trace():
    lattice = Square(4)
    rotated = Heisenberg(SpinHalf(16, total_sz=0.0), lattice, marshall_sign=True)
    assert nqs_core.infinite_temperature_energy(rotated) == 0.0
    from nqs_continuum import Particles1D, TrappedFermions1D

    with pytest.raises(ValueError, match="continuum Hamiltonian has no finite trace"):
        nqs_core.infinite_temperature_energy(TrappedFermions1D(Particles1D(2)))


def test_v_score_formula():
    # V = N Var(E) / (E - E_inf)^2 (Wu et al. 2024)
    assert nqs_core.v_score(-2.0, 0.5, 1.0, 4) == pytest.approx(4 * 0.5 / 9)
    assert nqs_core.v_score(-2.0, 0.0, 0.0, 4) == 0.0
    assert nqs_core.v_score(1.0, 0.5, 1.0, 4) is None and nqs_core.v_score(float("nan"), 0.5, 0.0, 4) is None
