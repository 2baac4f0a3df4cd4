"""Run under `mpirun -np 2`: both MPI workers in one launch (one start-up and
one set of imports for the two): `mpi_worker.main` (distributed estimator,
SR/SRt/MinSR, observables, VMC run and resume) and `compaction_worker.main`
(compacted local energies). Arguments: `distributed.npz run_dir config.toml
compaction.npz`."""

import sys

import compaction_worker
import mpi_worker

if __name__ == "__main__":
    mpi_worker.main(*sys.argv[1:4])
    compaction_worker.main(sys.argv[4])
