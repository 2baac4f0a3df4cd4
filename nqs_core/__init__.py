"""nqs core: protocols, registry, statistics, driver, configuration and I/O.

Everything public is re-exported here; implementations live in `_*.py` modules.
The re-exports are lazy (`nqs_core._lazy`): `import nqs_core` imports neither jax
nor any model, so that the command line starts fast; a name's module is
imported when the name is first used.
"""

import os as _os
import sys as _sys

# OpenBLAS runs the LAPACK calls behind jax's CPU linalg (Cholesky, eigh) and
# scipy's. Its worker threads compete with XLA's own thread pool, which already
# parallelises the matrix products: on a loaded 2-core machine a 1000x1000
# Cholesky took 0.01-1.3 s with 2 OpenBLAS threads and a steady 0.012 s with 1.
# nqs therefore defaults OpenBLAS to one thread; a user's setting wins. (Only
# effective when nqs_core is imported before numpy/scipy/jax load OpenBLAS.)
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Physics needs double precision; nqs runs in float64 unless told otherwise.
# jax reads $JAX_ENABLE_X64 when it is imported; if it already is, set the flag.
if "jax" in _sys.modules:
    _sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    _os.environ.setdefault("JAX_ENABLE_X64", "1")

from ._lazy import lazy_exports as lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "._ansatz": ["AbstractAnsatz", "AbstractAutoregressiveAnsatz", "AbstractConnectedAnsatz", "AbstractDirectSamplingAnsatz"],
        "._estimator": ["AbstractEstimator", "AbstractScheduledEstimator", "EnergyEstimator", "Estimate", "log_derivatives", "scheduled"],
        "._space": ["AbstractContinuousSpace", "AbstractDiscreteSpace", "AbstractSpace", "QuantumNumber", "SumConstraint"],
        "._local_space": ["AbstractLocalSpace", "local_values_of"],
        "._operator": ["Operator", "local_operator"],
        "._operator_bind": ["LocalOperator", "PauliOperator", "bind_operator"],
        "._integrator": ["AbstractIntegrator"],
        "._schedule": ["Ramp", "parse_schedule"],
        "._lattice": ["AbstractLattice", "AbstractBravaisLattice"],
        "._brillouin": ["brillouin_zone", "cluster_momentum", "high_symmetry_points", "in_zone", "momentum_lattice", "reciprocal_vectors", "zone_images"],
        "._pictures": ["draw_correlation", "draw_energy", "draw_evolution", "draw_structure_factor", "plot_energy", "plot_evolution_records", "plot_observables", "write_csv"],
        "._evolve": ["Evolution", "exact_evolution", "is_evolution_run", "load_evolution", "output_times", "plot_evolution"],
        "._lattices": ["Chain", "Graph", "Honeycomb", "Kagome", "LEG", "Ladder", "RUNG", "Square", "Triangular"],
        "._preconditioner": ["AbstractNaturalGradient", "AbstractPreconditioner", "IdentityPreconditioner", "StepContext"],
        "._registry": ["KINDS", "Registry", "RegistryError", "get_registry", "hookimpl", "hookspec", "load_registry"],
        "._sampler": ["AbstractDistribution", "AbstractSampler", "BoltzmannDistribution", "BornDistribution", "DirectSampler", "DirectState", "ExactSampler", "legacy_key", "metropolis_steps", "metropolis_sweep"],
        "._metropolis": ["AbstractFixedSymmetricRule", "AbstractMetropolisRule", "AbstractMetropolisSampler", "AbstractProposalRule", "AbstractSymmetricRule", "MetropolisSampler", "MetropolisState", "adapt_width", "metropolis_counts"],
        "._mixture": ["MetropolisMixture", "MixtureRule", "rules_from_spec"],
        "._tempering": ["ParallelTempering", "TemperedDistribution", "TemperingState"],
        "._validate": ["MemoryLimitError", "check_chains", "check_int", "check_memory", "check_positive", "memory_limit"],
        "._stats": ["Stats", "blocking_error", "statistics"],
        "._health": ["BlowUpWatch", "count_distinct", "offdiagonal_weight", "sampling_health"],
        "._crosscheck": ["describe_disagreement", "exact_crosscheck"],
        "._system": ["autodiff_grad", "AbstractAction", "AbstractContinuumHamiltonian", "AbstractDiscreteHamiltonian", "AbstractHamiltonian", "AbstractSystem"],
        "._tree": ["HolomorphicLayout", "batch_apply", "log_psi_batch", "n_real_parameters", "parameters", "real_ravel"],
        "._callbacks": ["AbstractCallback", "Checkpoint", "FunctionCallback", "StopRun", "EarlyStopping", "JsonlLog", "NaNGuard", "ProgressBar"],
        "._config": ["BuildContext", "Calculation", "ConfigError", "SystemBuilder", "build", "component_fields", "component_kind", "describe_type", "resolve_exact_energy", "run_memory_limit"],
        "._exact": ["exact_energy"],
        "._toml": ["apply_overrides", "load_config", "loads_config"],
        "._driver_protocol": ["AbstractDriver", "AbstractDriverState", "AbstractSamplingDriver", "AbstractSamplingState"],
        "._samples": ["AbstractEnumeration", "Samples", "is_weighted", "exact_statistics", "weighted_statistics"],
        "._driver": ["REJECT_REASONS", "VMC", "DivergenceGuard", "VMCState"],
        "._io": ["CheckpointError", "check_run_files", "load_checkpoint", "load_parameters", "read_log", "save_checkpoint"],
        "._run": ["DEFAULT_CONFIG", "RunResult", "check_physics", "default_config", "resume", "run"],
        "._measure": ["measure_run"],
        "._spectrum": ["ExactState", "Sector", "exact_from_config", "exact_state", "load_exact"],
        "._sweep": ["SweepResult", "SweepSpec", "default_sweep_dir", "plot_sweep", "read_spec", "run_sweep", "summary_rows", "sweep_spec"],
        "._vscore": ["infinite_temperature_energy", "v_score"],
        "._distributed": ["is_root", "n_ranks", "rank"],
        "._signals": ["RunInterrupted"],
        "._profile": ["format_profile", "profile_run", "profile_step"],
        "._fullsum": ["FullSumEstimator", "FullSumSampler", "FullSumState"],
        "._observable": ["AbstractObservable", "AbstractOperatorObservable", "AbstractSampleObservable", "ObservableLog", "OperatorObservable", "draws_exact", "expect", "expect_many", "measure", "stats_dict"],
        "._state": ["VariationalState", "load_state"],
    },
    submodules=["distributed", "operators", "testing"],
)
__all__ = sorted(__all__ + ["lazy_exports"])
