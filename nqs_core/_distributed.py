"""Multi-process runs over MPI (mpi4jax); every function is a no-op in one process.

Each rank runs its own Markov chains on its own samples; these helpers reduce
across ranks inside jitted code (mpi4jax collectives) so that every rank ends a
step with identical statistics and identical parameters. Without mpi4py /
mpi4jax installed, or with a single rank, nothing is imported and every helper
returns its input; but a start under an MPI launcher with several processes
(or `NQS_FORCE_MPI=1`) without them is refused (`check_launch`) rather than run
as copies of one calculation.
"""

from __future__ import annotations

import functools
import os

import jax


#: Environment variables in which MPI launchers give the number of processes
#: (Open MPI, MPICH / Intel MPI / Slurm PMI, MPICH hydra, MVAPICH) ...
LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")
#: ... and this process's rank (PMIx gives only the rank).
LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def launcher_ranks() -> int:
    """The number of processes an MPI launcher says it started (read from its
    environment variables; 1 when none is set; 2 when only a rank > 0 is known)."""
    size = 1
    for k in LAUNCHER_SIZE_VARS:
        try:
            size = max(size, int(os.environ.get(k, "1")))
        except ValueError:
            pass
    for k in LAUNCHER_RANK_VARS:
        try:
            if int(os.environ.get(k, "0")) > 0:
                size = max(size, 2)
        except ValueError:
            pass
    return size


class MPILaunchError(ValueError):
    """A start under an MPI launcher that nqs cannot serve (no mpi4py or
    mpi4jax, or an mpi4py of another MPI library): one line, exit code 2."""


def _refuse(what: str) -> None:
    raise MPILaunchError(
        f"{what}; install mpi4py and mpi4jax (`pip install -e .[mpi]`, see docs/mpi.md), or set NQS_DISABLE_MPI=1 "
        "to let every process run on its own"
    )


@functools.lru_cache(maxsize=1)
def _comm():
    if _flag("NQS_DISABLE_MPI"):
        return None
    # only import MPI when launched under an MPI launcher (or asked to)
    launched = launcher_ranks()
    forced = _flag("NQS_FORCE_MPI")
    if launched == 1 and not forced:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        why = f"an MPI launcher started {launched} processes" if launched > 1 else "NQS_FORCE_MPI=1 asks for MPI"
        _refuse(f"{why} but mpi4py is not installed, so every process would run the same calculation")
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        if launched > 1:
            raise MPILaunchError(
                f"an MPI launcher started {launched} processes but mpi4py sees one (it was built for another MPI "
                "library than the launcher's), so every process would run the same calculation; launch with the "
                "mpirun of mpi4py's MPI, or set NQS_DISABLE_MPI=1 to let every process run on its own"
            )
        return None
    try:
        import mpi4jax  # noqa: F401
    except ImportError:
        _refuse(f"nqs runs under MPI with {comm.Get_size()} ranks but mpi4jax is not installed")
    return comm


def check_launch() -> None:
    """Refuse (`MPILaunchError`, one line) a start under an MPI launcher with
    several processes, or with `NQS_FORCE_MPI=1`, when mpi4py or mpi4jax is
    missing: every process would run the same calculation."""
    _comm()


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

