"""A fixed small problem shared by the MPI worker and the single-process reference."""

import jax

from nqs_networks import RBM
from nqs_spins import Chain, Correlation, Ising, Magnetization, SpinHalf

N_SITES, CHAINS, PER_CHAIN = 8, 8, 16


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
