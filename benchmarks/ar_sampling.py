"""Sampling speed: exact direct sampling of the autoregressive GRU (L = 100) vs
Metropolis (Sz-conserving exchange moves, one sweep = L proposals between stored
samples) on an RBM, in *effective* independent samples per second.

Effective samples = n_samples / tau, with tau the integrated autocorrelation time
of the local energy of the Heisenberg OBC chain measured over the chains
(`nqs_core.statistics`); direct samples are independent (tau = 1). The RBM is
untrained (random small weights), which favours Metropolis (short tau); a trained
RBM decorrelates more slowly. Writes benchmarks/results_ar_sampling.json.

Usage: python benchmarks/ar_sampling.py [--length 100] [--n-samples 4096]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import equinox as eqx
import jax

import nqs_core
from nqs_autoregressive import GRU1D
from nqs_networks import RBM
from nqs_spins import Chain, Heisenberg, MetropolisExchange, SpinHalf


def _time(fn, repeats=3):
    jax.block_until_ready(fn())  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def main(length=100, n_samples=2048, hidden=32, alpha=2):
    space = SpinHalf(length, total_sz=0.0)
    system = Heisenberg(space, Chain(length, pbc=False), marshall_sign=True)
    key = jax.random.PRNGKey(0)
    # chunked: L = 100 x ~100 connected configurations per sample would not fit in memory at once
    eloc_fn = eqx.filter_jit(lambda m, x: nqs_core.batch_apply(lambda c: system.local_energy(m, c), x, 64))

    gru = GRU1D(space, hidden=hidden, phase=False, key=key)
    direct = nqs_core.DirectSampler(space, n_samples=n_samples, n_chains=16)
    dist = nqs_core.BornDistribution(gru)
    state = direct.init(dist, key)
    t_direct = _time(lambda: direct.sample(dist, state)[0])
    x, _, _ = direct.sample(dist, state)
    st = nqs_core.statistics(eloc_fn(gru, x.reshape(-1, length)).reshape(x.shape[:2]))
    out = {
        "device": jax.devices()[0].device_kind,
        "length": length,
        "n_samples": n_samples,
        "direct_gru": {
            "hidden": hidden,
            "n_parameters": nqs_core.n_real_parameters(gru),
            "seconds": t_direct,
            "samples_per_second": n_samples / t_direct,
            "tau": float(st.tau_corr),
            "effective_samples_per_second": n_samples / t_direct,
        },
    }

    rbm = RBM(space, alpha=alpha, key=key)
    metro = MetropolisExchange(space, Chain(length, pbc=False), n_samples=n_samples, n_chains=16, n_discard_per_chain=0)
    mdist = nqs_core.BornDistribution(rbm)
    mstate = metro.init(mdist, key)
    sample = eqx.filter_jit(lambda s, d, st_: s.sample(d, st_))
    for _ in range(5):  # burn in
        _, mstate, _ = sample(metro, mdist, mstate)
    t_metro = _time(lambda: sample(metro, mdist, mstate)[0])
    xm, _, _ = sample(metro, mdist, mstate)
    stm = nqs_core.statistics(eloc_fn(rbm, xm.reshape(-1, length)).reshape(xm.shape[:2]))
    tau = max(float(stm.tau_corr), 1.0)
    out["metropolis_rbm"] = {
        "alpha": alpha,
        "n_parameters": nqs_core.n_real_parameters(rbm),
        "sweep_size": metro.sweep_size,
        "seconds": t_metro,
        "samples_per_second": n_samples / t_metro,
        "tau": float(stm.tau_corr),
        "effective_samples_per_second": n_samples / t_metro / tau,
    }
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--n-samples", type=int, default=2048)
    a = p.parse_args()
    res = main(a.length, a.n_samples)
    print(json.dumps(res, indent=1))
    (pathlib.Path(__file__).parent / "results_ar_sampling.json").write_text(json.dumps(res, indent=1) + "\n")
