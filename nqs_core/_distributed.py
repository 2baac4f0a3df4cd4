"""Multi-process runs over MPI (mpi4jax); every function is a no-op in one process.

Each rank runs its own Markov chains on its own samples; these helpers reduce
across ranks inside jitted code (mpi4jax collectives) so that every rank ends a
step with identical statistics and identical parameters. Without mpi4py /
mpi4jax installed, or with a single rank, nothing is imported and every helper
returns its input.
"""

from __future__ import annotations

import functools
import os

import jax


@functools.lru_cache(maxsize=1)
def _comm():
    if os.environ.get("NQS_DISABLE_MPI", "") not in ("", "0"):
        return None
    # only import MPI when launched under an MPI launcher (or asked to)
    launched = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "NQS_FORCE_MPI"))
    if not launched:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return None
    try:
        import mpi4jax  # noqa: F401
    except ImportError as exc:  # pragma: no cover - needs a broken install
        raise ImportError(
            "nqs runs under MPI with several ranks but mpi4jax is not installed; "
            "install it with `pip install -e .[mpi]` (see docs/mpi.md)"
        ) from exc
    return comm


def n_ranks() -> int:
    """Number of MPI ranks (1 without MPI)."""
    comm = _comm()
    return 1 if comm is None else comm.Get_size()


def rank() -> int:
    """This process's MPI rank (0 without MPI)."""
    comm = _comm()
    return 0 if comm is None else comm.Get_rank()


def is_root() -> bool:
    """Whether this process is rank 0 (always true without MPI): the rank that
    writes files and prints."""
    return rank() == 0


def sum_over_ranks(x):
    """`sum_r x_r` on every rank (pytree-aware, jit-safe)."""
    comm = _comm()
    if comm is None:
        return x
    import mpi4jax
    from mpi4py import MPI

    return jax.tree.map(lambda a: mpi4jax.allreduce(a, op=MPI.SUM, comm=comm), x)


def gather_over_ranks(x):
    """Stack every rank's `x` along a new leading axis, on every rank: shape `(n_ranks, *x.shape)`."""
    comm = _comm()
    if comm is None:
        return x[None]
    import mpi4jax

    return mpi4jax.allgather(x, comm=comm)


def concat_over_ranks(x):
    """Concatenate every rank's `x` along axis 0 (in rank order), on every rank."""
    g = gather_over_ranks(x)
    return g.reshape((-1,) + g.shape[2:])


def alltoall(x):
    """`x` of shape `(n_ranks, ...)`: block `i` goes to rank `i`; returns the blocks
    received, `[j]` from rank `j`."""
    comm = _comm()
    if comm is None:
        return x
    import mpi4jax

    return mpi4jax.alltoall(x, comm=comm)


def mean_over_ranks(x):
    """`(1 / n_ranks) sum_r x_r` on every rank (pytree-aware, jit-safe)."""
    return jax.tree.map(lambda a: a / n_ranks(), sum_over_ranks(x))


def total_samples(n_local: int) -> int:
    """The number of samples over all ranks when each rank holds `n_local`."""
    return n_local * n_ranks()


def fold_rank(key):
    """A different PRNG stream per rank (the key itself on rank 0 / without MPI)."""
    r = rank()
    return key if r == 0 else jax.random.fold_in(key, r)


def python_comm():
    """The mpi4py communicator (None without MPI), for host-side gather/bcast of checkpoints."""
    return _comm()

