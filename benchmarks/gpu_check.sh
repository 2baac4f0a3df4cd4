#!/usr/bin/env bash
# GPU check (issue 18): a bounded run of the 6x6 J1-J2 ViT paper configuration
# (examples/j1j2_6x6_vit_gpu.toml) that prints s/step, peak device memory and the
# energy, within 8 minutes including compilation (a hard `timeout`).
#
#   pip install -e ".[cuda]"            # jax with CUDA 12
#   bash benchmarks/gpu_check.sh        # default: 10 steps of the full configuration
#
# Environment overrides (also how the script is checked on a CPU-only machine):
#   NQS_GPU_CHECK_STEPS   steps to run (default 10; the first one compiles)
#   NQS_GPU_CHECK_LIMIT   wall-clock limit in seconds (default 480)
#   extra arguments       passed on as config overrides, e.g. on a CPU:
#     NQS_GPU_CHECK_STEPS=2 bash benchmarks/gpu_check.sh sampler.n_samples=64 \
#         sampler.n_chains=64 ansatz.n_layers=1 ansatz.d_model=12 ansatz.n_heads=2 estimator.chunk_size=64
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${NQS_GPU_CHECK_STEPS:-10}"
LIMIT="${NQS_GPU_CHECK_LIMIT:-480}"
exec timeout "$LIMIT" python - "$STEPS" "$@" <<'PY'
import sys, time

import jax
import numpy as np

import nqs_core

steps, overrides = int(sys.argv[1]), sys.argv[2:]
cfg = nqs_core.apply_overrides(nqs_core.load_config("examples/j1j2_6x6_vit_gpu.toml"), list(overrides))
t0 = time.perf_counter()
calc = nqs_core.build(cfg, exact=False)
driver = calc.driver
state = driver.init(jax.random.PRNGKey(calc.run["seed"]))
print(f"devices: {jax.devices()}  parameters: {driver.n_parameters}  build {time.perf_counter() - t0:.1f} s", flush=True)
times, energy = [], None
for i in range(steps):
    state, record = driver.step(state)
    times.append(record["step_time"])
    energy = record["energy"]
    print(f"step {i}: {record['step_time']:.3f} s  E = {energy:.6f} +- {record['energy_error']:.6f}", flush=True)
dev = jax.devices()[0]
stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
peak = (stats or {}).get("peak_bytes_in_use")
steady = np.median(times[1:]) if len(times) > 1 else times[0]
print(f"s/step (median after the first, compiling, step): {steady:.3f}")
print(f"first step incl. compilation: {times[0]:.1f} s")
print("peak device memory: " + (f"{peak / 2**30:.2f} GiB" if peak else "not reported by this device"))
n = cfg["lattice"]["length"] ** 2
print(f"energy: {energy:.6f}  per site {energy / n:.6f}  (exact E0/N = -0.503810)")
print(f"total: {time.perf_counter() - t0:.1f} s")
PY
