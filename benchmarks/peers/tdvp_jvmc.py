"""jVMC's side of `benchmarks/tdvp_step.py`: one RK4 step on `jVMC.util.TDVP`.

Run with the jVMC virtual environment's python (started by `tdvp_step.py`):

    /work/bench-venvs/jvmc/bin/python benchmarks/peers/tdvp_jvmc.py PROBLEM.json

jVMC's steppers are Euler, Heun and AdaptiveHeun (`jVMC.util.stepper`); it has no
Runge-Kutta 4. Its TDVP object is the right-hand side `f(theta, t, psi=...,
hamiltonian=..., numSamples=..., intStep=k)` that every stepper calls once per
stage (sampling, local energies, gradients, solve), so the RK4 step here is the
classical four-stage scheme written over that callable: four right-hand sides
and three parameter updates, as a jVMC stepper would do it. A fixed-step
`stepper.Heun` (two stages) is timed as well, in the final request, so that the
per-stage cost of jVMC's own stepper can be compared.

Problem: TFIM chain (`op.Sz`, `op.Sx` are Pauli matrices in jVMC), `nets.CpxRBM`
with `bias=True` (it has no visible bias; its input is `2 s - 1` for s in {0, 1},
so nqs's +-1 configurations map to s = (x + 1) / 2), `MCSampler` with
`propose_spin_flip`, `numChains` chains, `sweepSteps` flips between samples and
`thermalizationSweeps = n_discard` sweeps at every call. jVMC's solver is always a
pseudo-inverse from the eigendecomposition of S with a soft cutoff (`pinvCutoff`,
relative to the largest eigenvalue) and the signal-to-noise cutoff (`snrTol`;
0 switches its effect off, but the SNR is computed at every stage anyway); its
`diagonalShift` is relative (`S_kk (1 + shift)`), not absolute.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _protocol import emit, read_problem, serve, setup_env  # noqa: E402,F401

setup_env()

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jVMC  # noqa: E402
import jVMC.operator as op  # noqa: E402


def main():
    pb, arr = read_problem()
    L, n = pb["L"], pb["n_samples"]
    net = jVMC.nets.CpxRBM(numHidden=pb["alpha"] * L, bias=True)
    psi = jVMC.vqs.NQS(net, batchSize=n, seed=pb["seed"])
    psi(jnp.zeros((1, 1, L), dtype=np.int32))  # initialises the network
    w, b = arr["W"], arr["b"]  # (n_hidden, L), (n_hidden,)
    psi.params = {"Dense_0": {"kernel": jnp.asarray(w.T), "bias": jnp.asarray(b)}}

    ham = op.BranchFreeOperator()
    for i in range(L):
        ham.add(op.scal_opstr(-pb["J"], (op.Sz(i), op.Sz((i + 1) % L))))
        ham.add(op.scal_opstr(-pb["h"], (op.Sx(i),)))

    s_check = ((np.asarray(arr["check_x"]) + 1) // 2).astype(np.int32)[None]
    log_psi = psi(jnp.asarray(s_check))
    eloc = np.asarray(ham.get_O_loc(jnp.asarray(s_check), psi, log_psi, 0.0))[0]
    log_psi = np.asarray(log_psi)[0]

    sampler = jVMC.sampler.MCSampler(
        psi,
        (L,),
        jax.random.PRNGKey(pb["seed"] + 1),
        updateProposer=jVMC.sampler.propose_spin_flip,
        numChains=pb["n_chains"],
        numSamples=n,
        thermalizationSweeps=pb["n_discard"],
        sweepSteps=pb["sweep_size"],
    )
    sol = pb["solver"]
    tdvp = jVMC.util.TDVP(
        sampler,
        rhsPrefactor=1.0j,
        makeReal="imag",
        snrTol=sol.get("jvmc_snr_tol", 0.0),
        pinvTol=0.0,  # no early exit: the cutoff goes down to pinvCutoff
        pinvCutoff=sol.get("rcond", 1e-8),
        diagonalShift=0.0,
    )
    if sol.get("jvmc_skip_snr"):
        # a variant, not jVMC as shipped: with snrTol = 0 the SNR does not change the
        # solution, but TDVP.solve computes it at every stage (V^H applied to the
        # M x 2P per-sample forces); replaced here by ones to time the rest alone
        def no_snr(eloc, gradients):
            tdvp.snr = jnp.ones_like(tdvp.ev)

        tdvp._get_snr = no_snr
    dt = pb["dt"]
    box = {"t": 0.0}
    kw = dict(psi=psi, hamiltonian=ham, numSamples=n)

    def rk4(y, t):
        k1 = tdvp(y, t, **kw, intStep=0)
        k2 = tdvp(y + 0.5 * dt * k1, t + 0.5 * dt, **kw, intStep=1)
        k3 = tdvp(y + 0.5 * dt * k2, t + 0.5 * dt, **kw, intStep=2)
        k4 = tdvp(y + dt * k3, t + dt, **kw, intStep=3)
        return y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def energy_info():
        return {
            "energy": float(tdvp.get_energy_mean()),
            "energy_error": float(np.sqrt(np.real(tdvp.get_energy_variance()) / n)),
        }

    def step():
        y = rk4(psi.get_parameters(), box["t"])
        psi.set_parameters(y)
        jax.block_until_ready(psi.get_parameters())
        box["t"] += dt
        return dict(t=box["t"], **energy_info())

    for _ in range(pb["warmup"]):
        step()

    def final():
        out = {"t": box["t"]}
        # the energy at the parameters reached (one more right-hand side, not timed)
        tdvp(psi.get_parameters(), box["t"], **kw, intStep=0)
        out.update(energy_info())
        # jVMC's own timing of the parts of one right-hand side (its `outp` hooks;
        # a stand-in for its OutputManager, which writes an HDF5 file)
        parts = {}

        class Timer:
            def start_timing(self, name):
                parts[name] = -time.perf_counter()

            def stop_timing(self, name):
                parts[name] += time.perf_counter()

            def add_timing(self, name, value):
                parts[name] = value

        t0 = time.perf_counter()
        tdvp(psi.get_parameters(), box["t"], **kw, intStep=1, outp=Timer())
        parts["whole"] = time.perf_counter() - t0
        out["rhs_parts_wall"] = parts
        # jVMC's own fixed-step Heun (two stages), for the per-stage cost; after
        # the energy, so that it does not move the parameters reported
        heun = jVMC.util.stepper.Heun(timeStep=dt)
        t0, c0 = time.perf_counter(), time.process_time()
        y, _ = heun.step(box["t"], tdvp, psi.get_parameters(), **kw)
        jax.block_until_ready(y)
        out["heun_step_wall_cpu"] = [time.perf_counter() - t0, time.process_time() - c0]
        return out

    serve(
        step,
        final,
        {
            "library": "jvmc",
            "versions": {"jVMC": jVMC.__version__, "jax": jax.__version__, "numpy": np.__version__},
            "n_real_params": int(psi.get_parameters().size),
            "holomorphic": bool(psi.holomorphic),
            "check": {
                "log_psi_re": np.real(log_psi).tolist(),
                "log_psi_im": np.imag(log_psi).tolist(),
                "eloc_re": np.real(eloc).tolist(),
                "eloc_im": np.imag(eloc).tolist(),
            },
            "setup": f"TDVP(pinvCutoff={sol.get('rcond', 1e-8)}, snrTol={sol.get('jvmc_snr_tol', 0.0)}{', SNR not computed' if sol.get('jvmc_skip_snr') else ''}), RK4 over its rhs, MCSampler propose_spin_flip",
        },
    )


if __name__ == "__main__":
    main()
