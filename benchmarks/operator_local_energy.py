"""Local energies of the generic operator vs the hand-written J1-J2 Hamiltonian.

    python benchmarks/operator_local_energy.py [--L 4] [--n-samples 1024] [--rounds 15]

Same problem, same process, same samples: J1-J2 on the L x L periodic square
lattice (J2 = 0.5, Marshall sign, S^z = 0), an RBM (alpha = 2, complex) and
`n_samples` random configurations. The hand-written `J1J2` (a gather of bond
permutations) against the same Hamiltonian written in the operator language
and compiled to a `SpinOperator` (`J1J2(...).to_operator().on(space)`, the path
of the TOML `spin_model`). Three functions, each jitted:

- `local_energies`: the batched, compacted kernel the energy estimator uses;
- `padded`: `vmap(local_energy)` (log psi on every connected element);
- `connected`: `vmap(connected)` alone (the operator's own cost).

Rounds alternate which implementation runs first; the table reports the
median over rounds of each and the ratio generic / hand-written. Writes
benchmarks/results_operator_local_energy.json (with --json).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import nqs_core  # noqa: F401  (float64)
from nqs_networks import RBM
from nqs_spins import J1J2, SpinHalf, Square

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _once(fn, xs) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(xs))
    return time.perf_counter() - t0


def functions(system, model):
    return {
        "local_energies": jax.jit(lambda xs: system.local_energies(model, xs)),
        "padded": jax.jit(jax.vmap(lambda x: system.local_energy(model, x))),
        "connected": jax.jit(jax.vmap(system.connected)),
    }


def main(L=4, n_samples=1024, rounds=15, repeats=5, alpha=2, out=None):
    lattice = Square(L)
    space = SpinHalf(lattice.n_sites, total_sz=0.0)
    hand = J1J2(space, lattice, J1=1.0, J2=0.5, marshall_sign=True)
    generic = hand.to_operator().on(space)
    model = RBM(space, alpha=alpha, param_dtype="complex128", init_std=0.1, key=jax.random.PRNGKey(0))
    xs = space.random_state(jax.random.PRNGKey(1), n_samples)
    fh, fg = functions(hand, model), functions(generic, model)
    e_h = fh["local_energies"](xs)
    e_g = fg["local_energies"](xs)
    diff = float(jnp.max(jnp.abs(e_h - e_g)))
    result = {
        "device": jax.devices()[0].device_kind,
        "platform": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "L": L,
        "n_samples": n_samples,
        "rounds": rounds,
        "repeats_per_round": repeats,
        "max_conn_size_hand": hand.max_conn_size,
        "max_conn_size_generic": generic.max_conn_size,
        "max_abs_diff_local_energies": diff,
    }
    for name in fh:
        for f in (fh[name], fg[name]):
            jax.block_until_ready(f(xs))  # compile
        times = {"hand": [], "generic": []}
        for r in range(rounds):
            order = (("hand", fh), ("generic", fg)) if r % 2 == 0 else (("generic", fg), ("hand", fh))
            for label, fns in order:
                times[label].append(min(_once(fns[name], xs) for _ in range(repeats)))
        med = {k: statistics.median(v) for k, v in times.items()}
        result[name] = {
            "median_s_hand": med["hand"],
            "median_s_generic": med["generic"],
            "ratio_generic_over_hand": med["generic"] / med["hand"],
        }
    print(f"J1-J2 {L}x{L}, Sz = 0, RBM alpha={alpha} complex, {n_samples} samples; "
          f"max_conn_size hand {hand.max_conn_size}, generic {generic.max_conn_size}; "
          f"max |E_loc difference| = {diff:.1e}")
    print("| function | hand-written J1J2 ms | generic operator ms | ratio generic / hand |")
    print("|---|---|---|---|")
    for name in fh:
        r = result[name]
        print(f"| `{name}` | {1e3 * r['median_s_hand']:.2f} | {1e3 * r['median_s_generic']:.2f} | "
              f"x{r['ratio_generic_over_hand']:.3f} |")
    if out:
        pathlib.Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--L", type=int, default=4)
    p.add_argument("--n-samples", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--alpha", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results here, e.g. benchmarks/results_operator_local_energy.json")
    a = p.parse_args()
    main(a.L, a.n_samples, a.rounds, a.repeats, a.alpha, a.json)
