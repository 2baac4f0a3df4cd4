"""Run the trapped-fermion benchmarks (Keeble et al. 2023) and write the README table.

Usage: python examples/continuum/run_table.py [--quick] [--only NAME ...] [--out-dir DIR]

For every case it builds the config of `a2_v0_m10.toml` (the shared template)
with A and V0 changed, runs VMC (SR + sgd with a cosine-decayed learning rate),
evaluates the final energy over `n_eval_batches` sampler calls and compares
with the built-in grid solver. Writes `results.json` and, for A = 3, plots of the one-body density and the pair
distribution (`density_A3.png`, `pair_A3_V0*.png`) under `--out-dir` (default
`runs/continuum_table/`; the copies in examples/continuum came from `--out-dir examples/continuum`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

import nqs_core
from nqs_continuum import one_body_density, pair_distribution, plot_density, plot_pair_distribution

HERE = pathlib.Path(__file__).parent
CASES = {
    "A2_V0-20": (2, -20.0),
    "A2_V0-10": (2, -10.0),
    "A2_V0+10": (2, 10.0),
    "A2_V0+20": (2, 20.0),
    "A3_V0-5": (3, -5.0),
    "A3_V0+5": (3, 5.0),
}


def config_for(a: int, v0: float, n_steps: int) -> dict:
    cfg = nqs_core.load_config(HERE / "a2_v0_m10.toml")
    cfg["space"]["n_particles"] = a
    cfg["system"]["V0"] = v0
    cfg["run"]["n_steps"] = n_steps
    cfg["run"]["output"] = str(HERE / "runs")
    cfg["run"]["name"] = f"A{a}_V0{v0:+g}-{int(time.time())}"
    cfg["optimizer"]["learning_rate"]["decay_steps"] = n_steps
    return cfg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="150 steps instead of 600")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out-dir", default=str(HERE.resolve().parents[1] / "runs" / "continuum_table"), help="where results.json and the plots go")
    args = parser.parse_args()
    n_steps = 150 if args.quick else 600
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / "results.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    densities, labels = [], []
    for name, (a, v0) in CASES.items():
        if args.only and name not in args.only:
            continue
        cfg = config_for(a, v0, n_steps)
        t0 = time.perf_counter()
        res = nqs_core.run(cfg, progress=False)
        wall = time.perf_counter() - t0
        e, err = float(res.energy.mean), float(res.energy.error_of_mean)
        rel = abs(e - res.exact_energy) / abs(res.exact_energy)
        results[name] = {
            "A": a,
            "V0": v0,
            "steps": n_steps,
            "samples_per_step": cfg["sampler"]["n_samples"],
            "energy": e,
            "error": err,
            "variance": float(res.energy.variance),
            "exact": res.exact_energy,
            "relative_error": rel,
            "wall_s": wall,
        }
        print(f"{name}: {e:.6f} +- {err:.6f}  exact {res.exact_energy:.6f}  rel {rel:.2e}  {wall:.0f} s", flush=True)
        if a == 3:
            driver = res.calculation.driver
            samples = []
            sstate = res.state.sampler_state
            model = driver.model(res.state)
            dist = nqs_core.BornDistribution(model)
            for _ in range(8):
                s, sstate, _ = driver.sampler.sample(dist, sstate)
                samples.append(np.asarray(s))
            samples = np.concatenate(samples, axis=1)
            densities.append(one_body_density(samples, bins=50, range=(-4.0, 4.0)))
            labels.append(f"V0 = {v0:+g}")
            g = pair_distribution(samples, bins=40, range=(-3.5, 3.5))
            plot_pair_distribution(g, out_dir / f"pair_A3_V0{v0:+g}.png", title=f"A = 3, V0 = {v0:+g}, sigma0 = 0.5")
        out_path.write_text(json.dumps(results, indent=1))
    if densities:
        plot_density(densities, out_dir / "density_A3.png", labels=labels, title="A = 3, sigma0 = 0.5")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    main()
