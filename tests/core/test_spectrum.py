"""`nqs_core.exact_state` on a space the core knows nothing about: bosons with a
cutoff whose space declares the particle number as its quantum number; the
sector table equals exact diagonalisation per particle number written here."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import QuantumNumber, exact_state, local_operator

N_MAX, L = 2, 4
B = np.diag(np.sqrt(np.arange(1, N_MAX + 1)), k=1)  # b |n> = sqrt(n) |n - 1>, basis n = 0 .. N_MAX


class Bosons(nqs_core.AbstractLocalSpace):
    """Bosons with at most `N_MAX` per site on `L` sites (values `n`)."""

    @property
    def shape(self):
        return (L,)

    @property
    def dtype(self):
        return jnp.float64

    def random_state(self, key, n):
        return jax.random.randint(key, (n, L), 0, N_MAX + 1).astype(jnp.float64)

    @property
    def local_values(self):
        return tuple(float(n) for n in range(N_MAX + 1))

    @property
    def local_states(self):
        return self.local_values

    def local_matrix(self, name):
        return {"b": B, "bd": B.T, "n": B.T @ B}[name]

    @property
    def local_operator_names(self):
        return ("b", "bd", "n")

    def all_states(self):
        return np.asarray(list(itertools.product(range(N_MAX + 1), repeat=L)), dtype=np.float64)

    @property
    def n_states(self):
        return (N_MAX + 1) ** L

    @property
    def quantum_numbers(self):
        return (QuantumNumber("N", 1.0),)


def bose_hubbard(t=1.0, u=2.0, mu=0.3):
    hop = np.kron(B.T, B)
    op = None
    for i in range(L):
        j = (i + 1) % L
        term = local_operator(-t * (hop + hop.T), (i, j))
        op = term if op is None else op + term
    n = B.T @ B
    for i in range(L):
        op = op + local_operator(0.5 * u * n @ (n - np.eye(N_MAX + 1)) - mu * n, i)
    return op


def kron_reference():
    d = N_MAX + 1
    eye = np.eye(d)

    def site(m, i):
        out = np.ones((1, 1))
        for k in range(L):
            out = np.kron(out, m if k == i else eye)
        return out

    b = [site(B, i) for i in range(L)]
    n = [x.T @ x for x in b]
    h = sum(-(b[i].T @ b[(i + 1) % L] + b[(i + 1) % L].T @ b[i]) for i in range(L))
    h = h + sum(0.5 * 2.0 * n[i] @ (n[i] - np.eye(d**L)) - 0.3 * n[i] for i in range(L))
    return h, np.rint(np.diag(sum(n))).astype(int), n[0]


def test_particle_number_sectors_equal_ed_per_sector():
    space = Bosons()
    system = bose_hubbard().on(space)
    state = exact_state(system, n_states=3)
    h, number, n0 = kron_reference()
    assert state.conserved == ("N",) and state.not_conserved == ()
    assert [s.label for s in state.sectors] == [{"N": float(k)} for k in range(N_MAX * L + 1)]
    every = []
    for s in state.sectors:
        keep = np.flatnonzero(number == s.label["N"])
        ref = np.linalg.eigvalsh(h[np.ix_(keep, keep)])
        assert s.n_states == len(keep)
        np.testing.assert_allclose(s.energies, ref[: len(s.energies)], atol=1e-10, rtol=0)
        every += list(ref)
    np.testing.assert_allclose(state.energies, np.sort(every)[:3], atol=1e-10, rtol=0)
    # the density of the ground state, exactly: N0 / L in the ground sector
    vals, vecs = np.linalg.eigh(h)
    psi = vecs[:, 0]
    occupation = state.expect(local_operator(B.T @ B, 0))
    assert float(np.real(occupation.mean)) == pytest.approx(psi @ n0 @ psi, abs=1e-10)
    assert float(np.real(occupation.mean)) == pytest.approx(state.ground_sector.label["N"] / L, abs=1e-10)


def test_quantum_number_values_and_a_broken_conservation():
    qn = QuantumNumber("Sz_up", 0.5, weights=[1, 0, 1, 0])
    assert qn.values(np.array([[1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0]])).tolist() == [1.0, -1.0]
    space = Bosons()
    # b_0 + b_0^dagger changes N: no sector table, the whole space at once
    op = bose_hubbard() + local_operator(0.1 * (B + B.T), 0)
    state = exact_state(op.on(space), n_states=2)
    h, _, _ = kron_reference()
    d = N_MAX + 1
    h = h + np.kron(0.1 * (B + B.T), np.eye(d ** (L - 1)))
    assert state.conserved == () and state.not_conserved == ("N",) and len(state.sectors) == 1
    np.testing.assert_allclose(state.energies, np.linalg.eigvalsh(h)[:2], atol=1e-10, rtol=0)
