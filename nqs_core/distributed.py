"""Multi-process (MPI) helpers for plugins: the public face of `nqs_core._distributed`.

A run under `mpirun -n R nqs run ...` has `R` processes (ranks), each with its
own Markov chains and its own samples. A component that reduces over samples
(a preconditioner's Gram matrix, an estimator's mean) reduces over the ranks
too, with these functions, so that every rank ends a step with the same
numbers and the same parameters. They work inside `jax.jit` (mpi4jax
collectives) and on pytrees. In one process, and whenever mpi4py / mpi4jax are
not installed or the run was not started by an MPI launcher, every function is
a no-op that returns its input (`rank() == 0`, `n_ranks() == 1`).

```python
from nqs_core import distributed

def mean_gradient(local_sum, n_local):
    return distributed.sum_over_ranks(local_sum) / distributed.total_samples(n_local)
```

See docs/mpi.md for how runs are launched and what is reduced where.

- `rank()`, `n_ranks()`, `is_root()`: this process's rank, the number of ranks,
  and whether this is rank 0 (the one that writes files).
- `sum_over_ranks(x)`, `mean_over_ranks(x)`: the sum / mean of `x` over ranks,
  on every rank.
- `gather_over_ranks(x)`: every rank's `x` stacked on a new leading axis;
  `concat_over_ranks(x)`: concatenated along axis 0 in rank order.
- `alltoall(x)`: block `i` of `x` (leading axis of length `n_ranks()`) goes to
  rank `i`.
- `total_samples(n_local)`: samples over all ranks; `fold_rank(key)`: a
  different PRNG stream per rank.
- `python_comm()`: the mpi4py communicator, or `None` (for host-side
  broadcasts and gathers outside jit).
"""

from ._distributed import (
    alltoall as alltoall,
    concat_over_ranks as concat_over_ranks,
    fold_rank as fold_rank,
    gather_over_ranks as gather_over_ranks,
    is_root as is_root,
    mean_over_ranks as mean_over_ranks,
    n_ranks as n_ranks,
    python_comm as python_comm,
    rank as rank,
    sum_over_ranks as sum_over_ranks,
    total_samples as total_samples,
)
