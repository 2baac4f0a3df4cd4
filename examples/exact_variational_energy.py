"""Exact variational energy of a trained run, raw and symmetry-projected, by
enumerating the configuration space (small spin systems only).

    python examples/exact_variational_energy.py runs/vit_b1d16 [--exact -8.457923352] [--raw]

Builds the run's config, loads its last checkpoint, evaluates psi on every state of
the space, and prints <psi|H|psi>/<psi|psi> and the energy variance for the raw ansatz and for
`Symmetrized(ansatz, lattice, symmetries, spin_parity)` over a few groups (square
lattices). No Monte Carlo: the numbers have no statistical error.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nqs_core
from nqs_networks import Symmetrized
from nqs_spins import to_sparse


@eqx.filter_jit
def _log_psi(model, xs):
    return jax.vmap(model)(xs)


def variational_energy(model, states, H, chunk=512):
    """`(E, sigma^2)`: `<H>` and `<H^2> - <H>^2` of `model`, exactly."""
    lp = np.concatenate([np.asarray(_log_psi(model, states[i : i + chunk])) for i in range(0, len(states), chunk)])
    psi = np.exp(lp - lp.real.max())
    norm = np.real(np.vdot(psi, psi))
    h_psi = H @ psi
    e = float(np.real(np.vdot(psi, h_psi)) / norm)
    return e, float(np.real(np.vdot(h_psi, h_psi)) / norm - e * e)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--exact", type=float, default=None, help="ground-state energy for relative errors")
    p.add_argument("--raw", action="store_true", help="only the raw ansatz (no projections)")
    a = p.parse_args()
    calc = nqs_core.build(nqs_core.load_config(f"{a.run_dir}/config.toml"))
    ansatz, system = calc.components["ansatz"], calc.components["system"]
    like, static = nqs_core.parameters(ansatz)
    model = eqx.combine(nqs_core.load_parameters(a.run_dir, like), static)
    states = jnp.asarray(calc.components["space"].all_states())
    H = to_sparse(system)
    lattice = calc.components["lattice"]
    variants = [("raw", model)]
    for group, parity in () if a.raw else (("none", 1), ("c4v", 0), ("c4v", 1), ("c4v", -1)):
        variants.append((f"{group}, spin parity {parity:+d}", Symmetrized(model, lattice, symmetries=group, spin_parity=parity)))
    for name, m in variants:
        e, var = variational_energy(m, states, H)
        rel = "" if a.exact is None else f"  relative error {abs((e - a.exact) / a.exact):.2e}"
        print(f"{name:24s} E = {e:.6f}  sigma^2 = {var:.4f}{rel}", flush=True)


if __name__ == "__main__":
    main()
