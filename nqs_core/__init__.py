"""nqs core: protocols, registry, statistics, driver, configuration and I/O.

Everything public is re-exported here; implementations live in `_*.py` modules.
"""

import os as _os

# OpenBLAS runs the LAPACK calls behind jax's CPU linalg (Cholesky, eigh) and
# scipy's. Its worker threads compete with XLA's own thread pool, which already
# parallelises the matrix products: on a loaded 2-core machine a 1000x1000
# Cholesky took 0.01-1.3 s with 2 OpenBLAS threads and a steady 0.012 s with 1.
# nqs therefore defaults OpenBLAS to one thread; a user's setting wins. (Only
# effective when nqs_core is imported before numpy/scipy/jax load OpenBLAS.)
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax as _jax

# Physics needs double precision; nqs runs in float64 unless told otherwise.
_jax.config.update("jax_enable_x64", True)

from ._ansatz import (
    AbstractAnsatz as AbstractAnsatz,
    AbstractAutoregressiveAnsatz as AbstractAutoregressiveAnsatz,
    AbstractConnectedAnsatz as AbstractConnectedAnsatz,
)
from ._estimator import (
    AbstractEstimator as AbstractEstimator,
    EnergyEstimator as EnergyEstimator,
    Estimate as Estimate,
    log_derivatives as log_derivatives,
)
from ._space import (
    AbstractContinuousSpace as AbstractContinuousSpace,
    AbstractDiscreteSpace as AbstractDiscreteSpace,
    AbstractSpace as AbstractSpace,
    SumConstraint as SumConstraint,
)
from ._lattice import AbstractLattice as AbstractLattice
from ._lattice import AbstractBravaisLattice as AbstractBravaisLattice
from ._preconditioner import AbstractPreconditioner as AbstractPreconditioner, IdentityPreconditioner as IdentityPreconditioner, StepContext as StepContext
from ._registry import (
    KINDS as KINDS,
    Registry as Registry,
    RegistryError as RegistryError,
    get_registry as get_registry,
    hookimpl as hookimpl,
    hookspec as hookspec,
    load_registry as load_registry,
)
from ._sampler import (
    AbstractDistribution as AbstractDistribution,
    AbstractSampler as AbstractSampler,
    BoltzmannDistribution as BoltzmannDistribution,
    BornDistribution as BornDistribution,
    DirectSampler as DirectSampler,
    DirectState as DirectState,
    ExactSampler as ExactSampler,
    legacy_key as legacy_key,
    metropolis_sweep as metropolis_sweep,
)
from ._metropolis import (
    AbstractFixedSymmetricRule as AbstractFixedSymmetricRule,
    AbstractMetropolisRule as AbstractMetropolisRule,
    AbstractMetropolisSampler as AbstractMetropolisSampler,
    AbstractSymmetricRule as AbstractSymmetricRule,
    MetropolisSampler as MetropolisSampler,
    MetropolisState as MetropolisState,
    adapt_width as adapt_width,
    metropolis_counts as metropolis_counts,
)
from ._validate import (
    MemoryLimitError as MemoryLimitError,
    check_chains as check_chains,
    check_int as check_int,
    check_memory as check_memory,
    check_positive as check_positive,
    memory_limit as memory_limit,
)
from ._stats import Stats as Stats, blocking_error as blocking_error, statistics as statistics
from ._system import (
    AbstractAction as AbstractAction,
    AbstractContinuumHamiltonian as AbstractContinuumHamiltonian,
    AbstractDiscreteHamiltonian as AbstractDiscreteHamiltonian,
    AbstractHamiltonian as AbstractHamiltonian,
    AbstractSystem as AbstractSystem,
)
from ._tree import (
    batch_apply as batch_apply,
    log_psi_batch as log_psi_batch,
    n_real_parameters as n_real_parameters,
    parameters as parameters,
    real_ravel as real_ravel,
)
from ._callbacks import (
    AbstractCallback as AbstractCallback,
    Checkpoint as Checkpoint,
    FunctionCallback as FunctionCallback,
    StopRun as StopRun,
    EarlyStopping as EarlyStopping,
    JsonlLog as JsonlLog,
    NaNGuard as NaNGuard,
    ProgressBar as ProgressBar,
)
from ._config import (
    Calculation as Calculation,
    ConfigError as ConfigError,
    build as build,
    component_fields as component_fields,
    describe_type as describe_type,
    run_memory_limit as run_memory_limit,
)
from ._exact import exact_energy as exact_energy
from ._toml import apply_overrides as apply_overrides, load_config as load_config, loads_config as loads_config
from ._driver_protocol import AbstractDriver as AbstractDriver
from ._driver import VMC as VMC, DivergenceGuard as DivergenceGuard, VMCState as VMCState
from ._io import CheckpointError as CheckpointError, load_checkpoint as load_checkpoint, load_parameters as load_parameters, read_log as read_log, save_checkpoint as save_checkpoint
from ._run import DEFAULT_CONFIG as DEFAULT_CONFIG, RunResult as RunResult, default_config as default_config, resume as resume, run as run
from ._distributed import is_root as is_root, n_ranks as n_ranks, rank as rank
from . import distributed as distributed
from ._profile import format_profile as format_profile, profile_run as profile_run, profile_step as profile_step
from ._fullsum import FullSumEstimator as FullSumEstimator, FullSumSampler as FullSumSampler, FullSumState as FullSumState
from ._observable import AbstractObservable as AbstractObservable, AbstractOperatorObservable as AbstractOperatorObservable
from ._observable import AbstractSampleObservable as AbstractSampleObservable, OperatorObservable as OperatorObservable
from ._observable import expect as expect, expect_many as expect_many, measure as measure, stats_dict as stats_dict
