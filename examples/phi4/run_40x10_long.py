"""Bedaque and Oh 2024, Fig. 3 check at t = 20 with longer training (40x10, m^2 = 0.01, lambda = 0.1).

Same configurations, training set and seeds as `run_40x10.py` (first 1000 of the 2000 cached
configurations for training), but only the t = 20 control variate, trained for more epochs.
Records the held-out ratio sigma_raw/sigma_CV during training and, at the end, the ratio on
the training set, on the held-out set and the error ratio of C(20) on all 2000 configurations
(footnote 1 of Bedaque and Oh 2024).

Usage: python examples/phi4/run_40x10_long.py [--epochs 200] [--reflect] [--seed 0]
Writes results_40x10_long[_reflect][_seedS].json under --out-dir (default runs/phi4/).
"""

import argparse
import json
import pathlib
import time

import jax
import numpy as np

import nqs_phi4 as p4

ROOT = pathlib.Path(__file__).resolve().parents[2]
ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=200)
ap.add_argument("--eval-every", type=int, default=25)
ap.add_argument("--delta", type=float, default=1e-3)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--refit-every", type=int, default=5)
ap.add_argument("--reflect", action="store_true")
ap.add_argument("--seed", type=int, default=0, help="offset of the PRNG keys (0: the keys of run_40x10.py)")
ap.add_argument("--workdir", default=str(ROOT / "runs" / "phi4_40x10"))
ap.add_argument("--out-dir", default=str(ROOT / "runs" / "phi4"), help="where the results json goes")
args = ap.parse_args()
L0, L1, M2, LAM, N, NTRAIN = 40, 10, 0.01, 0.1, 2000, 1000
phi, info = p4.load_configurations(pathlib.Path(args.workdir) / "cfgs.npz")
action = p4.Phi4Action(L0=L0, L1=L1, m2=M2, lam=LAM)
train, held = phi[:NTRAIN], phi[NTRAIN:]
t0 = time.perf_counter()
net = p4.CVNetwork(L0, L1, hidden=(16,), reflect=args.reflect, key=jax.random.PRNGKey(3 + 100 * args.seed))
cv = p4.linear_start(p4.ControlVariate(action, net, 20), train, args.delta, key=jax.random.PRNGKey(4 + 100 * args.seed))
print(f"start: held-out ratio {p4.variance_ratio(cv, held):.2f}", flush=True)
cv, hist = p4.train_control_variate(
    cv, train, n_epochs=args.epochs, key=jax.random.PRNGKey(5 + 100 * args.seed), phi_eval=held, eval_every=args.eval_every,
    delta=args.delta, learning_rate=args.lr, batch_size=args.batch_size, refit_every=args.refit_every,
    callback=lambda r: print(r, flush=True) if "ratio" in r else None)
wall = time.perf_counter() - t0
o = np.asarray(p4.correlator_at(phi, 20))
imp = np.asarray(cv.improved(phi))
res = {
    "settings": vars(args), "history": hist, "wall_s": wall, "s_per_epoch": hist[-1]["time_s"] / len(hist),
    "ratio_train": float(np.std(o[:NTRAIN]) / np.std(imp[:NTRAIN])),
    "ratio_held_out": float(np.std(o[NTRAIN:]) / np.std(imp[NTRAIN:])),
    # error of the mean over all N single configurations (jackknife with N bins = std / sqrt(N))
    "error_ratio_C20_all_configs": float(np.std(o, ddof=1) / np.std(imp, ddof=1)),
    "C20_raw": [float(o.mean()), float(o.std(ddof=1) / np.sqrt(N))],
    "C20_cv": [float(imp.mean()), float(imp.std(ddof=1) / np.sqrt(N))],
}
print({k: v for k, v in res.items() if k != "history"}, flush=True)
tag = ("_reflect" if args.reflect else "") + (f"_seed{args.seed}" if args.seed else "")
pathlib.Path(args.out_dir).mkdir(parents=True, exist_ok=True)
(pathlib.Path(args.out_dir) / f"results_40x10_long{tag}.json").write_text(json.dumps(res, indent=1, default=float))
