"""The ViT J1-J2 4x4 step and its local energies, nqs vs NetKet, in one process.

Problem: J1-J2 on the 4x4 square lattice (PBC, J2 = 0.5, Pauli units as NetKet's
`Heisenberg`, Sz = 0), Deep ViT with 1x1 patches, d = 16, h = 4, n_l = 2 (Rende
et al. 2024, Algorithm 1), 1024 samples in 256 chains (4 per chain, sweep = 16
exchange proposals on nearest-neighbour bonds, no discarded sweeps), SRt with
diag_shift 1e-3, sgd(0.01). NetKet runs the same architecture written as a flax
module (`FlaxViT` below) with the nqs parameters copied in; the script checks
that both give the same log psi and local energies before timing. NetKet's
sample-space SR is `VMC_SR(use_ntk=True)`, with `on_the_fly` False and True (it
refuses networks with both real and complex parameters, so the flax model keeps
the complex output layer as two real arrays: the same function and the same
real parameters).

Rounds alternate between the libraries (the machine is shared); medians are
reported.

    python benchmarks/vit_step.py [--rounds 3] [--steps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics as pystats
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

# LR: at 0.01 both libraries diverge within ~8 steps from this initialisation (Pauli units,
# no warm-up), and a diverged run is not a timing; 0.002 stays finite over the timed steps
L, N_SAMPLES, N_CHAINS, LR, DIAG_SHIFT = 4, 1024, 256, 0.002, 1e-3
D, H, NL = 16, 4, 2


def nqs_problem(out_scale=1.0):
    """The nqs driver, system and ViT; `out_scale` multiplies the output layer's
    weights (20 gives a less trivial state for the equality check; the timed
    runs use the plain initialisation, 1: at 20 the first SGD step sends the
    energy to NaN, and a diverging run is not a timing)."""
    import optax

    import nqs_core
    from nqs_networks import ViT
    from nqs_optim import SRt
    from nqs_spins import J1J2, MetropolisExchange, SpinHalf, Square

    lattice = Square(L)
    space = SpinHalf(n_sites=L * L, total_sz=0.0)
    system = J1J2(space, lattice, J1=1.0, J2=0.5, units="pauli")
    model = ViT(space, lattice, patch_size=1, n_layers=NL, d_model=D, n_heads=H, key=jax.random.PRNGKey(0))
    import equinox as eqx

    model = eqx.tree_at(lambda m: m.out_w, model, model.out_w * out_scale)
    sampler = MetropolisExchange(space, lattice, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_discard_per_chain=0)
    driver = nqs_core.VMC(system, model, sampler, optax.sgd(LR), SRt(diag_shift=DIAG_SHIFT))
    return driver, system, model


def flax_vit():
    import flax.linen as nn

    from nqs_networks._common import log_cosh
    from nqs_networks._vit import patch_displacements

    disp = patch_displacements(L, L)

    def layer_norm(x, scale, bias):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-6) * scale + bias

    class FlaxViT(nn.Module):
        """nqs_networks.ViT (1x1 patches) as a flax module on a batch `(B, N)`; the
        complex output layer is stored as real and imaginary parts (NetKet's
        sample-space SR needs parameters that are all real)."""

        @nn.compact
        def __call__(self, x):
            n_p = L * L
            init = nn.initializers.normal(0.1)
            p = {
                name: self.param(name, init, shape, dtype)
                for name, shape, dtype in [
                    ("embed_w", (1, D), jnp.float64), ("embed_b", (D,), jnp.float64),
                    ("ln1_scale", (NL, D), jnp.float64), ("ln1_bias", (NL, D), jnp.float64),
                    ("v_w", (NL, D, D), jnp.float64), ("v_b", (NL, D), jnp.float64),
                    ("alpha", (NL, H, n_p), jnp.float64), ("w_w", (NL, D, D), jnp.float64),
                    ("w_b", (NL, D), jnp.float64), ("ln2_scale", (NL, D), jnp.float64),
                    ("ln2_bias", (NL, D), jnp.float64), ("ff1_w", (NL, D, 2 * D), jnp.float64),
                    ("ff1_b", (NL, 2 * D), jnp.float64), ("ff2_w", (NL, 2 * D, D), jnp.float64),
                    ("ff2_b", (NL, D), jnp.float64), ("final_scale", (D,), jnp.float64),
                    ("final_bias", (D,), jnp.float64), ("out_w_re", (D, D), jnp.float64),
                    ("out_w_im", (D, D), jnp.float64), ("out_b_re", (D,), jnp.float64),
                    ("out_b_im", (D,), jnp.float64),
                ]
            }  # fmt: skip
            b = x.shape[0]
            xs = x.astype(jnp.float64)[..., None] @ p["embed_w"] + p["embed_b"]  # (B, n_p, d)
            for i in range(NL):
                v = (layer_norm(xs, p["ln1_scale"][i], p["ln1_bias"][i]) @ p["v_w"][i] + p["v_b"][i]).reshape(b, n_p, H, D // H)
                att = p["alpha"][i][:, disp]
                mixed = jnp.einsum("mij,bjmc->bimc", att, v).reshape(b, n_p, D)
                xs = xs + mixed @ p["w_w"][i] + p["w_b"][i]
                hidden = jax.nn.relu(layer_norm(xs, p["ln2_scale"][i], p["ln2_bias"][i]) @ p["ff1_w"][i] + p["ff1_b"][i])
                xs = xs + hidden @ p["ff2_w"][i] + p["ff2_b"][i]
            z = jnp.sum(layer_norm(xs, p["final_scale"], p["final_bias"]), axis=1)
            w = jax.lax.complex(p["out_w_re"], p["out_w_im"])
            t = z.astype(jnp.complex128) @ w + jax.lax.complex(p["out_b_re"], p["out_b_im"])
            return jnp.sum(log_cosh(t), axis=-1)

    return FlaxViT()


def netket_problem(model_nqs, on_the_fly):
    import netket as nk
    import optax

    g2 = nk.graph.Square(L, max_neighbor_order=2)
    g1 = nk.graph.Square(L)
    hi = nk.hilbert.Spin(0.5, N=L * L, total_sz=0)
    ham = nk.operator.Heisenberg(hi, g2, J=[1.0, 0.5], sign_rule=[False, False])
    sampler = nk.sampler.MetropolisExchange(hi, graph=g1, n_chains=N_CHAINS, sweep_size=L * L)
    vs = nk.vqs.MCState(sampler, flax_vit(), n_samples=N_SAMPLES, n_discard_per_chain=0, seed=0, sampler_seed=1)
    def value(k):
        base, _, part = k.rpartition("_")
        if part in ("re", "im"):
            a = getattr(model_nqs, base)
            return jnp.real(a) if part == "re" else jnp.imag(a)
        return jnp.asarray(getattr(model_nqs, k))

    vs.parameters = {k: value(k) for k in vs.parameters}
    driver = nk.driver.VMC_SR(
        ham, optax.sgd(LR), diag_shift=DIAG_SHIFT, variational_state=vs, use_ntk=True, on_the_fly=on_the_fly
    )
    return driver, vs, ham


def check_same(model_nqs, system, vs, ham):
    """Same log psi and local energies from the same parameters."""
    from nqs_core import batch_apply

    xs = system.space.random_state(jax.random.PRNGKey(3), 64)
    lp_nqs = jax.vmap(model_nqs)(xs)
    lp_nk = vs.log_value(xs)
    diff = lp_nqs - lp_nk  # the phase is defined modulo 2 pi
    diff = jax.lax.complex(jnp.real(diff), jnp.angle(jnp.exp(1j * jnp.imag(diff))))
    xp, mels = ham.get_conn_padded(xs)
    lxp = vs.log_value(xp.reshape(-1, L * L)).reshape(mels.shape)
    eloc_nk = jnp.sum(mels * jnp.exp(lxp - lp_nk[:, None]), axis=1)
    eloc_nqs = system.local_energies(model_nqs, xs)
    eloc_pad = batch_apply(lambda x: system.local_energy(model_nqs, x), xs)
    return {
        "log_psi_max_diff_mod_2pi": float(jnp.max(jnp.abs(diff))),
        "eloc_max_diff_vs_netket": float(jnp.max(jnp.abs(eloc_nqs - eloc_nk))),
        "eloc_max_diff_compacted_vs_padded": float(jnp.max(jnp.abs(eloc_nqs - eloc_pad))),
        "eloc_max_abs": float(jnp.max(jnp.abs(eloc_nqs))),
        "eloc_max_rel_diff_compacted_vs_padded": float(jnp.max(jnp.abs(eloc_nqs - eloc_pad) / jnp.abs(eloc_pad))),
    }


def per_call(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        jax.block_until_ready(fn())
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import equinox as eqx

    import nqs_core
    from nqs_core import batch_apply

    driver, system, model = nqs_problem()
    nk_runs = {otf: netket_problem(model, otf) for otf in (False, True)}
    # the equality check on a less trivial state than the near-uniform initialisation
    _, _, model_check = nqs_problem(out_scale=20.0)
    _, vs_check, ham_check = netket_problem(model_check, False)
    res = {"problem": __doc__.splitlines()[2:6], "n_params": driver.n_parameters, "check": check_same(model_check, system, vs_check, ham_check)}
    print(res["check"], flush=True)
    box = {"state": driver.init(jax.random.PRNGKey(1))}

    def nqs_steps():
        s = box["state"]
        for _ in range(args.steps):
            s, _ = driver.step(s)
        box["state"] = s
        return s.params

    samples, _, _ = driver.sampler.sample(nqs_core.BornDistribution(model), box["state"].sampler_state)
    flat = samples.reshape(-1, L * L)
    compacted = eqx.filter_jit(lambda m, x: system.local_energies(m, x))
    padded = eqx.filter_jit(lambda m, x: batch_apply(lambda c: system.local_energy(m, c), x))
    vs0 = nk_runs[False][1]
    ham0 = nk_runs[False][2]

    def nk_eloc():
        return vs0.local_estimators(ham0)

    def nk_steps(otf):
        drv, vs, _ = nk_runs[otf]
        drv.run(args.steps, out=(), show_progress=False)
        return vs.parameters

    t = {"nqs": [], "netket_otf_false": [], "netket_otf_true": [], "eloc_compacted": [], "eloc_padded": [], "eloc_netket": []}
    # compile everything once
    t0 = time.perf_counter()
    nqs_steps()
    res["nqs_compile_and_first_steps_s"] = time.perf_counter() - t0
    for otf in (False, True):
        nk_steps(otf)
    jax.block_until_ready((compacted(model, flat), padded(model, flat), nk_eloc()))
    for r in range(args.rounds):
        t["nqs"].append(per_call(nqs_steps, 1) / args.steps)
        t["netket_otf_false"].append(per_call(lambda: nk_steps(False), 1) / args.steps)
        t["netket_otf_true"].append(per_call(lambda: nk_steps(True), 1) / args.steps)
        t["eloc_compacted"].append(per_call(lambda: compacted(model, flat), 2))
        t["eloc_padded"].append(per_call(lambda: padded(model, flat), 2))
        t["eloc_netket"].append(per_call(nk_eloc, 2))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in t.items()), flush=True)
    # a timing of a diverged run would mean nothing: both must still be finite
    _, info = driver.step(box["state"])
    res["energy_last"] = {"nqs": float(info["energy"]), "netket": float(jnp.real(nk_runs[False][1].expect(nk_runs[False][2]).mean))}
    print("energies after the timed steps:", res["energy_last"], flush=True)
    if not all(np.isfinite(v) for v in res["energy_last"].values()):
        raise SystemExit("a run diverged during the timing; the timings are not comparable")
    med = {k: pystats.median(v) for k, v in t.items()}
    nk_best = min(med["netket_otf_false"], med["netket_otf_true"])
    res.update(
        median_s=med,
        rounds=t,
        ratio_step_netket_best_over_nqs=nk_best / med["nqs"],
        ratio_eloc_padded_over_compacted=med["eloc_padded"] / med["eloc_compacted"],
        ratio_eloc_netket_over_compacted=med["eloc_netket"] / med["eloc_compacted"],
        machine=f"jax {jax.__version__}, {jax.devices()}",
    )
    for k in ("ratio_step_netket_best_over_nqs", "ratio_eloc_padded_over_compacted", "ratio_eloc_netket_over_compacted"):
        print(f"{k}: x{res[k]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
