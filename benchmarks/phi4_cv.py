"""Benchmark of the phi^4 neural control variates (Bedaque and Oh 2024): HMC cost per decorrelated
configuration, CV training time per epoch, and the break-even analysis of Sec. IV
(cost of training a control variate vs cost of generating the configurations that
would give the same error reduction).

Usage: python benchmarks/phi4_cv.py   (writes benchmarks/results_phi4_cv.json; ~2 min idle)
Uses examples/phi4/results_40x10.json (the measured error reductions) when present.
"""

import json
import os
import pathlib
import platform
import time

import jax
import numpy as np

import nqs_phi4 as p4

ROOT = pathlib.Path(__file__).resolve().parents[1]
L0, L1, M2, LAM = 40, 10, 0.01, 0.1
out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "lattice": [L0, L1]}

# -- HMC: cost per decorrelated configuration --------------------------------------
n_chains, n_skip, n_leap, n = 50, 20, 20, 1000
p4.generate_configurations(L0, L1, M2, LAM, n_chains * 2, seed=0, n_chains=n_chains, n_skip=n_skip, n_leapfrog=n_leap, n_thermalize=10)  # compile
t0 = time.perf_counter()
phi, info = p4.generate_configurations(L0, L1, M2, LAM, n, seed=1, n_chains=n_chains, n_skip=n_skip, n_leapfrog=n_leap, n_thermalize=300)
wall = time.perf_counter() - t0
n_traj = n_chains * 300 + n * n_skip
out["hmc"] = {
    "n_chains": n_chains, "n_leapfrog": n_leap, "n_skip": n_skip, "acceptance": info["acceptance"], "step_size": info["step_size"],
    "tau_int_O20_configs": info["tau_corr_C_half"], "tau_int_magnetisation_configs": info["tau_magnetisation"],
    "wall_s": wall, "s_per_trajectory": wall / n_traj, "s_per_config": wall / n,
}
print("HMC", out["hmc"], flush=True)

# -- CV training: time per epoch ------------------------------------------------------
action = p4.Phi4Action(L0=L0, L1=L1, m2=M2, lam=LAM)
train = phi
out["training"] = {}
for hidden in [(), (16,)]:
    for bs in [1, 4]:
        cv = p4.ControlVariate(action, p4.CVNetwork(L0, L1, hidden=hidden, key=jax.random.PRNGKey(0)), 20)
        p4.train_control_variate(cv, train, n_epochs=1, batch_size=bs, learning_rate=1e-5)  # compile
        _, h = p4.train_control_variate(cv, train, n_epochs=3, batch_size=bs, learning_rate=1e-5)
        s = (h[-1]["time_s"] - h[0]["time_s"]) / 2
        out["training"][f"hidden={list(hidden)},batch={bs}"] = {"s_per_epoch": s, "s_per_step": s / (len(train) // bs)}
        print(hidden, bs, s, flush=True)
cv = p4.ControlVariate(action, p4.CVNetwork(L0, L1, hidden=(16,), key=jax.random.PRNGKey(0)), 20)
p4.fit_output_layer(cv, train, 1e-3)
t0 = time.perf_counter()
p4.fit_output_layer(cv, train, 1e-3)
out["fit_output_layer_s"] = time.perf_counter() - t0
t0 = time.perf_counter()
np.asarray(cv.improved(phi))
out["evaluate_cv_s_per_config"] = (time.perf_counter() - t0) / len(phi)

# -- break-even -------------------------------------------------------------------------
for tag in ("", "_reflect"):
    res_path = ROOT / "examples" / "phi4" / f"results_40x10{tag}.json"
    if not res_path.exists():
        continue
    res = json.loads(res_path.read_text())
    name = "paper_network" if not tag else "reflect_network"
    r20 = res["cv_t20"]["error_ratio_C20_all_configs"]
    n_cfg = 2000
    extra = n_cfg * (r20**2 - 1)
    cost_cfg = extra * out["hmc"]["s_per_config"]
    cost_cv = res["cv_t20"]["train_s"]
    out[f"break_even_t20_{name}"] = {
        "error_reduction": r20, "equivalent_configurations": n_cfg * r20**2, "extra_configurations": extra,
        "hmc_cost_of_extra_s": cost_cfg, "cv_training_cost_s": cost_cv,
        "break_even_cost_per_config_s": cost_cv / extra,
        "verdict": "more statistics is cheaper" if cost_cfg < cost_cv else "control variate is cheaper",
    }
    fit_raw = res["cv_all_t"]["table"]["raw"]["fit"]
    fit_cv = res["cv_all_t"]["table"]["cv"]["fit"]
    rm = fit_raw["m_err"] / fit_cv["m_err"]
    extra_m = n_cfg * (rm**2 - 1)
    cost_all = res["cv_t20"]["train_s"] + res["cv_all_t"]["train_s"]
    out[f"break_even_mass_all_t_{name}"] = {
        "mass_error_reduction": rm, "extra_configurations": extra_m, "hmc_cost_of_extra_s": extra_m * out["hmc"]["s_per_config"],
        "cv_training_cost_s": cost_all, "break_even_cost_per_config_s": cost_all / max(extra_m, 1.0),
        "verdict": "more statistics is cheaper" if extra_m * out["hmc"]["s_per_config"] < cost_all else "control variate is cheaper",
    }
out["machine"]["loadavg_end"] = os.getloadavg()
(ROOT / "benchmarks" / "results_phi4_cv.json").write_text(json.dumps(out, indent=1, default=float))
print(json.dumps(out, indent=1, default=float))
