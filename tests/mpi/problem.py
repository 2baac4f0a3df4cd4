"""A fixed small problem shared by the MPI worker and the single-process reference."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nqs_networks import RBM
from nqs_optim import SR, MinSR, SRt
from nqs_spins import J1J2, Chain, Correlation, Ising, Magnetization, SpinHalf, Square

N_SITES, CHAINS, PER_CHAIN = 8, 8, 16


def natural_gradient_solvers():
    """The solvers compared between 2 ranks and one process (the `_snr` ones take
    the eigen path: soft cutoff and signal-to-noise statistics over both ranks, in
    parameter space (variances summed over ranks) and in sample space (the
    global eigenvectors; MinSR's SNR is the same path, tested in one process))."""
    return {
        "sr": SR(diag_shift=1e-3),
        "srt": SRt(diag_shift=1e-3),
        "minsr": MinSR(rcond=1e-10),
        "sr_snr": SR(diag_shift=1e-3, rcond=1e-6, snr_cutoff=1.0),
        "srt_snr": SRt(diag_shift=1e-3, rcond=1e-6, snr_cutoff=1.0),
    }


def make_problem(dtype):
    space = SpinHalf(n_sites=N_SITES)
    system = Ising(space=space, lattice=Chain(N_SITES), h=0.8)
    # alpha = 4: P > M for the complex case, so SRt works in the P >> M regime
    model = RBM(space, alpha=4, param_dtype=dtype, init_std=0.2, key=jax.random.PRNGKey(3))
    samples = space.random_state(jax.random.PRNGKey(11), CHAINS * PER_CHAIN).reshape(CHAINS, PER_CHAIN, N_SITES)
    return model, system, samples


def observables(system):
    """Observables measured under MPI and in one process (a per-site one and C(r))."""
    return {"magnetization": Magnetization(system.space), "correlation": Correlation(system, system.lattice, "zz")}


# -- compacted local energies under MPI (issue 18) ----------------------------

#: J1-J2 4x4 at S^z = 0: chains per rank x samples per chain.
J1J2_CHAINS, J1J2_PER_CHAIN = 4, 8


def make_j1j2(dtype):
    """J1-J2 (J2 = 0.5) on the periodic 4x4 square at S^z = 0, an RBM with
    weights 4x their initialisation (ratios far from one), and samples for 2
    ranks: rank 0's chains random configurations, rank 1's the 8 stripe
    states (two rows or two columns up), which have fewer non-zero
    off-diagonal elements (24 of 64 bonds), so that the compacted evaluation's
    loop runs fewer blocks on rank 1.

    **Returns:** `(model, system, samples)`, samples of shape `(2 * J1J2_CHAINS, J1J2_PER_CHAIN, 16)`.
    """
    space = SpinHalf(n_sites=16, total_sz=0.0)
    system = J1J2(space, Square(4), J2=0.5)
    model = RBM(space, alpha=1, param_dtype=dtype, key=jax.random.PRNGKey(5))
    model = jax.tree.map(lambda a: 4.0 * a if eqx.is_inexact_array(a) else a, model)
    n = J1J2_CHAINS * J1J2_PER_CHAIN
    random = space.random_state(jax.random.PRNGKey(12), n)
    row, col = np.divmod(np.arange(16), 4)
    stripes = [np.where((line - s) % 4 < 2, 1.0, -1.0) for line in (row, col) for s in range(4)]
    stripes = jnp.asarray(np.tile(stripes, (n // len(stripes), 1)), dtype=random.dtype)
    samples = jnp.concatenate([random, stripes]).reshape(2 * J1J2_CHAINS, J1J2_PER_CHAIN, 16)
    return model, system, samples
