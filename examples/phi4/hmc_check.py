"""High-statistics HMC check against the reference correlator (40x10, m^2 = 0.01, lambda = 0.1).

Usage: python examples/phi4/hmc_check.py [n_configurations] [out_dir]  (default 102400; about 5 min on 2 busy cores)
Writes results_hmc_check.json under out_dir (default runs/phi4/).
"""

import json
import pathlib
import sys
import time

import numpy as np

import nqs_phi4 as p4

REFERENCE = {  # tests/data/README.md: t -> (C, err)
    0: (0.25650, 0.00083), 1: (0.21139, 0.00082), 2: (0.17437, 0.00081), 4: (0.11889, 0.00078),
    10: (0.03864, 0.00085), 20: (0.01076, 0.00104),
}
REF_MEFF = {1: (0.1954, 0.0007), 2: (0.1937, 0.0008), 4: (0.1935, 0.0008), 10: (0.187, 0.004)}

n = int(sys.argv[1]) if len(sys.argv) > 1 else 102400
t0 = time.perf_counter()
phi, info = p4.generate_configurations(40, 10, 0.01, 0.1, n, seed=2024, n_chains=128, n_leapfrog=20, n_skip=5, n_thermalize=500)
print(info)
o = np.asarray(p4.correlator(phi))
c, err, _ = p4.jackknife(o, n_bins=128)  # one bin per chain
meff, meff_err, _ = p4.jackknife(o, p4.effective_mass, n_bins=128)
rows = []
for t, (ref, ref_err) in REFERENCE.items():
    pull = (c[t] - ref) / np.hypot(err[t], ref_err)
    rows.append({"t": t, "C": c[t], "err": err[t], "ref": ref, "ref_err": ref_err, "pull": pull})
    print(f"C({t:2d}) = {c[t]:.5f}({err[t]:.5f})  reference {ref:.5f}({ref_err:.5f})  pull {pull:+.2f}")
for t, (ref, ref_err) in REF_MEFF.items():
    m, e = meff[t - 1], meff_err[t - 1]
    print(f"m_eff({t:2d}) = {m:.4f}({e:.4f})  reference {ref:.4f}({ref_err:.4f})  pull {(m - ref) / np.hypot(e, ref_err):+.2f}")
cj, ej, cov = p4.jackknife(o[:, :21], n_bins=128)
fit = p4.fit_correlator(np.arange(1, 21), cj[1:21], cov[1:21, 1:21], 40)
print("fit t = 1..20:", fit)
out = {
    "n_configurations": n, "sampler_info": info, "correlator": rows,
    "m_eff": {t: [float(meff[t - 1]), float(meff_err[t - 1])] for t in REF_MEFF}, "fit": fit.to_dict(),
    "wall_s": time.perf_counter() - t0,
}
OUT = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else pathlib.Path(__file__).resolve().parents[2] / "runs" / "phi4"
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "results_hmc_check.json").write_text(json.dumps(out, indent=1, default=float))
