"""Run under `mpirun -np 2`: the compacted local energies (issue 18) of each
rank's samples, whose `lax.while_loop` runs a different number of blocks on
each rank (a collective inside it would deadlock), the energy estimate over both
ranks, and 3 VMC steps with the compacted and with the padded local energies.
Rank 0 writes the results to the .npz file named on the command line; the test
compares them with one process and with the padded path."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from mpi4py import MPI

import nqs_core
from nqs_core import EnergyEstimator, batch_apply, distributed
from nqs_core._system import compacted_local_energies
from nqs_optim import SRt
from nqs_spins import MetropolisExchange, Square
from problem import make_j1j2, make_problem


def gathered(results, name, x):
    """Every rank's `x`, concatenated in rank order, saved under `name` on rank 0."""
    parts = MPI.COMM_WORLD.gather(np.asarray(x), root=0)
    if nqs_core.rank() == 0:
        results[name] = np.concatenate([np.atleast_1d(p) for p in parts])


def n_blocks(system, xs, width):
    """Blocks the compacted loop evaluates: ceil(needed entries / width)."""
    xps, mels = jax.vmap(system.connected)(xs)
    need = (mels != 0) & ~jnp.all(xps == xs[:, None], axis=-1)
    return -(-int(jnp.sum(need)) // width)


class PaddedEstimator(nqs_core.AbstractEstimator):
    """`EnergyEstimator` with the padded per-row local energies (the reference)."""

    inner: EnergyEstimator

    def __call__(self, ansatz, system, samples):
        flat = samples.reshape(-1, samples.shape[-1])
        eloc = batch_apply(lambda x: system.local_energy(ansatz, x), flat).reshape(samples.shape[:-1])
        return nqs_core.Estimate(stats=nqs_core.statistics(distributed.concat_over_ranks(eloc)), local_values=eloc)

    def gradient(self, ansatz, samples, estimate):
        return self.inner.gradient(ansatz, samples, estimate)

    def natural_gradient_data(self, ansatz, samples, estimate):
        return self.inner.natural_gradient_data(ansatz, samples, estimate)


def main(out):
    r, n = nqs_core.rank(), nqs_core.n_ranks()
    assert n == 2, f"expected 2 ranks, got {n}"
    results = {}
    for problem in ("tfim", "j1j2"):
        for dtype in ("float64", "complex128"):
            model, system, samples = make_problem(dtype) if problem == "tfim" else make_j1j2(dtype)
            per = samples.shape[0] // n
            local = samples[r * per : (r + 1) * per]  # this rank's chains
            flat = local.reshape(-1, local.shape[-1])
            key = f"{problem}/{dtype}"
            for chunk_size in (None, 8):
                estimate = EnergyEstimator(chunk_size=chunk_size)(model, system, local)  # the compacted path
                gathered(results, f"{key}/{chunk_size}/eloc", estimate.local_values.reshape(-1))
                gathered(results, f"{key}/{chunk_size}/energy", estimate.stats.mean)  # the same on every rank
                gathered(results, f"{key}/{chunk_size}/error", estimate.stats.error_of_mean)
            gathered(results, f"{key}/block8/eloc", compacted_local_energies(system, model, flat, block_size=8))
            if problem == "j1j2" and dtype == "float64":
                k = system.max_conn_size
                gathered(results, "j1j2/blocks_default", n_blocks(system, flat, -(-flat.shape[0] * k // 16)))
                gathered(results, "j1j2/blocks_8", n_blocks(system, flat, 8))

    # 3 VMC steps (SRt, J1-J2 4x4 at S^z = 0, complex RBM): compacted and padded
    model, system, _ = make_j1j2("complex128")
    sampler = MetropolisExchange(system.space, Square(4), n_samples=64, n_chains=8)
    for name, est in (("compacted", EnergyEstimator()), ("padded", PaddedEstimator(EnergyEstimator()))):
        driver = nqs_core.VMC(system, model, sampler, optax.sgd(0.02), SRt(diag_shift=1e-2), estimator=est)
        state = driver.init(jax.random.PRNGKey(7))
        energies = []
        for _ in range(3):
            state, record = driver.step(state)
            energies.append(np.asarray(record["energy"]))
        results[f"vmc/{name}/energy"] = np.array(energies)
        results[f"vmc/{name}/params"] = np.concatenate([np.ravel(a) for a in jax.tree.leaves(state.params)])

    if r == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
