"""SRt vs dense SR: time and peak memory of one natural-gradient solve vs P.

For each number of real parameters P at fixed M samples, a random centred
log-derivative matrix Y (M x P, complex, scaled like (O - <O>)/sqrt(M)) and
residual eps are drawn and the update direction is computed by

- dense SR : S = X^T X (P x P), Cholesky  -> O(M P^2 + P^3) time, O(P^2) memory
- SRt      : T = X X^T (2M x 2M), Cholesky -> O(M^2 P + M^3) time, O(M P) memory

with X = [Re Y; Im Y] (Eqs. 7-10 of Rende et al. 2024). Every (method, P) runs in a fresh
subprocess so that its peak resident memory (ru_maxrss) is its own.

    python benchmarks/srt_scaling.py --m 1024 --p 1000 2000 5000 10000 20000 50000 100000 \
        --json srt_scaling.json --plot srt_scaling.png

Dense SR is skipped where its P x P matrix would not fit (`--max-dense-p`).
Under `mpirun -np 2 python benchmarks/srt_scaling.py --worker srt P M` the SRt
solve is distributed (each rank holds M/2 samples) and reports per-rank memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def worker(method: str, p: int, m: int, repeats: int = 3) -> dict:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import nqs_core
    from nqs_optim import real_sample_matrix, solve_sr, solve_srt

    n_ranks, rank = nqs_core.n_ranks(), nqs_core.rank()
    m_local = m // n_ranks
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    key = jax.random.fold_in(jax.random.PRNGKey(0), rank)
    k1, k2, k3 = jax.random.split(key, 3)

    @jax.jit
    def make():
        y = jax.lax.complex(jax.random.normal(k1, (m_local, p)), jax.random.normal(k2, (m_local, p))) / jnp.sqrt(m)
        eps = jax.lax.complex(jax.random.normal(k3, (m_local,)), jnp.zeros(m_local)) / jnp.sqrt(m)
        return y, eps

    y, eps = jax.block_until_ready(make())

    if method == "sr":

        @jax.jit
        def solve(y, eps):
            x, f = real_sample_matrix(y, eps)
            return solve_sr(x, nqs_core.distributed.sum_over_ranks(x.T @ f), 1e-4)[0]

    else:

        @jax.jit
        def solve(y, eps):
            x, f = real_sample_matrix(y, eps)
            return solve_srt(x, f, 1e-4, split=True)[0]

    t0 = time.perf_counter()
    jax.block_until_ready(solve(y, eps))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats if first < 5.0 else 1):  # slow solves: one timed repeat
        t0 = time.perf_counter()
        jax.block_until_ready(solve(y, eps))
        times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "P": p, "M": m, "n_ranks": n_ranks, "rank": rank, "time_s": min(times),
            "first_call_s": first, "peak_rss_mb": peak_kb / 1024, "baseline_rss_mb": base / 1024}


def run_one(method, p, m, n_ranks=1):
    cmd = [sys.executable, __file__, "--worker", method, str(p), str(m)]
    if n_ranks > 1:
        mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
        cmd = [mpirun, "-np", str(n_ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "P", "M"))
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--p", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000, 50000, 100000])
    ap.add_argument("--max-dense-p", type=int, default=20000)
    ap.add_argument("--ranks", action="store_true", help="also measure SRt per-rank memory on 1 vs 2 MPI ranks")
    ap.add_argument("--rank-p", type=int, default=50000)
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()
    if args.worker:
        method, p, m = args.worker
        print(json.dumps(worker(method, int(p), int(m))), flush=True)
        return

    results = []
    for p in args.p:
        for method in ("srt", "sr"):
            if method == "sr" and p > args.max_dense_p:
                continue
            row = run_one(method, p, args.m)[0]
            results.append(row)
            print(f"{method:4s} P={p:7d} M={args.m}: {row['time_s']*1e3:9.1f} ms  peak {row['peak_rss_mb']:8.0f} MB", flush=True)
    summary = {"runs": results}
    by = {(r["method"], r["P"]): r for r in results}
    ratios = {p: by[("sr", p)]["time_s"] / by[("srt", p)]["time_s"] for p in args.p if ("sr", p) in by}
    summary["speedup_srt_over_sr"] = ratios
    for p, r in ratios.items():
        print(f"P={p}: SRt is x{r:.1f} faster than dense SR")
    if args.ranks:
        one = run_one("srt", args.rank_p, args.m, 1)[0]
        two = run_one("srt", args.rank_p, args.m, 2)
        per_rank = max(r["peak_rss_mb"] for r in two)
        summary["ranks"] = {"P": args.rank_p, "M": args.m, "one_rank_peak_mb": one["peak_rss_mb"],
                            "two_ranks_peak_per_rank_mb": per_rank, "ratio": per_rank / one["peak_rss_mb"],
                            "one_rank_time_s": one["time_s"], "two_ranks_time_s": max(r["time_s"] for r in two)}
        print(f"SRt P={args.rank_p} M={args.m}: peak memory 1 rank {one['peak_rss_mb']:.0f} MB, "
              f"2 ranks {per_rank:.0f} MB per rank (x{per_rank / one['peak_rss_mb']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for method, label in (("sr", "dense SR (P x P)"), ("srt", "SRt (2M x 2M)")):
            rows = sorted((r for r in results if r["method"] == method), key=lambda r: r["P"])
            a1.loglog([r["P"] for r in rows], [r["time_s"] for r in rows], "o-", label=label)
            a2.loglog([r["P"] for r in rows], [r["peak_rss_mb"] for r in rows], "o-", label=label)
        for ax, yl in ((a1, "seconds per solve"), (a2, "peak memory [MB]")):
            ax.axvline(2 * args.m, color="k", ls=":", lw=1, label="P = 2M")
            ax.set_xlabel("real parameters P")
            ax.set_ylabel(yl)
            ax.legend()
        fig.suptitle(f"natural-gradient solve, M = {args.m} complex samples, float64, 2 CPU cores")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
