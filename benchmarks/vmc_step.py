"""Seconds per VMC step and local-energy throughput, nqs vs NetKet, same problem.

Problem: TFIM chain L=16, h=J=1, PBC; real RBM alpha=1; Metropolis local moves,
16 chains, 1024 samples, sweep = L proposals, the same number of discarded
sweeps per chain; SR with a dense S (Cholesky) and diag_shift 0.01; sgd(0.05).
Both libraries run in this process, float64, on the same CPU.

    python benchmarks/vmc_step.py [--steps 50] [--repeats 3] [--json out.json]
    python benchmarks/vmc_step.py --alpha 32 --preconditioner srt   # P >> M: SRt vs NetKet VMC_SR(use_ntk=True)

NetKet is optional (`pip install -e ".[bench]"`); without it only nqs is timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics as pystats
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

L, N_SAMPLES, N_CHAINS, LR = 16, 1024, 16, 0.05
ALPHA, PRECOND, DIAG_SHIFT = 1, "sr", 0.01  # set from the command line
N_DISCARD = (N_SAMPLES // N_CHAINS) // 10


def time_steps(step, n_steps, repeats):
    """Median over `repeats` of the mean seconds per step over `n_steps` steps."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step(n_steps)
        out.append((time.perf_counter() - t0) / n_steps)
    return pystats.median(out)


def time_calls(fn, n, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            jax.block_until_ready(fn())
        out.append((time.perf_counter() - t0) / n)
    return pystats.median(out)


def bench_nqs(n_steps, repeats):
    import equinox as eqx
    import optax

    import nqs_core
    from nqs_networks import RBM
    from nqs_optim import SR, SRt
    from nqs_spins import Chain, Ising, MetropolisLocal, SpinHalf

    space = SpinHalf(n_sites=L)
    system = Ising(space=space, lattice=Chain(L), J=1.0, h=1.0)
    model = RBM(space, alpha=ALPHA, param_dtype="float64", key=jax.random.PRNGKey(0))
    sampler = MetropolisLocal(space, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_discard_per_chain=N_DISCARD)
    pre = SR(diag_shift=DIAG_SHIFT) if PRECOND == "sr" else SRt(diag_shift=DIAG_SHIFT)
    driver = nqs_core.VMC(system, model, sampler, optax.sgd(LR), pre)
    state = driver.init(jax.random.PRNGKey(1))
    box = {"state": state}

    def steps(n):
        s = box["state"]
        for _ in range(n):
            s, _ = driver.step(s)
        box["state"] = s

    t0 = time.perf_counter()
    steps(1)
    compile_s = time.perf_counter() - t0
    steps(10)  # warm-up
    per_step = time_steps(steps, n_steps, repeats)

    samples, _, _ = driver.sampler.sample(nqs_core.BornDistribution(driver.model(box["state"])), box["state"].sampler_state)
    est = eqx.filter_jit(lambda m, x: driver.estimator(m, system, x).local_values)
    m = driver.model(box["state"])
    est(m, samples)
    t_eloc = time_calls(lambda: est(m, samples), 50, repeats)
    energy = float(driver.evaluate(box["state"], 5)[0].mean.real)
    return {"compile_s": compile_s, "step_s": per_step, "eloc_per_s": N_SAMPLES / t_eloc, "energy_after": energy}


def bench_netket(n_steps, repeats):
    import netket as nk
    import optax

    g = nk.graph.Chain(L, pbc=True)
    hi = nk.hilbert.Spin(s=0.5, N=L)
    # NetKet's Ising is H = -h sum sigma^x + J sum sigma^z sigma^z: J = -1 is our J = +1.
    ham = nk.operator.Ising(hi, g, h=1.0, J=-1.0)
    sampler = nk.sampler.MetropolisLocal(hi, n_chains=N_CHAINS, sweep_size=L)
    model = nk.models.RBM(alpha=ALPHA, param_dtype=jnp.float64)
    vs = nk.vqs.MCState(sampler, model, n_samples=N_SAMPLES, n_discard_per_chain=N_DISCARD, seed=0, sampler_seed=1)
    if PRECOND == "sr":
        sr = nk.optimizer.SR(qgt=nk.optimizer.qgt.QGTJacobianDense, solver=nk.optimizer.solver.cholesky, diag_shift=DIAG_SHIFT)
        driver = nk.driver.VMC(ham, optax.sgd(LR), variational_state=vs, preconditioner=sr)
    else:  # NetKet's sample-space SR (the same push-through identity)
        driver = nk.driver.VMC_SR(ham, optax.sgd(LR), diag_shift=DIAG_SHIFT, variational_state=vs, use_ntk=True)

    def steps(n):
        driver.run(n, out=(), show_progress=False)
        jax.block_until_ready(vs.parameters)

    t0 = time.perf_counter()
    steps(1)
    compile_s = time.perf_counter() - t0
    steps(10)
    per_step = time_steps(steps, n_steps, repeats)

    vs.sample()
    samples = vs.samples

    def eloc():
        return vs.local_estimators(ham)

    eloc()
    t_eloc = time_calls(eloc, 50, repeats)
    energy = float(vs.expect(ham).mean.real)
    del samples
    return {"compile_s": compile_s, "step_s": per_step, "eloc_per_s": N_SAMPLES / t_eloc, "energy_after": energy}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--alpha", type=int, default=1)
    ap.add_argument("--preconditioner", choices=("sr", "srt"), default="sr")
    ap.add_argument("--diag-shift", type=float, default=None)
    args = ap.parse_args()
    global ALPHA, PRECOND, DIAG_SHIFT
    ALPHA, PRECOND = args.alpha, args.preconditioner
    DIAG_SHIFT = args.diag_shift if args.diag_shift is not None else (0.01 if PRECOND == "sr" else 1e-4)
    n_params = ALPHA * L * L + ALPHA * L + L
    what = "SR (dense, cholesky)" if PRECOND == "sr" else "SRt (sample space) vs NetKet VMC_SR(use_ntk=True)"
    results = {"problem": f"TFIM chain L={L}, RBM alpha={ALPHA} ({n_params} real params), {N_SAMPLES} samples, {N_CHAINS} chains, {what}",
               "machine": f"{platform.processor() or platform.machine()}, jax {jax.__version__}, devices {jax.devices()}"}
    results["nqs"] = bench_nqs(args.steps, args.repeats)
    try:
        import netket

        results["netket_version"] = netket.__version__
        results["netket"] = bench_netket(args.steps, args.repeats)
    except ImportError:
        results["netket"] = None
    print(f"{results['problem']}\n{results['machine']}")
    print(f"{'':8s} {'s/step':>10s} {'E_loc/s':>12s} {'compile s':>10s} {'E after':>10s}")
    for lib in ("nqs", "netket"):
        r = results[lib]
        if r:
            print(f"{lib:8s} {r['step_s']:10.4f} {r['eloc_per_s']:12.0f} {r['compile_s']:10.2f} {r['energy_after']:10.4f}")
    if results["netket"]:
        results["ratio_step_netket_over_nqs"] = results["netket"]["step_s"] / results["nqs"]["step_s"]
        results["ratio_eloc_nqs_over_netket"] = results["nqs"]["eloc_per_s"] / results["netket"]["eloc_per_s"]
        print(f"per-step speed-up of nqs over NetKet: x{results['ratio_step_netket_over_nqs']:.2f}")
        print(f"local-energy throughput nqs / NetKet: x{results['ratio_eloc_nqs_over_netket']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
