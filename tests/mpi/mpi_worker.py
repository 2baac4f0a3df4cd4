"""Run under `mpirun -np 2`: distributed estimator, SR, SRt and MinSR on a fixed
sample set split over ranks, plus a short VMC run. Rank 0 writes the results to
the .npz file named on the command line; the test compares them with one process."""

import sys

import jax
import numpy as np

import nqs_core
from nqs_core import EnergyEstimator, StepContext, real_ravel
from problem import CHAINS, make_problem, natural_gradient_solvers, observables


def main(out, run_dir, cfg_path):
    r, n = nqs_core.rank(), nqs_core.n_ranks()
    assert n == 2, f"expected 2 ranks, got {n}"

    results = {}
    for dtype in ("float64", "complex128"):
        model, system, samples = make_problem(dtype)
        per = CHAINS // n
        local = samples[r * per : (r + 1) * per]  # this rank's chains
        est = EnergyEstimator(chunk_size=8)
        estimate = est(model, system, local)
        results[f"{dtype}/energy"] = np.asarray(estimate.stats.mean)
        results[f"{dtype}/error"] = np.asarray(estimate.stats.error_of_mean)
        results[f"{dtype}/gradient"] = np.asarray(real_ravel(est.gradient(model, local, estimate))[0])
        clip = EnergyEstimator(chunk_size=8, clip_local_energy=1.0)  # medians over both ranks
        results[f"{dtype}/gradient_clipped"] = np.asarray(real_ravel(clip.gradient(model, local, estimate))[0])
        # observables (issue 14): Monte Carlo over this rank's chains and the exact
        # full sum split over the ranks, both reduced over ranks
        for oname, obs in observables(system).items():
            mc = nqs_core.expect(model, obs, local)
            results[f"{dtype}/obs/{oname}/mc"] = np.asarray(mc.mean)
            results[f"{dtype}/obs/{oname}/mc_error"] = np.asarray(mc.error_of_mean)
            results[f"{dtype}/obs/{oname}/exact"] = np.asarray(nqs_core.expect(model, obs, nqs_core.FullSumState(system.space)).mean)
        for name, pre in natural_gradient_solvers().items():
            direction, _, _ = jax.jit(lambda m, s, e: pre(StepContext(system, m, s, e, est), None))(model, local, estimate)
            results[f"{dtype}/{name}"] = np.asarray(real_ravel(direction)[0])

    # a short VMC run through the config layer: identical parameters on every rank
    cfg = nqs_core.loads_config(open(cfg_path).read())
    result = nqs_core.run(cfg, run_dir=run_dir, progress=False)
    params = np.concatenate([np.asarray(a).ravel().view(np.float64) for a in jax.tree.leaves(result.state.params)])
    from mpi4py import MPI

    all_params = MPI.COMM_WORLD.gather(params, root=0)

    # resume under MPI: 2 steps + resume to 4 equals the uninterrupted 4 steps (the
    # divergence guard's history is NaN where no step has filled it yet: NaN == NaN here)
    nqs_core.run(cfg, run_dir=run_dir + "-part", progress=False, n_steps=2)
    resumed = nqs_core.resume(run_dir + "-part", n_steps=4, progress=False)
    same = all(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(result.state))
    )
    all_same = MPI.COMM_WORLD.gather(same, root=0)
    if r == 0:
        results["params_equal_on_ranks"] = np.array(all(np.array_equal(all_params[0], p) for p in all_params))
        results["vmc_energy"] = np.asarray(result.energy.mean.real)
        results["resume_equal"] = np.array(all(all_same))
        np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
