"""Profile a VMC step by parts: where the time and the floating-point work go.

Each part of `VMC`'s step (sampling, local energies, log-derivatives, the
preconditioner's solve, the optimizer update) is jitted on its own and timed
with `block_until_ready`, next to the driver's own jitted step. Nothing here
touches the driver's step function or its state, so profiling does not change
a run's numbers. The FLOPs of every part come from XLA's cost analysis, and
the achieved fraction of the machine's float64 matrix-product throughput
(measured here with one square `float64` product) says how close a part runs
to what the machine can do.
"""

from __future__ import annotations

import json
import statistics as _stats
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._distributed import is_root
from ._estimator import scheduled
from ._io import write_text
from ._preconditioner import StepContext
from ._sampler import BornDistribution

#: The parts, in the order of a step.
PARTS = ("sample", "local_energies", "log_derivatives", "solve", "update")


def _median_time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile / warm up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return _stats.median(out)


def xla_flops(fn, *args) -> float:
    """FLOPs of `eqx.filter_jit(fn)(*args)` from XLA's cost analysis (0 when unknown)."""
    dynamic, static = eqx.partition(args, eqx.is_array)
    compiled = jax.jit(lambda d: fn(*eqx.combine(d, static))).lower(dynamic).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))


def matmul_flops_per_second(n: int = 1024, repeats: int = 5) -> float:
    """Measured float64 throughput of one `n x n` by `n x n` matrix product (FLOP/s)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float64)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float64)
    t = _median_time(jax.jit(jnp.matmul), (a, b), repeats)
    return 2.0 * n**3 / t


def _parts(driver):
    """The jitted functions of the parts, with the arguments they take."""
    static, system, sampler = driver.static, driver.system, driver.sampler
    precond, optimizer = driver.preconditioner, driver.optimizer

    def estimator_at(step):
        return scheduled(driver.estimator, step)[0]

    def sample(params, sampler_state):
        return sampler.sample(BornDistribution(eqx.combine(params, static)), sampler_state)[0]

    def local_energies(params, samples, step):
        return estimator_at(step)(eqx.combine(params, static), system, samples)

    def log_derivatives(params, samples, estimate, step):
        return estimator_at(step).natural_gradient_data(eqx.combine(params, static), samples, estimate)

    def precondition(params, samples, estimate, step, precond_state):
        return precond(StepContext(system, eqx.combine(params, static), samples, estimate, estimator_at(step)), precond_state)[0]

    def update(params, direction, opt_state):
        updates, opt_state = optimizer.update(direction, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return sample, local_energies, log_derivatives, precondition, update


def profile_step(driver, state, repeats: int = 3, flops: bool = True) -> dict[str, Any]:
    """Median seconds (over `repeats`) of every part of one step of `driver` at `state`.

    **Arguments:**

    - `driver`: a `VMC` driver.
    - `state`: its `VMCState` (not modified; the driver's own step is timed on it too).
    - `repeats`: timed calls per part (after one warm-up call).
    - `flops`: also report XLA's FLOP counts and the achieved fraction of the
      measured float64 matmul throughput.

    **Returns:** a dict with `seconds` (per part, plus `step`: the driver's
    jitted step, and `other`: the step minus the sum of the parts, which is
    what fusing the parts saves or costs), and with `flops=True` also `flops`,
    `flop_rate` (FLOP/s per part), `matmul_peak` (FLOP/s) and `fraction_of_peak`.
    `solve` is the preconditioner minus the log-derivatives it computes.
    """
    sample, local_energies, log_derivatives, precondition, update = (eqx.filter_jit(f) for f in _parts(driver))
    params, step = state.params, state.step
    samples = sample(params, state.sampler_state)
    estimate = local_energies(params, samples, step)
    direction = precondition(params, samples, estimate, step, state.precond_state)
    args = {
        "sample": (sample, (params, state.sampler_state)),
        "local_energies": (local_energies, (params, samples, step)),
        "log_derivatives": (log_derivatives, (params, samples, estimate, step)),
        "precondition": (precondition, (params, samples, estimate, step, state.precond_state)),
        "update": (update, (params, direction, state.opt_state)),
    }
    sec = {name: _median_time(fn, a, repeats) for name, (fn, a) in args.items()}
    sec["solve"] = max(sec.pop("precondition") - sec["log_derivatives"], 0.0)
    one = jnp.asarray(1.0, jnp.float64)  # the step's update scale (< 1 only when the driver retries)
    sec["step"] = _median_time(driver._step, (state, one), repeats)
    sec["other"] = sec["step"] - sum(sec[p] for p in PARTS)
    out: dict[str, Any] = {"seconds": {p: sec[p] for p in (*PARTS, "other", "step")}}
    if not flops:
        return out
    fl = {name: xla_flops(fn, *a) for name, (fn, a) in args.items()}
    fl["solve"] = max(fl.pop("precondition") - fl["log_derivatives"], 0.0)
    fl["step"] = xla_flops(driver._step, state, one)
    peak = matmul_flops_per_second()
    rate = {p: fl[p] / sec[p] if sec[p] > 0 else 0.0 for p in (*PARTS, "step")}
    out.update(
        flops={p: fl[p] for p in (*PARTS, "step")},
        flop_rate=rate,
        matmul_peak=peak,
        fraction_of_peak={p: r / peak for p, r in rate.items()},
    )
    return out


def format_profile(profile: dict[str, Any]) -> str:
    """The profile as a small text table (one line per part)."""
    sec = profile["seconds"]
    total = sec["step"]
    lines = [f"{'part':16s} {'s/step':>10s} {'share':>7s}" + (f" {'GFLOP':>9s} {'of peak':>8s}" if "flops" in profile else "")]
    for p in (*PARTS, "other", "step"):
        line = f"{p:16s} {sec[p]:10.4f} {100 * sec[p] / total if total else 0:6.1f}%"
        if "flops" in profile and p in profile["flops"]:
            # a part under a millisecond (or a difference of two) is timing noise
            frac = f"{100 * profile['fraction_of_peak'][p]:7.1f}%" if sec[p] >= 1e-3 else f"{'-':>8s}"
            line += f" {profile['flops'][p] / 1e9:9.3f} {frac}"
        lines.append(line)
    if "matmul_peak" in profile:
        lines.append(f"float64 matmul throughput measured here: {profile['matmul_peak'] / 1e9:.1f} GFLOP/s")
    return "\n".join(lines)


def profile_run(result, repeats: int = 3) -> str:
    """Profile one step of a finished `nqs_core.run` at its final state, write
    `profile.json` into its run directory (rank 0) and return the table
    (what `nqs run --profile` prints)."""
    profile = profile_step(result.calculation.driver, result.state, repeats=repeats)
    if is_root():
        write_text(result.run_dir / "profile.json", json.dumps(profile, indent=1))
    return format_profile(profile)
