"""SR, SRt and MinSR distributed over 2 MPI ranks equal one process to 1e-10.

Runs `mpirun -np 2` in a subprocess (needs mpi4py + mpi4jax + an MPI launcher:
`pip install -e ".[mpi]"`, see docs/mpi.md)."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))

MPIRUN = shutil.which("mpirun", path=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))
HAVE_MPI = MPIRUN is not None and all(importlib.util.find_spec(m) for m in ("mpi4py", "mpi4jax"))

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="MPI tests need mpirun, mpi4py and mpi4jax (pip install -e .[mpi])")

CONFIG = """
[run]
n_steps = 4
seed = 2
n_eval_batches = 2
exact_energy = "none"
[lattice]
name = "chain"
length = 8
[space]
name = "spin_half"
[system]
name = "ising"
[ansatz]
name = "rbm"
alpha = 2
param_dtype = "complex128"
[sampler]
name = "metropolis_local"
n_samples = 64
n_chains = 4
[preconditioner]
name = "srt"
diag_shift = 0.01
[optimizer]
name = "sgd"
learning_rate = 0.05
"""


def assert_same(a, b, tol=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    assert np.linalg.norm(a - b) <= tol * max(np.linalg.norm(b), 1e-300), np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    """One `mpirun -np 2` of both workers (`worker.py`); the persistent
    compilation cache of the test run is shared with the ranks, so the VMC
    step compiled for the run is reused by the second run and the resume."""
    tmp = tmp_path_factory.mktemp("mpi")
    (tmp / "cfg.toml").write_text(CONFIG)
    env = dict(
        os.environ,
        PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        JAX_ENABLE_X64="1",
        OMP_NUM_THREADS="1",
        JAX_COMPILATION_CACHE_DIR=os.path.abspath(jax.config.jax_compilation_cache_dir or tmp / "jax_cache"),
    )
    out, compaction = tmp / "out.npz", tmp / "compaction.npz"
    cmd = [MPIRUN, "-np", "2", sys.executable, str(HERE / "worker.py"), str(out), str(tmp / "run"), str(tmp / "cfg.toml"), str(compaction)]
    # a collective inside the compacted loop (different trip counts per rank) would hang: the timeout fails it
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(np.load(out)), dict(np.load(compaction)), tmp


@pytest.fixture(scope="module")
def mpi_results(mpi_run):
    return mpi_run[0], mpi_run[2]


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_two_ranks_equal_one(mpi_results, dtype):
    from nqs_core import EnergyEstimator, StepContext, real_ravel
    import nqs_core
    from problem import make_problem, natural_gradient_solvers, observables

    res, _ = mpi_results
    model, system, samples = make_problem(dtype)
    est = EnergyEstimator()
    estimate = est(model, system, samples)
    np.testing.assert_allclose(res[f"{dtype}/energy"], estimate.stats.mean, rtol=1e-12)
    np.testing.assert_allclose(res[f"{dtype}/error"], estimate.stats.error_of_mean, rtol=1e-10)
    assert_same(res[f"{dtype}/gradient"], real_ravel(est.gradient(model, samples, estimate))[0])
    clipped = real_ravel(EnergyEstimator(clip_local_energy=1.0).gradient(model, samples, estimate))[0]
    assert_same(res[f"{dtype}/gradient_clipped"], clipped)
    assert not np.allclose(clipped, real_ravel(est.gradient(model, samples, estimate))[0])  # k = 1 clips something
    for oname, obs in observables(system).items():  # MPI observables == one process (issue 14)
        mc = nqs_core.expect(model, obs, samples)
        assert_same(res[f"{dtype}/obs/{oname}/mc"], mc.mean)
        assert_same(res[f"{dtype}/obs/{oname}/mc_error"], mc.error_of_mean)
        assert_same(res[f"{dtype}/obs/{oname}/exact"], nqs_core.expect(model, obs, nqs_core.FullSumState(system.space)).mean)
    for name, pre in natural_gradient_solvers().items():
        direction, _, _ = jax.jit(lambda m, s, e: pre(StepContext(system, m, s, e, est), None))(model, samples, estimate)
        assert_same(res[f"{dtype}/{name}"], real_ravel(direction)[0])


def test_vmc_under_mpi(mpi_results):
    res, tmp = mpi_results
    assert bool(res["params_equal_on_ranks"])
    assert bool(res["resume_equal"])  # sampler states of both ranks restored
    assert float(res["vmc_energy"]) < -8.0  # TFIM L=8 at h=1: E0 = -10.25
    run = tmp / "run"
    assert (run / "log.jsonl").exists() and (run / "checkpoint.eqx").exists() and (run / "result.json").exists()
    import json

    assert json.loads((run / "checkpoint.json").read_text())["n_ranks"] == 2
    assert len((run / "log.jsonl").read_text().splitlines()) == 4  # rank 0 alone writes


# -- compacted local energies (issue 18) -------------------------------------------


@pytest.fixture(scope="module")
def compaction_results(mpi_run):
    return mpi_run[1]


@pytest.mark.parametrize("problem", ["tfim", "j1j2"])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_compacted_local_energies_on_two_ranks(compaction_results, problem, dtype):
    """Each rank's compacted local energies equal the padded path (`local_energy`
    row by row) to 1e-12, unchunked, chunked and with 8-entry blocks, and the
    energy estimate over both ranks equals one process over all samples."""
    from nqs_core import EnergyEstimator, batch_apply
    from problem import make_j1j2, make_problem

    res = compaction_results
    model, system, samples = make_problem(dtype) if problem == "tfim" else make_j1j2(dtype)
    flat = samples.reshape(-1, samples.shape[-1])
    padded = np.asarray(batch_apply(lambda x: system.local_energy(model, x), flat))
    one = EnergyEstimator()(model, system, samples).stats
    key = f"{problem}/{dtype}"
    for variant in ("None", "8", "block8"):
        np.testing.assert_allclose(res[f"{key}/{variant}/eloc"], padded, rtol=1e-12, atol=1e-12, err_msg=variant)
    for chunk_size in ("None", "8"):
        for rank_value in res[f"{key}/{chunk_size}/energy"]:
            np.testing.assert_allclose(rank_value, one.mean, rtol=1e-12)
        for rank_value in res[f"{key}/{chunk_size}/error"]:
            np.testing.assert_allclose(rank_value, one.error_of_mean, rtol=1e-10)


def test_compacted_loop_runs_different_block_counts_on_the_ranks(compaction_results):
    """The ranks' while-loops ran different numbers of blocks and did not hang."""
    for name in ("j1j2/blocks_default", "j1j2/blocks_8"):
        blocks = compaction_results[name]
        assert len(blocks) == 2 and blocks[0] > blocks[1] > 0, (name, blocks)


def test_vmc_trajectory_compacted_equals_padded_on_two_ranks(compaction_results):
    res = compaction_results
    np.testing.assert_allclose(res["vmc/compacted/energy"], res["vmc/padded/energy"], rtol=1e-10)
    np.testing.assert_allclose(res["vmc/compacted/params"], res["vmc/padded/params"], rtol=1e-9, atol=1e-11)
    assert not np.allclose(res["vmc/compacted/energy"][0], res["vmc/compacted/energy"][-1])  # the steps moved
