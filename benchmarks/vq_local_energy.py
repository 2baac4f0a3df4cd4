"""VQ-NQS local-energy cost, dense vs reuse (Sharir et al. 2022, Table 1 and Fig. 2).

    python benchmarks/vq_local_energy.py heisenberg --L 4 [--models runs/vq/models]
    python benchmarks/vq_local_energy.py scaling --sizes 16 32 64 128

`heisenberg`: 2D Heisenberg OBC (Marshall sign, Sz = 0); the trained baseline and
6-bit VQ-NQS from runs/vq/models (made by examples/vq/heisenberg_obc.py) if present (random weights otherwise, said
in the output). For a batch of samples: analytic FLOPs (dense / reuse, total and
per-location "quantised ops"), XLA cost-analysis FLOPs of the two compiled
functions, measured wall time (jit, block_until_ready, best of 3, same samples),
and the largest difference between compressed and dense local energies.

`scaling`: TFIM chain (h = J = 1, open), one-block VQ-NQS (4 quantiser heads x
64 codes, as Fig. 2) with random weights, cost per sample vs N, with fitted
power laws; plot to vq_scaling.png under --img-dir (default runs/benchmarks/; docs/img refreshes the docs).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nqs_core  # noqa: F401  (float64)
from nqs_spins import Chain, Heisenberg, Ising, SpinHalf, Square
from nqs_vq import VQTransformer, calibrate_capacity, local_energy_flops, timed, xla_flops

ROOT = pathlib.Path(__file__).resolve().parents[1]


def local_energy_fns(system, model):
    """Jitted dense (`vmap(model)` over connected configurations) and compressed
    (`log_psi_connected`) local-energy functions over a batch of samples."""
    dense = jax.jit(jax.vmap(lambda x: system.local_energy(lambda y: model(y), x)))
    comp = jax.jit(jax.vmap(lambda x: system.local_energy(model, x)))
    return dense, comp


def measure(system, model, baseline, xs, margin=0.1, repeats=3):
    conn = jax.vmap(system.connected)(xs)[0]
    b = conn.shape[1] + 1
    mc, counts = calibrate_capacity(model, system, xs, margin=margin)
    dense, comp = local_energy_fns(system, mc)
    e_dense = dense(xs)
    e_comp = comp(xs)
    diff = float(jnp.max(jnp.abs(e_dense - e_comp)))
    n = xs.shape[0]
    an = [local_energy_flops(model, b, c) for c in counts]
    res = {
        "n_samples": int(n),
        "configs_per_sample": int(b),
        "tokens": model.n_tokens,
        "locations_per_sample": int(b * model.n_tokens),
        "unique_per_stage_mean": counts.mean(axis=0).tolist(),
        "unique_per_stage_max": counts.max(axis=0).tolist(),
        "capacity": [list(c) for c in mc.capacity if c is not None],
        "max_abs_diff_compressed_vs_dense": diff,
        "flops_analytic_dense": float(np.mean([a["dense"] for a in an]) * n),
        "flops_analytic_reuse": float(np.mean([a["reuse"] for a in an]) * n),
        "flops_analytic_dense_per_location_ops": float(np.mean([a["dense_per_location"] for a in an]) * n),
        "flops_analytic_reuse_per_location_ops": float(np.mean([a["reuse_per_location"] for a in an]) * n),
        "flops_xla_dense": xla_flops(lambda x: jax.vmap(lambda s: system.local_energy(lambda y: mc(y), s))(x), xs),
        "flops_xla_reuse": xla_flops(lambda x: jax.vmap(lambda s: system.local_energy(mc, s))(x), xs),
        "wall_s_dense": timed(dense, xs, repeats=repeats),
        "wall_s_reuse": timed(comp, xs, repeats=repeats),
    }
    if baseline is not None:
        bd, _ = local_energy_fns(system, baseline)
        res["flops_analytic_baseline_dense"] = float(local_energy_flops(baseline, b)["dense"] * n)
        res["flops_xla_baseline_dense"] = xla_flops(
            lambda x: jax.vmap(lambda s: system.local_energy(lambda y: baseline(y), s))(x), xs
        )
        res["wall_s_baseline_dense"] = timed(bd, xs, repeats=repeats)
    r = res
    r["savings_flops_analytic"] = r["flops_analytic_dense"] / r["flops_analytic_reuse"]
    r["savings_flops_analytic_per_location_ops"] = (
        r["flops_analytic_dense_per_location_ops"] / r["flops_analytic_reuse_per_location_ops"]
    )
    r["savings_flops_xla"] = r["flops_xla_dense"] / r["flops_xla_reuse"]
    r["savings_wall"] = r["wall_s_dense"] / r["wall_s_reuse"]
    if baseline is not None:
        r["savings_vs_baseline_flops_analytic"] = r["flops_analytic_baseline_dense"] / r["flops_analytic_reuse"]
        r["savings_vs_baseline_wall"] = r["wall_s_baseline_dense"] / r["wall_s_reuse"]
    return r


def heisenberg(args):
    import sys

    sys.path.insert(0, str(ROOT / "examples" / "vq"))
    from heisenberg_obc import ARCH  # the architecture of the trained models

    lat = Square(args.L, pbc=False)
    space = SpinHalf(lattice=lat, total_sz=0.0)
    system = Heisenberg(space, lat, marshall_sign=True)
    arch = dict(ARCH, final_attention=args.final)
    models = pathlib.Path(args.models)
    tag = f"{args.L}x{args.L}" + ("_fa" if args.final else "")
    out = {"lattice": tag, "architecture": arch, "machine": platform.processor() or platform.machine()}
    like_vq = VQTransformer(space, n_codes=64, n_code_heads=1, key=jax.random.PRNGKey(0), **arch)
    like_base = VQTransformer(space, n_codes=0, key=jax.random.PRNGKey(0), **arch)
    vq_file = next((models / f"{tag}_{s}.eqx" for s in ("vq6_ft", "vq6") if (models / f"{tag}_{s}.eqx").exists()), None)
    base_file = models / f"{tag}_baseline.eqx"
    vq = eqx.tree_deserialise_leaves(vq_file, like_vq) if vq_file else like_vq
    base = eqx.tree_deserialise_leaves(base_file, like_base) if base_file.exists() else like_base
    out["weights"] = {"vq": str(vq_file.name) if vq_file else "random", "baseline": base_file.name if base_file.exists() else "random"}
    runs = []
    for i in range(args.batches):
        xs = eqx.filter_jit(vq.sample)(jax.random.PRNGKey(100 + i), args.n_samples)
        t0 = time.perf_counter()
        runs.append(measure(system, vq, base, xs))
        print(f"batch {i}: {json.dumps({k: v for k, v in runs[-1].items() if k.startswith(('savings', 'max_abs'))})} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    out["batches"] = runs
    keys = [k for k in runs[0] if k.startswith("savings") or k.startswith("wall") or k.startswith("flops")]
    out["mean"] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    out["max_abs_diff_compressed_vs_dense"] = max(r["max_abs_diff_compressed_vs_dense"] for r in runs)
    path = ROOT / "benchmarks" / f"results_vq_heisenberg_{tag}.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["mean"], indent=1))


def scaling(args):
    rows = []
    for n in args.sizes:
        lat = Chain(n, pbc=False)
        space = SpinHalf(lattice=lat)
        system = Ising(space, lat, h=1.0)
        m = VQTransformer(space, patch_size=args.patch, d_model=args.d_model, n_heads=4, n_layers=1,
                          n_codes=64, n_code_heads=4, key=jax.random.PRNGKey(n))
        xs = eqx.filter_jit(m.sample)(jax.random.PRNGKey(1), args.n_samples)
        t0 = time.perf_counter()
        r = measure(system, m, None, xs, repeats=2)
        r["N"] = n
        rows.append(r)
        print(f"N={n}: dense {r['flops_analytic_dense'] / r['n_samples']:.3e} reuse {r['flops_analytic_reuse'] / r['n_samples']:.3e} "
              f"FLOP/sample, wall {r['wall_s_dense']:.3f}s / {r['wall_s_reuse']:.3f}s, diff {r['max_abs_diff_compressed_vs_dense']:.1e} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    ns = np.array([r["N"] for r in rows], dtype=float)
    fits = {}
    series = {
        "flops_dense": [r["flops_analytic_dense"] / r["n_samples"] for r in rows],
        "flops_reuse": [r["flops_analytic_reuse"] / r["n_samples"] for r in rows],
        "flops_reuse_per_location_ops": [r["flops_analytic_reuse_per_location_ops"] / r["n_samples"] for r in rows],
        "wall_dense": [r["wall_s_dense"] / r["n_samples"] for r in rows],
        "wall_reuse": [r["wall_s_reuse"] / r["n_samples"] for r in rows],
    }
    for k, v in series.items():
        fits[k] = float(np.polyfit(np.log(ns), np.log(np.asarray(v)), 1)[0])
    out = {"model": {"d_model": args.d_model, "patch_size": args.patch, "n_layers": 1, "n_heads": 4,
                     "n_codes": 64, "n_code_heads": 4, "weights": "random"},
           "n_samples": args.n_samples, "rows": rows, "per_sample": series, "fitted_exponents": fits}
    (ROOT / "benchmarks" / "results_vq_scaling.json").write_text(json.dumps(out, indent=1))
    print("fitted exponents (cost ~ N^p):", json.dumps(fits))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, ylabel in (
        (axes[0], ("flops_dense", "flops_reuse", "flops_reuse_per_location_ops"), "FLOPs per sample (analytic)"),
        (axes[1], ("wall_dense", "wall_reuse"), "wall time per sample [s]"),
    ):
        for k in keys:
            ax.loglog(ns, series[k], "o-", label=f"{k} (fit N^{fits[k]:.2f})")
        ax.set_xlabel("N (spins)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("VQ-NQS local energies, TFIM chain h=1: without vs with reuse")
    fig.tight_layout()
    img_dir = pathlib.Path(args.img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(img_dir / "vq_scaling.png", dpi=120)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("heisenberg")
    h.add_argument("--L", type=int, default=4)
    h.add_argument("--n-samples", type=int, default=512)
    h.add_argument("--batches", type=int, default=2)
    h.add_argument("--models", default=str(ROOT / "runs" / "vq" / "models"))
    h.add_argument("--final", action="store_true", help="models with the final attention half-block (*_fa_*.eqx)")
    s = sub.add_parser("scaling")
    s.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    s.add_argument("--img-dir", default=str(ROOT / "runs" / "benchmarks"), help="where vq_scaling.png goes (docs/img to refresh the docs)")
    s.add_argument("--n-samples", type=int, default=16)
    s.add_argument("--d-model", type=int, default=32)
    s.add_argument("--patch", type=int, default=2)
    a = p.parse_args()
    heisenberg(a) if a.cmd == "heisenberg" else scaling(a)


if __name__ == "__main__":
    main()
