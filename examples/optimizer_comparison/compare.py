"""Optimiser comparison on two trapped fermions (Drissi et al. 2024): A = 2, V0 = -10, sigma0 = 0.5.

Adam, SR, KFAC and DGD, each with and without the optimal alpha*/mu* step
(`OptimalStep`, with sgd(1)); same ansatz, same initial parameters, same
sampler seed. Writes `results.json` and `optimizer_comparison.png` under `--out-dir` (default `runs/optimizer_comparison/`)
and prints the steps-to-1e-3 table.

    python examples/optimizer_comparison/compare.py [--steps 300] [--only sr,kfac]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np
import optax

import nqs_core
import nqs_continuum as nc
from nqs_optim import DGD, KFAC, OptimalStep, SR

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
A, V0, SIGMA0 = 2, -10.0, 0.5


def setups(system, trust=0.1, curvature="energy", kfac_lr=0.05, kfac_damping=1e-2, trust_decay=20.0):
    identity = nqs_core.IdentityPreconditioner()
    opt = dict(trust_radius=trust, trust_decay=trust_decay, curvature=curvature)
    return {
        "adam": (identity, optax.adam(1e-2)),
        "sr": (SR(diag_shift=1e-3), optax.sgd(0.05)),
        "kfac": (KFAC(damping=kfac_damping), optax.sgd(kfac_lr)),
        "dgd": (DGD(diag_shift=1e-3), optax.sgd(0.05)),
        # alpha*/mu* on top (sgd(1): the step sets its own length); "gd" = plain gradient direction
        # curvature="energy": the 2x2 model is the Hessian of the sampled energy in the plane of
        # the direction and the previous update (the Fisher model of Drissi et al. 2024 over-steps: README)
        "gd+opt": (OptimalStep(inner=identity, **opt), optax.sgd(1.0)),
        "sr+opt": (OptimalStep(inner=SR(diag_shift=1e-3), **opt), optax.sgd(1.0)),
        "kfac+opt": (OptimalStep(inner=KFAC(damping=kfac_damping), **opt), optax.sgd(1.0)),
        "dgd+opt": (OptimalStep(inner=DGD(diag_shift=1e-3), **opt), optax.sgd(1.0)),
    }


def steps_to(energies, exact, tol=1e-3, window=10):
    """First step at which the running mean over `window` steps is within `tol` (relative)."""
    e = np.asarray(energies)
    if e.size < window:
        return None
    run = np.convolve(e, np.ones(window) / window, mode="valid")
    hit = np.nonzero(np.abs(run - exact) / abs(exact) < tol)[0]
    return int(hit[0] + window - 1) if hit.size else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--only", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust", type=float, default=0.1, help="trust radius of the +opt runs")
    parser.add_argument("--curvature", default="energy", help="2x2 model of the +opt runs: energy or fisher")
    parser.add_argument("--kfac-lr", type=float, default=0.05)
    parser.add_argument("--kfac-damping", type=float, default=1e-2)
    parser.add_argument("--trust-decay", type=float, default=20.0, help="r_n = r / (1 + n / decay)")
    parser.add_argument("--out", default="results.json", help="file name of the results, inside --out-dir")
    parser.add_argument("--out-dir", default=str(ROOT / "runs" / "optimizer_comparison"), help="where results and plot go")
    parser.add_argument("--img-dir", default=None, help="where the plot goes (default: --out-dir; docs/img to refresh the docs)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    space = nc.Particles1D(A)
    system = nc.TrappedFermions1D(space, V0, SIGMA0)
    exact = float(nc.grid_energy_two_body(V0, SIGMA0))
    ansatz = nc.EquivariantSlater(space, hidden=8, n_layers=2, key=jax.random.PRNGKey(args.seed))
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / args.out
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    runs = setups(system, args.trust, args.curvature, args.kfac_lr, args.kfac_damping, args.trust_decay)
    names = [n for n in runs if not args.only or n in args.only.split(",")]
    names = sorted(names, key=lambda n: "kfac" not in n)  # KFAC first
    for name in names:
        precond, opt = runs[name]
        sampler = nc.GaussianMetropolis(space, n_samples=args.samples, n_chains=16)
        driver = nqs_core.VMC(system, ansatz, sampler, opt, precond, exact_energy=exact)
        state = driver.init(jax.random.PRNGKey(args.seed + 1))
        energies, errors = [], []
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state, rec = driver.step(state)
            energies.append(rec["energy"])
            errors.append(rec["energy_error"])
            if not np.isfinite(rec["energy"]):
                break
        wall = time.perf_counter() - t0
        n = steps_to(energies, exact)
        results[name] = {"energies": energies, "errors": errors, "steps_to_1e-3": n, "wall_s": wall,
                         "final_mean_last20": float(np.mean(energies[-20:]))}
        print(f"{name:10s} steps_to_1e-3={n}  last20={np.mean(energies[-20:]):.5f}  wall={wall:.1f}s", flush=True)
        out_path.write_text(json.dumps({**results, "_exact": exact, "_steps": args.steps, "_samples": args.samples}))
    if not args.no_plot:
        plot(results, exact, args.img_dir or out_dir)


def plot(results, exact, img_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = {"adam": "C0", "gd": "C0", "sr": "C1", "kfac": "C2", "dgd": "C3"}
    for name, r in results.items():
        if name.startswith("_"):
            continue
        base = name.split("+")[0]
        ax = axes[1] if name.endswith("+opt") else axes[0]
        e = np.asarray(r["energies"])
        ax.semilogy(np.abs(e - exact) / abs(exact), color=colours[base], lw=1, label=name)
    for ax, title in zip(axes, ("optax / preconditioner + sgd", "with optimal alpha*, mu* (sgd(1))")):
        ax.axhline(1e-3, color="k", ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend()
    axes[0].set_ylabel(r"$|E - E_{grid}| / |E_{grid}|$")
    fig.suptitle(f"A = 2, V0 = {V0}, sigma0 = {SIGMA0}: E_grid = {exact:.6f}")
    fig.tight_layout()
    path = pathlib.Path(img_dir) / "optimizer_comparison.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print("plot:", path)


if __name__ == "__main__":
    main()
