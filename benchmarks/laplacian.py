"""Cost of the exact local energy of a continuum ansatz: forward-over-reverse
Laplacian (what `AbstractContinuumHamiltonian.local_energy` does: one JVP of the
gradient per coordinate, keeping only the diagonal) against the trace of the full
Hessian (`jax.hessian` = forward-over-reverse for all A x A entries, and
reverse-over-reverse `jacrev(jacrev)`).

Usage: python benchmarks/laplacian.py [--sizes 6 12] [--m 1024] [--json results_laplacian.json]

Ansatz: `EquivariantSlater` (hidden 32, 2 layers, 1 determinant, HO initialisation
with a random network read-out of scale 0.3, so the network contributes), system
`TrappedFermions1D(V0=-5)`, a batch of M configurations `x ~ N(0, A/2)`, jitted;
the best of `--repeats` timings after compilation. Also checks that the methods
agree, relative to the size of the kinetic terms `|lap log psi| + |grad log psi|^2`
(near a node both are huge and cancel in `E_loc`, so `|E_loc|` is the wrong scale).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import nqs_core
from nqs_continuum import EquivariantSlater, Particles1D, TrappedFermions1D


def hessian_local_energy(system, log_psi, x, hessian=jax.hessian):
    lap = jnp.trace(hessian(log_psi)(x))
    g = jax.grad(log_psi)(x)
    return -0.5 * (lap + g @ g) + system.potential(x)


def best_time(f, xs, repeats):
    jax.block_until_ready(f(xs))  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(xs))
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[6, 12])
    p.add_argument("--m", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for a in args.sizes:
        space = Particles1D(a)
        model = EquivariantSlater(space, hidden=args.hidden, n_layers=2, key=jax.random.PRNGKey(0))
        model = eqx.tree_at(lambda m: m.orb_w, model, 0.3 * jax.random.normal(jax.random.PRNGKey(5), model.orb_w.shape))
        system = TrappedFermions1D(space, V0=-5.0)
        xs = jax.random.normal(jax.random.PRNGKey(1), (args.m, a)) * jnp.sqrt(0.5 * a)
        methods = {
            "forward_over_reverse_diag": jax.jit(jax.vmap(lambda x: system.local_energy(model, x))),
            "jax_hessian_trace": jax.jit(jax.vmap(lambda x: hessian_local_energy(system, model, x))),
            "jacrev_jacrev_trace": jax.jit(
                jax.vmap(lambda x: hessian_local_energy(system, model, x, lambda f: jax.jacrev(jax.jacrev(f))))
            ),
            "log_psi_only": jax.jit(jax.vmap(model)),
        }
        ref = methods["jax_hessian_trace"](xs)

        def kinetic_scale(x):
            g = jax.grad(model)(x)
            return jnp.abs(jnp.trace(jax.hessian(model)(x))) + g @ g

        scale = jnp.maximum(1.0, jax.jit(jax.vmap(kinetic_scale))(xs))
        row = {"A": a, "M": args.m, "hidden": args.hidden, "n_parameters": nqs_core.n_real_parameters(model)}
        for name, f in methods.items():
            if name != "log_psi_only":
                diff = float(jnp.max(jnp.abs(f(xs) - ref) / scale))
                row[f"max_rel_diff_{name}"] = diff
            row[f"seconds_{name}"] = best_time(f, xs, args.repeats)
        row["speedup_vs_jax_hessian"] = row["seconds_jax_hessian_trace"] / row["seconds_forward_over_reverse_diag"]
        row["speedup_vs_jacrev_jacrev"] = row["seconds_jacrev_jacrev_trace"] / row["seconds_forward_over_reverse_diag"]
        row["cost_in_log_psi_evaluations"] = row["seconds_forward_over_reverse_diag"] / row["seconds_log_psi_only"]
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    if args.json:
        out = {
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "backend": jax.default_backend(),
            "jax": jax.__version__,
            "rows": rows,
        }
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
