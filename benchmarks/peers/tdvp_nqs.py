"""nqs's side of `benchmarks/tdvp_step.py`: one output interval of the `tdvp` driver.

Run with the nqs environment (started by `tdvp_step.py`, PYTHONPATH on this
checkout):

    python benchmarks/peers/tdvp_nqs.py PROBLEM.json

The problem is built from a config dict by `nqs_core.build` (`[driver] name =
"tdvp"`, real time, `[driver.integrator] name = "rk4"`, `dt` = `t_out`, so one
driver step is one RK4 step: four right-hand sides, each on fresh samples;
`[driver.solver] name = "sr"` with the problem's diagonal shift); the state
starts from the shared parameters (`driver.init(key, params)`); one timed step
is `driver.step(state)` (it also records the energy at the start of the step).

With `"proxy": true` in the problem (before the TDVP driver exists), a timed
step is four steps of the VMC driver with the same sampler and dense SR (one
VMC step: samples, local energies, log-derivatives, the P x P solve, as one
right-hand side of TDVP), a stand-in, not the TDVP driver.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _protocol import read_problem, serve, setup_env  # noqa: E402

setup_env()

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import nqs_core  # noqa: E402


def config(pb):
    L = pb["L"]
    sol = pb["solver"]
    cfg = {
        "run": {"seed": pb["seed"]},
        "lattice": {"name": "chain", "length": L, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "J": pb["J"], "h": pb["h"]},
        "ansatz": {"name": "rbm", "alpha": pb["alpha"], "param_dtype": "complex128", "use_visible_bias": False},
        "sampler": {
            "name": "metropolis_local",
            "n_samples": pb["n_samples"],
            "n_chains": pb["n_chains"],
            "n_discard_per_chain": pb["n_discard"],
            "sweep_size": pb["sweep_size"],
        },
    }
    if sol["kind"] != "cholesky":
        raise SystemExit(f"the nqs worker has no solver {sol['kind']!r} yet")
    if pb.get("proxy"):
        cfg["preconditioner"] = {"name": "sr", "diag_shift": sol["diag_shift"]}
        cfg["optimizer"] = {"name": "sgd", "learning_rate": pb["dt"]}
        cfg["run"]["n_steps"] = 4 * (pb["warmup"] + pb["n_timed"] + 2)
    else:
        n_out = pb["warmup"] + pb["n_timed"] + 3
        cfg["driver"] = {
            "name": "tdvp",
            "time": "real",
            "t_end": round(pb["dt"] * (n_out - 1), 12),
            "t_out": pb["dt"],
            "integrator": {"name": "rk4", "dt": pb["dt"]},
            "solver": {"name": "sr", "diag_shift": sol["diag_shift"]},
            # the real P x P form instead of the complex one (the `nqs-real` worker of tdvp_step.py)
            "holomorphic": os.environ.get("NQS_TDVP_REAL_FORM") != "1",
        }
    return cfg


def profile_parts(driver, state, repeats=3):
    """Wall seconds (median of `repeats`) of the two parts of a driver step: the
    record at `t_k` (`nqs_core.measure`: its own sampling and local energies) and
    the jitted RK4 interval (four right-hand sides); private driver attributes,
    read only (this is a profile, not an API)."""
    import statistics
    import time

    from nqs_core import measure, real_ravel

    t = float(state.t)

    def record():
        energy, _, _ = measure(driver._probe(t), state, {}, 1)
        return energy.mean

    def interval():
        theta = real_ravel(state.params)[0]
        return driver._interval(theta, state.t, state.dt, state.sampler_state, jnp.asarray(t + driver.integrator.dt, jnp.float64))[0]

    # the parts of one right-hand side, each compiled alone
    rhs = driver._rhs
    model = eqx.combine(state.params, rhs.static)
    sample = eqx.filter_jit(lambda m, ss: rhs.sampler.sample(nqs_core.BornDistribution(m), ss)[0])
    estimate = eqx.filter_jit(lambda m, x: rhs.estimator(m, rhs.system, x))
    ng_data = eqx.filter_jit(lambda m, x, e: rhs.estimator.natural_gradient_data(m, x, e))
    if rhs.layout is None:  # the real P x P form
        solve = eqx.filter_jit(lambda y, eps: rhs.solver.solve(y, eps * (-0.5j))[0])
    else:  # a holomorphic ansatz: the complex P/2 x P/2 form (the driver's default)
        solve = eqx.filter_jit(lambda y, eps: rhs.solver.solve_holomorphic(rhs.layout.complex_columns(y), eps * (-0.5j))[0])
    whole = eqx.filter_jit(lambda th, ss: rhs(jnp.asarray(t, jnp.float64), th, ss)[0])
    samples = sample(model, state.sampler_state)
    est = estimate(model, samples)
    y, eps = ng_data(model, samples, est)
    theta0 = real_ravel(state.params)[0]
    parts = (
        ("record_at_t_k", record),
        ("rk4_interval", interval),
        ("rhs_whole", lambda: whole(theta0, state.sampler_state)),
        ("rhs_sample", lambda: sample(model, state.sampler_state)),
        ("rhs_local_energies", lambda: estimate(model, samples).stats.mean),
        ("rhs_log_derivatives", lambda: ng_data(model, samples, est)),
        ("rhs_solve", lambda: solve(y, eps)),
    )
    out = {}
    for name, fn in parts:
        jax.block_until_ready(fn())
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            walls.append(time.perf_counter() - t0)
        out[name] = statistics.median(walls)
    return out


def main():
    pb, arr = read_problem()
    calc = nqs_core.build(config(pb))
    driver = calc.driver
    w, b = jnp.asarray(arr["W"]), jnp.asarray(arr["b"])
    params = eqx.tree_at(lambda m: (m.weights, m.hidden_bias), driver.parameters(), (w, b))
    model = eqx.tree_at(lambda m: (m.weights, m.hidden_bias), calc["ansatz"], (w, b))
    system = calc["system"]
    xs = jnp.asarray(arr["check_x"], dtype=system.space.dtype)
    log_psi = np.asarray(jax.vmap(model)(xs))
    eloc = np.asarray(system.local_energies(model, xs))
    box = {"state": driver.init(jax.random.PRNGKey(pb["seed"]), params)}
    per_step = 4 if pb.get("proxy") else 1

    def step():
        s = box["state"]
        for _ in range(per_step):
            s, info = driver.step(s)
        jax.block_until_ready(s.params)
        box["state"] = s
        out = {"energy": float(np.real(info["energy"])), "energy_error": float(info.get("energy_error", np.nan))}
        if "t" in info:
            out["t"] = float(info["t"])
        return out

    for _ in range(pb["warmup"]):
        step()

    def final():
        stats, box["state"] = driver.evaluate(box["state"])
        out = {"energy": float(np.real(stats.mean)), "energy_error": float(stats.error_of_mean)}
        if not pb.get("proxy"):
            try:
                out["parts_wall"] = profile_parts(driver, box["state"])
            except Exception as e:  # a profile through private attributes: never lose the run for it
                out["parts_wall"] = f"failed: {e!r}"
        return out

    import importlib.metadata as md

    serve(
        step,
        final,
        {
            "library": "nqs",
            "versions": {"nqs_core": nqs_core.__file__, "jax": jax.__version__, "equinox": md.version("equinox"), "numpy": np.__version__},
            "n_real_params": int(nqs_core.real_ravel(params)[0].size),
            "check": {
                "log_psi_re": np.real(log_psi).tolist(),
                "log_psi_im": np.imag(log_psi).tolist(),
                "eloc_re": np.real(eloc).tolist(),
                "eloc_im": np.imag(eloc).tolist(),
            },
            "setup": "proxy: 4 x VMC + SR (cholesky)" if pb.get("proxy") else f"tdvp driver, rk4, sr (cholesky), holomorphic={driver.holomorphic}",
        },
    )


if __name__ == "__main__":
    main()
