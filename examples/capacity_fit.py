"""Can this ansatz represent the ground state? Fit it to the exact ground state by
enumeration (small spin systems only), then report the exact energy of the fit.

    python examples/capacity_fit.py runs/vit_b1d16 --steps 2000 --lr 1e-3

Builds the run's config, starts from its last checkpoint (or from the fresh
ansatz with `--fresh`), and minimises the infidelity
`1 - |<psi0|psi>|^2 / <psi|psi>` over all states of the space with Adam (optax).
No Monte Carlo and no Hamiltonian in the loss: the result separates what the
architecture can express from what VMC optimisation finds. If the fitted model's
energy is far below the VMC plateau, the optimisation is the bottleneck; if not,
the model is. Progress: infidelity every 100 steps, exact energy and energy
variance every 500. This is a diagnostic, not a training method (it needs the
exact answer).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import nqs_core
from nqs_spins import ground_state, to_sparse

from exact_variational_energy import variational_energy


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--fresh", action="store_true", help="start from the config's initial parameters")
    p.add_argument("--save", default=None, help="write the fitted parameters here (equinox .eqx)")
    a = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    calc = nqs_core.build(nqs_core.load_config(f"{a.run_dir}/config.toml"), exact=False)
    ansatz, system = calc.components["ansatz"], calc.components["system"]
    params, static = nqs_core.parameters(ansatz)
    if not a.fresh:
        params = nqs_core.load_parameters(a.run_dir, params)
    states = jnp.asarray(calc.components["space"].all_states())
    e0, psi0 = ground_state(system)
    psi0 = jnp.asarray(psi0)
    H = to_sparse(system)

    def infidelity(params):
        lp = jax.vmap(eqx.combine(params, static))(states)
        shift = jax.lax.stop_gradient(jnp.max(jnp.real(lp)))
        psi = jnp.exp(lp - shift)
        overlap = jnp.abs(jnp.vdot(psi0.astype(psi.dtype), psi)) ** 2
        return 1.0 - overlap / jnp.real(jnp.vdot(psi, psi))

    opt = optax.adam(optax.cosine_decay_schedule(a.lr, a.steps))
    opt_state = opt.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        loss, g = jax.value_and_grad(infidelity)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def report(params, i):
        e, var = variational_energy(eqx.combine(params, static), states, H)
        print(f"step {i:5d}  E = {e:.6f}  sigma^2 = {var:.4f}  relative error {abs((e - e0) / e0):.2e}", flush=True)

    print(f"exact ground state E0 = {e0:.9f}, {states.shape[0]} states, "
          f"{nqs_core.n_real_parameters(ansatz)} real parameters", flush=True)
    report(params, 0)
    t0 = time.perf_counter()
    for i in range(1, a.steps + 1):
        params, opt_state, loss = step(params, opt_state)
        if i % 100 == 0:
            print(f"step {i:5d}  infidelity {float(loss):.3e}  t = {time.perf_counter() - t0:.0f}s", flush=True)
        if i % 500 == 0 or i == a.steps:
            report(params, i)
            if a.save:
                eqx.tree_serialise_leaves(a.save, params)


if __name__ == "__main__":
    main()
