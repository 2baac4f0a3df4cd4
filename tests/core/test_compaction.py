"""Compacted local energies (only non-zero connected elements, diagonal reusing
log psi(x)) equal the padded per-row evaluation, and VMC trajectories do not change."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nqs_core
from nqs_core import AbstractConnectedAnsatz, EnergyEstimator, batch_apply
from nqs_core._system import compacted_local_energies
from nqs_networks import RBM, ViT
from nqs_optim import SRt
from nqs_spins import Chain, Heisenberg, Ising, J1J2, MetropolisExchange, SpinHalf, Square
from nqs_spins.operators import SpinOperator


def padded(system, model, xs, chunk_size=None):
    return batch_apply(lambda x: system.local_energy(model, x), xs, chunk_size)


def random_configs(space, n, seed):
    return space.random_state(jax.random.PRNGKey(seed), n)


def problems():
    chain = Chain(8)
    free = SpinHalf(n_sites=8)
    zero = SpinHalf(n_sites=8, total_sz=0.0)
    sq = Square(4)
    sq_space = SpinHalf(n_sites=16, total_sz=0.0)
    sq_free = SpinHalf(n_sites=16)
    return {
        "tfim": (free, Ising(free, chain, J=1.0, h=0.7)),
        "heisenberg_sz0": (zero, Heisenberg(zero, chain, marshall_sign=True)),
        "heisenberg_free": (free, Heisenberg(free, chain)),
        "j1j2_4x4_sz0": (sq_space, J1J2(sq_space, sq, J2=0.5)),
        "j1j2_4x4_free": (sq_free, J1J2(sq_free, sq, J2=0.5)),
        # the operator language: a general Pauli-string Hamiltonian, bound to the space
        "operator_j1j2_4x4_sz0": (sq_space, SpinOperator(sq_space, J1J2(sq_space, sq, J2=0.5).to_operator())),
    }


PROBLEMS = problems()


CASES = [(name, dtype, None) for name in sorted(PROBLEMS) for dtype in ("float64", "complex128")]
CASES += [("j1j2_4x4_sz0", "complex128", 7), ("tfim", "float64", 7)]


@pytest.mark.parametrize("name, dtype, chunk_size", CASES)
def test_compacted_equals_padded_rbm(name, dtype, chunk_size):
    space, system = PROBLEMS[name]
    model = RBM(space, alpha=2, param_dtype=dtype, key=jax.random.PRNGKey(3))
    # larger weights than the initialisation: ratios far from one
    model = jax.tree.map(lambda a: 4.0 * a if eqx.is_inexact_array(a) else a, model)
    xs = random_configs(space, 37, seed=11)
    ref = jax.jit(lambda x: padded(system, model, x, chunk_size))(xs)
    got = jax.jit(lambda x: system.local_energies(model, x, chunk_size=chunk_size))(xs)
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # the estimator uses the compacted path
    est = EnergyEstimator(chunk_size=chunk_size)(model, system, xs.reshape(1, 37, -1))
    np.testing.assert_allclose(est.local_values[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_size", [1, 64, 10_000])
def test_any_block_size_and_given_log_psi(block_size):
    space, system = PROBLEMS["j1j2_4x4_sz0"]
    model = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(4))
    xs = random_configs(space, 9, seed=2)
    ref = padded(system, model, xs)
    lx = jax.vmap(model)(xs)
    got = compacted_local_energies(system, model, xs, log_psi_xs=lx, block_size=block_size)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_vit_j1j2_compacted_equals_padded():
    space, system = PROBLEMS["j1j2_4x4_sz0"]
    model = ViT(space, Square(4), patch_size=1, n_layers=2, d_model=16, n_heads=4, key=jax.random.PRNGKey(0))
    model = eqx.tree_at(lambda m: m.out_w, model, model.out_w * 30.0)
    xs = random_configs(space, 24, seed=5)
    ref = jax.jit(lambda x: padded(system, model, x))(xs)
    got = jax.jit(lambda x: system.local_energies(model, x))(xs)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_only_nonzero_offdiagonal_elements_are_evaluated():
    """Count the ansatz evaluations: n samples + the non-zero off-diagonal entries,
    rounded up to whole blocks."""
    space, system = PROBLEMS["j1j2_4x4_sz0"]
    xs = random_configs(space, 16, seed=8)
    xps, mels = jax.vmap(system.connected)(xs)
    same = np.all(np.asarray(xps) == np.asarray(xs)[:, None], axis=-1)
    n_need = int(np.sum((np.asarray(mels) != 0) & ~same))
    assert 0 < n_need < 0.7 * mels.size  # J1-J2 Sz=0: many zero elements

    counter = []

    def log_psi(x):
        # under vmap the callback sees the whole batch: count configurations
        jax.debug.callback(lambda v: counter.append(np.asarray(v).size // 16), x)
        return jnp.sum(x) * 0.01

    block = 8
    compacted_local_energies(system, log_psi, xs, block_size=block)
    n_eval = sum(counter)
    assert n_eval == 16 + -(-n_need // block) * block


class _Counting(AbstractConnectedAnsatz):
    """A connected ansatz that is just an RBM: its own per-row path is used."""

    rbm: RBM

    def __call__(self, x):
        return self.rbm(x)

    def log_psi_connected(self, x, xps):
        return self.rbm(x), jax.vmap(self.rbm)(xps)


def test_connected_ansatz_keeps_its_path():
    space, system = PROBLEMS["heisenberg_sz0"]
    model = _Counting(RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(1)))
    xs = random_configs(space, 10, seed=3)
    np.testing.assert_allclose(system.local_energies(model, xs), padded(system, model.rbm, xs), rtol=1e-12, atol=1e-12)


class _PaddedEstimator(nqs_core.AbstractEstimator):
    """EnergyEstimator with the padded per-row local energies (reference)."""

    inner: EnergyEstimator

    def __call__(self, ansatz, system, samples):
        flat = samples.reshape(-1, samples.shape[-1])
        eloc = padded(system, ansatz, flat).reshape(samples.shape[:-1])
        return nqs_core.Estimate(stats=nqs_core.statistics(eloc), local_values=eloc)

    def gradient(self, ansatz, samples, estimate):
        return self.inner.gradient(ansatz, samples, estimate)

    def natural_gradient_data(self, ansatz, samples, estimate):
        return self.inner.natural_gradient_data(ansatz, samples, estimate)


def test_five_step_trajectories_identical():
    space, system = PROBLEMS["j1j2_4x4_sz0"]
    model = RBM(space, alpha=1, param_dtype="complex128", key=jax.random.PRNGKey(2))
    sampler = MetropolisExchange(space, Square(4), n_samples=64, n_chains=8)
    energies = []
    for est in (EnergyEstimator(), _PaddedEstimator(EnergyEstimator())):
        driver = nqs_core.VMC(system, model, sampler, optax.sgd(0.05), SRt(diag_shift=1e-3), estimator=est)
        state = driver.init(jax.random.PRNGKey(7))
        rec = []
        for _ in range(5):
            state, r = driver.step(state)
            rec.append(r["energy"])
        energies.append((np.array(rec), np.concatenate([np.ravel(a) for a in jax.tree.leaves(state.params)])))
    np.testing.assert_allclose(energies[0][0], energies[1][0], rtol=1e-10)
    np.testing.assert_allclose(energies[0][1], energies[1][1], rtol=1e-9, atol=1e-11)
