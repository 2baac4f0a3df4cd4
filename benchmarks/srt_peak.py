"""Achieved fraction of this machine's float64 matmul throughput for the SRt
Gram matrix + solve (Rende et al. 2024, Eq. 10), from XLA's FLOP count.

    python benchmarks/srt_peak.py [--m 1024] [--p 4096 8192] [--json out.json]

The log-derivative matrix is complex (`X = [Y_R; Y_I]`, 2M x P); the peak is one
square float64 matrix product measured in the same process, alternating with
the solve (medians); the peak is the better of a 1024^2 and a 2048^2 product.
"""

from __future__ import annotations

import argparse
import json
import statistics as pystats
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)


def main():
    from nqs_core._profile import matmul_flops_per_second, xla_flops
    from nqs_optim._srt import solve_srt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--p", type=int, nargs="+", default=[4096])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out = []
    for p in args.p:
        x = jax.random.normal(jax.random.PRNGKey(0), (2 * args.m, p), jnp.float64) / jnp.sqrt(args.m)
        f = jax.random.normal(jax.random.PRNGKey(1), (2 * args.m,), jnp.float64)

        def solve(x, f):
            return solve_srt(x, f, 1e-3, split=True)[0]

        fn = jax.jit(solve)
        flops = xla_flops(solve, x, f)
        fn(x, f).block_until_ready()
        times, peaks = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fn(x, f).block_until_ready()
            times.append(time.perf_counter() - t0)
            # the better of two sizes: a small product alone underestimates the peak
            peaks.append(max(matmul_flops_per_second(1024, 3), matmul_flops_per_second(2048, 2)))
        t, peak = pystats.median(times), pystats.median(peaks)
        row = {"m": args.m, "p": p, "flops": flops, "seconds": t, "flop_rate": flops / t, "matmul_peak": peak, "fraction": flops / t / peak}
        print(f"M={args.m} P={p}: {flops / 1e9:.1f} GFLOP in {t:.3f} s = {flops / t / 1e9:.2f} GFLOP/s; "
              f"matmul {peak / 1e9:.2f} GFLOP/s; fraction {100 * row['fraction']:.0f} %", flush=True)
        out.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
