"""Bedaque and Oh 2024, Fig. 1: 20x20, m^2 = 0.1, lambda = 0.5 and 24, observable O(t = 10).

sigma_raw / sigma_CV on held-out configurations for a linear g0 (no hidden layer, exact
least-squares optimum of Eq. 13) and a 5x4 network (5 hidden layers of 4 arcsinh neurons,
Adam + exact output-layer refits every 5 epochs).

The recipe of the README (section 3):
    python examples/phi4/run_20x20.py --n-train 10000 --init random --schedule cosine --lr 1e-3 --epochs 60
(1e4 training + 1e3 held-out configurations at both couplings; Bedaque and Oh 2024 used 1e4 / 1e3
training configurations at lambda = 0.5 / 24). `--init linear` starts the network at the
linear optimum instead (`linear_start`, the earlier recipe).
Writes results_20x20{tag}.json and phi4_fig1{tag}.png under --out-dir (default runs/phi4/;
the png under --img-dir if given, e.g. docs/img to refresh the docs).
"""

import argparse
import json
import pathlib
import time

import jax

import nqs_phi4 as p4

ROOT = pathlib.Path(__file__).resolve().parents[2]
ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=40)
ap.add_argument("--n-train", type=int, default=1000)
ap.add_argument("--n-eval", type=int, default=1000)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--delta", type=float, default=0.0)
ap.add_argument("--amplitude", type=float, default=0.3, help="pre-activation scale of linear_start")
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--init", choices=("linear", "random"), default="linear", help="5x4 start: linear_start or the random initialisation")
ap.add_argument("--schedule", choices=("constant", "cosine"), default="constant", help="Adam learning rate: constant, or cosine decay to lr/100 over all steps")
ap.add_argument("--reflect", action="store_true", help="reflection-averaged g0 for both networks (extension)")
ap.add_argument("--lams", default="0.5,24", help="couplings, comma separated")
ap.add_argument("--tag", default="", help="suffix of the output json / png")
ap.add_argument("--workdir", default=str(ROOT / "runs" / "phi4_20x20"))
ap.add_argument("--out-dir", default=str(ROOT / "runs" / "phi4"), help="where the results json (and the plot) go")
ap.add_argument("--img-dir", default=None, help="where the plot goes (default: --out-dir)")
args = ap.parse_args()
work = pathlib.Path(args.workdir)
work.mkdir(parents=True, exist_ok=True)
L, M2, T = 20, 0.1, 10
res = {"settings": vars(args), "couplings": {}}
for lam in [float(x) for x in args.lams.split(",")]:
    t0 = time.perf_counter()
    n_total = args.n_train + args.n_eval
    cfg = work / (f"cfgs_lam{lam}.npz" if n_total == 2000 else f"cfgs_lam{lam}_n{n_total}.npz")
    if cfg.exists():
        phi, info = p4.load_configurations(cfg)
    else:
        phi, info = p4.generate_configurations(L, L, M2, lam, n_total, seed=21, n_chains=50, n_skip=20, n_leapfrog=20, n_thermalize=300)
        p4.save_configurations(cfg, phi, **info)
    train, held = phi[: args.n_train], phi[args.n_train :]
    action = p4.Phi4Action(L0=L, L1=L, m2=M2, lam=lam)
    out = {"hmc": info}
    lin = p4.linear_start(p4.ControlVariate(action, p4.CVNetwork(L, L, hidden=(), reflect=args.reflect, key=jax.random.PRNGKey(1)), T), train, args.delta)
    out["linear"] = {"ratio_held_out": p4.variance_ratio(lin, held), "ratio_train": p4.variance_ratio(lin, train)}
    cv = p4.ControlVariate(action, p4.CVNetwork(L, L, hidden=(4,) * 5, reflect=args.reflect, key=jax.random.PRNGKey(2)), T)
    if args.init == "linear":
        cv = p4.linear_start(cv, train, args.delta, amplitude=args.amplitude, key=jax.random.PRNGKey(3))
    start = p4.variance_ratio(cv, held)
    cv, hist = p4.train_control_variate(cv, train, n_epochs=args.epochs, batch_size=args.batch_size, delta=args.delta, learning_rate=args.lr, lr_decay=args.schedule,
                                        refit_every=5, phi_eval=held, eval_every=5, key=jax.random.PRNGKey(4))
    out["net_5x4"] = {"ratio_held_out": p4.variance_ratio(cv, held), "ratio_train": p4.variance_ratio(cv, train), "ratio_at_start": start,
                      "history": hist, "s_per_epoch": hist[-1]["time_s"] / max(len(hist), 1)}
    out["gain_net_over_linear_held_out"] = out["net_5x4"]["ratio_held_out"] / out["linear"]["ratio_held_out"]
    out["wall_s"] = time.perf_counter() - t0
    res["couplings"][str(lam)] = out
    print(f"lambda = {lam}: linear {out['linear']['ratio_held_out']:.2f}, 5x4 {out['net_5x4']['ratio_held_out']:.2f} "
          f"(start {start:.2f}), train: linear {out['linear']['ratio_train']:.2f} 5x4 {out['net_5x4']['ratio_train']:.2f}, {out['wall_s']:.0f} s", flush=True)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(res["couplings"]), figsize=(5 * len(res["couplings"]), 3.8), squeeze=False)
axes = axes[0]
for ax, (lam, out) in zip(axes, res["couplings"].items()):
    h = [r for r in out["net_5x4"]["history"] if "ratio" in r]
    ax.plot([r["epoch"] for r in h], [r["ratio"] for r in h], "-o", ms=3, label="5 x 4 hidden")
    ax.axhline(out["linear"]["ratio_held_out"], ls="--", color="k", label="linear (no hidden layer)")
    ax.set_title(f"20x20, m^2 = 0.1, lambda = {lam}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("sigma_raw / sigma_CV (held out)")
    ax.legend()
fig.tight_layout()
OUT = pathlib.Path(args.out_dir)
IMG = pathlib.Path(args.img_dir or args.out_dir)
for d in (OUT, IMG):
    d.mkdir(parents=True, exist_ok=True)
fig.savefig(IMG / f"phi4_fig1{args.tag}.png", dpi=120)
(OUT / f"results_20x20{args.tag}.json").write_text(json.dumps(res, indent=1, default=float))
