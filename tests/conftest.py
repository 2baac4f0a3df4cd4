import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as nqs_core does; conftest imports numpy first

os.environ.setdefault("JAX_ENABLE_X64", "1")
# The tests compile hundreds of small programs whose run time is negligible: LLVM's
# backend optimisation level 0 cuts the suite's compile time (measured: test_hardening
# 45.7 -> 36.0 CPU-s, test_observables 47.9 -> 37.2) without changing the arithmetic
# (IEEE float64 either way; fast-math stays off). Users' runs are not affected. The
# subprocesses the tests start (`nqs run`, `mpirun`) inherit it, so their compiled
# programs (and the persistent cache keys) are the same as the test process's.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
# A persistent compilation cache shared by the xdist workers, by the subprocesses
# the tests start (`nqs run`, `mpirun`: they inherit these variables) and by later
# runs on the same checkout: what several tests compile is compiled once.
CACHE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".jax_cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE_DIR)
# Only compilations over 1 s are written (~80 executables of a full run, not ~420).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1.0")

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop every compiled function after each test file. Each XLA CPU
    executable holds a few memory mappings; a worker that keeps ~400 tests'
    executables passes the kernel's `vm.max_map_count` (65530) near the end of
    the run, and the next compilation aborts the process (seen as SIGSEGV /
    SIGABRT in jaxlib's `executable.serialize()`). `jax.clear_caches()`
    releases them (measured: 300 compilations 1412 -> 520 mappings)."""
    yield
    jax.clear_caches()


@pytest.fixture
def key():
    return jax.random.PRNGKey(1234)


@pytest.fixture
def keys():
    def make(n, seed=0):
        return jax.random.split(jax.random.PRNGKey(seed), n)

    return make


SMALL_TFIM = """
[run]
n_steps = 10
seed = 5
checkpoint_every = 3
n_eval_batches = 2
exact_energy = "none"

[lattice]
name = "chain"
length = 6

[space]
name = "spin_half"

[system]
name = "ising"
h = 0.8

[ansatz]
name = "rbm"
alpha = 1
param_dtype = "complex128"

[sampler]
name = "metropolis_local"
n_samples = 128
n_chains = 8

[preconditioner]
name = "sr"
diag_shift = 0.01

[optimizer]
name = "sgd"
learning_rate = 0.05
momentum = 0.5
"""


@pytest.fixture
def small_config():
    """A tiny TFIM calculation (a few seconds) as a config dict."""
    import nqs_core

    return nqs_core.loads_config(SMALL_TFIM)


@pytest.fixture
def small_config_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TFIM)
    return path
