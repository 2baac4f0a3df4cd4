"""Bedaque and Oh 2024, Fig. 3 / Table II: 40x10, m^2 = 0.01, lambda = 0.1, N = 2000 (1000 for training).

1. HMC: 2000 decorrelated configurations.
2. One control variate at t = 20 (1 hidden layer of 16 arcsinh neurons, odd).
3. Transfer training t = 20 -> 0 (one control variate per t), correlated fits of Eq. 17.

Usage: python examples/phi4/run_40x10.py [--epochs 60] [--epochs-transfer 6] [--workdir runs/phi4_40x10]
Writes results_40x10.json and phi4_fig3.png under --out-dir (default runs/phi4/; the png under
--img-dir if given, e.g. docs/img to refresh the docs; with --reflect: results_40x10_reflect.json,
phi4_fig3_reflect.png).
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
ap.add_argument("--epochs", type=int, default=60)
ap.add_argument("--epochs-transfer", type=int, default=6)
ap.add_argument("--delta", type=float, default=1e-3)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--refit-every", type=int, default=5)
ap.add_argument("--reflect", action="store_true", help="average g0 over lattice reflections (extension)")
ap.add_argument("--workdir", default=str(ROOT / "runs" / "phi4_40x10"))
ap.add_argument("--out-dir", default=str(ROOT / "runs" / "phi4"), help="where the results json (and the plot) go")
ap.add_argument("--img-dir", default=None, help="where the plot goes (default: --out-dir)")
args = ap.parse_args()
work = pathlib.Path(args.workdir)
work.mkdir(parents=True, exist_ok=True)
L0, L1, M2, LAM, N, NTRAIN = 40, 10, 0.01, 0.1, 2000, 1000
res = {"settings": vars(args)}

cfg = work / "cfgs.npz"
if cfg.exists():
    phi, info = p4.load_configurations(cfg)
else:
    phi, info = p4.generate_configurations(L0, L1, M2, LAM, N, seed=11, n_chains=50, n_skip=20, n_leapfrog=20, n_thermalize=300)
    p4.save_configurations(cfg, phi, **info, L0=L0, L1=L1, m2=M2, lam=LAM)
res["hmc"] = info
print("HMC:", info, flush=True)
action = p4.Phi4Action(L0=L0, L1=L1, m2=M2, lam=LAM)
train, held = phi[:NTRAIN], phi[NTRAIN:]
kw = dict(delta=args.delta, learning_rate=args.lr, batch_size=args.batch_size, refit_every=args.refit_every)

# -- one control variate at t = 20 ----------------------------------------------
t0 = time.perf_counter()
net = p4.CVNetwork(L0, L1, hidden=(16,), reflect=args.reflect, key=jax.random.PRNGKey(3))
lin = p4.linear_start(p4.ControlVariate(action, p4.CVNetwork(L0, L1, hidden=(), reflect=args.reflect, key=jax.random.PRNGKey(3)), 20), train, args.delta)
res["linear_t20"] = {"ratio_train": p4.variance_ratio(lin, train), "ratio_held_out": p4.variance_ratio(lin, held)}
print("linear CV at t=20:", res["linear_t20"], flush=True)
cv20 = p4.linear_start(p4.ControlVariate(action, net, 20), train, args.delta, key=jax.random.PRNGKey(4))
cv20, hist = p4.train_control_variate(cv20, train, n_epochs=args.epochs, key=jax.random.PRNGKey(5), phi_eval=held, eval_every=10, **kw)
t_single = time.perf_counter() - t0
res["cv_t20"] = {
    "history": hist, "train_s": t_single, "s_per_epoch": hist[-1]["time_s"] / len(hist),
    "ratio_train": p4.variance_ratio(cv20, train), "ratio_held_out": p4.variance_ratio(cv20, held),
}
tab20 = p4.correlator_table(phi, [cv20], n_bins=N)
res["cv_t20"]["table"] = tab20
res["cv_t20"]["error_ratio_C20_all_configs"] = tab20["error_ratio"][20]
print(f"t=20: error ratio on all {N} configurations {tab20['error_ratio'][20]:.2f}, held-out sigma ratio "
      f"{res['cv_t20']['ratio_held_out']:.2f}, {t_single:.0f} s", flush=True)
print("fit raw:", tab20["raw"]["fit"], "\nfit CV(t=20):", tab20["cv"]["fit"], flush=True)

# -- transfer training over all t ---------------------------------------------------
t0 = time.perf_counter()
ratios = {}


def done(t, cv, h):
    ratios[t] = p4.variance_ratio(cv, held)
    print(f"  t={t:2d}: held-out sigma ratio {ratios[t]:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)


cvs = [cv20] + p4.transfer_train(action, train, list(range(19, -1, -1)), network=cv20.network, n_epochs_first=args.epochs_transfer,
                                 n_epochs=args.epochs_transfer, key=jax.random.PRNGKey(6), callback=done, **kw)
t_transfer = time.perf_counter() - t0
tag = "_reflect" if args.reflect else ""
p4.save_control_variates(work / f"cvs_all_t{tag}.npz", cvs, hidden=(16,))
tab = p4.correlator_table(phi, cvs, n_bins=N)
res["cv_all_t"] = {"table": tab, "held_out_ratio": ratios, "train_s": t_transfer}
print("fit CV(all t):", tab["cv"]["fit"], flush=True)
print("error ratios:", np.round(tab["error_ratio"], 1), flush=True)
OUT = pathlib.Path(args.out_dir)
IMG = pathlib.Path(args.img_dir or args.out_dir)
for d in (OUT, IMG):
    d.mkdir(parents=True, exist_ok=True)
p4.plot_correlators(tab, IMG / f"phi4_fig3{tag}.png")
(OUT / f"results_40x10{tag}.json").write_text(json.dumps(res, indent=1, default=float))
