"""VQ-NQS on the 2D Heisenberg antiferromagnet with open boundaries (Sharir et al. 2022, Table 1).

Stages (run in order; models are saved under --out):

    python examples/vq/heisenberg_obc.py baseline --L 4 --steps 300
    python examples/vq/heisenberg_obc.py distill  --L 4 --steps 400
    python examples/vq/heisenberg_obc.py finetune --L 4 --steps 100
    python examples/vq/heisenberg_obc.py evaluate --L 4

`--final` uses the networks of Table 1 of Sharir et al. 2022: a last half-block of
attention without a quantiser before the output head (`final_attention`);
models `{L}x{L}_fa_*.eqx`. `extend --final` turns the saved baseline into one
with that half-block, initialised to the identity (same wave function), so it
can be trained further and distilled.

H = sum_<ij> S_i . S_j (S units) with the Marshall sign rule, Sz = 0; the wave
function is positive (amplitude decoder only, as in Sharir et al. 2022). The baseline is
trained by VMC with exact autoregressive sampling and MinSR; the 6-bit VQ-NQS
(1 head x 64 codes) is distilled from it and fine-tuned by VMC with compressed
local energies. `evaluate` gives the exact variational energy by enumerating
the Sz = 0 sector (4x4) or a Monte Carlo estimate (larger lattices).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nqs_core
from nqs_optim import MinSR
from nqs_spins import Heisenberg, SpinHalf, Square
from nqs_vq import VQTransformer, distill, vq_from_baseline

REF = {4: -0.5743254416, 6: -0.603522, 8: -0.619040}
ARCH = dict(patch_size=2, d_model=16, n_heads=2, n_layers=2, ffn_factor=4)


def setup(L):
    lat = Square(L, pbc=False)
    space = SpinHalf(lattice=lat, total_sz=0.0)
    return space, Heisenberg(space, lat, marshall_sign=True)


FINAL = False  # set by --final


def model(space, n_codes, seed=0):
    return VQTransformer(space, n_codes=n_codes, n_code_heads=1, final_attention=FINAL, key=jax.random.PRNGKey(seed),
                         **ARCH)


def with_identity_final_block(old, space):
    """`old` (no final half-block) plus a final attention half-block whose output
    projection is zero: the same wave function, with the new weights to train."""
    import dataclasses

    fresh = VQTransformer(space, n_codes=0, final_attention=True, key=jax.random.PRNGKey(0), **ARCH).amp
    amp = dataclasses.replace(old.amp, fin_ln=fresh.fin_ln, fin_qkv=fresh.fin_qkv, fin_bqkv=fresh.fin_bqkv,
                              fin_wo=jnp.zeros_like(fresh.fin_wo), fin_bo=fresh.fin_bo)
    return eqx.tree_at(lambda m: m.amp, old, amp)


def save(path, m):
    eqx.tree_serialise_leaves(path, m)


def load(path, like):
    return eqx.tree_deserialise_leaves(path, like)


def vmc(system, ansatz, space, steps, lr, n_samples, log, seed, save_to=None):
    sampler = nqs_core.DirectSampler(space, n_samples=n_samples, n_chains=16)
    opt = optax.sgd(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.1))
    driver = nqs_core.VMC(system, ansatz, sampler, opt, MinSR(diag_shift=1e-4, rcond=1e-10))
    state = driver.init(jax.random.PRNGKey(seed))
    n = system.space.size
    t0 = time.perf_counter()
    for i in range(steps):
        state, rec = driver.step(state)
        if i % 10 == 0 or i == steps - 1:
            print(f"step {i:4d}  E/N = {rec['energy'] / n:.6f} +- {rec['energy_error'] / n:.6f}  "
                  f"var = {rec['variance']:.4f}  t = {time.perf_counter() - t0:.0f}s", flush=True)
            log.append({"step": i, "energy_per_site": rec["energy"] / n, "error": rec["energy_error"] / n,
                        "variance": rec["variance"], "time": time.perf_counter() - t0})
            if save_to is not None:  # keep the latest parameters (runs may be cut short)
                save(save_to, driver.model(state).with_capacity(None))
    return driver.model(state)


def exact_energy(system, m, space):
    """Exact <H> of the normalised model by enumeration (small lattices)."""
    xs = space.all_states()
    f = eqx.filter_jit(jax.vmap(lambda x: (m(x), system.local_energy(m, x))))
    logp, el = [], []
    for c in range(0, xs.shape[0], 2048):
        a, b = f(xs[c : c + 2048])
        logp.append(a)
        el.append(b)
    p = jnp.exp(2.0 * jnp.real(jnp.concatenate(logp)))
    el = jnp.real(jnp.concatenate(el))
    return float(jnp.sum(p * el)), float(jnp.sum(p))


def mc_energy(system, m, n, key):
    xs = eqx.filter_jit(m.sample)(key, n)
    el = np.asarray(jnp.real(eqx.filter_jit(jax.vmap(lambda x: system.local_energy(m, x)))(xs)))
    return float(el.mean()), float(el.std() / np.sqrt(n))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=["baseline", "distill", "finetune", "evaluate", "extend"])
    p.add_argument("--final", action="store_true", help="networks with a final unquantised attention half-block")
    p.add_argument("--cosine", action="store_true", help="distill: cosine decay of the Adam rate")
    p.add_argument("--L", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--n-samples", type=int, default=1024)
    p.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[2] / "runs" / "vq" / "models"))
    p.add_argument("--resume", action="store_true", help="baseline/finetune: start from the saved model")
    a = p.parse_args()
    global FINAL
    FINAL = a.final
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space, system = setup(a.L)
    n = space.size
    tag = f"{a.L}x{a.L}" + ("_fa" if a.final else "")
    base_path, vq_path, ft_path = (out / f"{tag}_{s}.eqx" for s in ("baseline", "vq6", "vq6_ft"))
    log = []
    t0 = time.perf_counter()
    if a.stage == "extend":
        if not a.final:
            raise SystemExit("extend needs --final")
        FINAL = False
        old = load(out / f"{a.L}x{a.L}_baseline.eqx", model(space, 0))
        FINAL = True
        save(base_path, with_identity_final_block(old, space))
        return
    if a.stage == "baseline":
        init = load(base_path, model(space, 0)) if a.resume else model(space, 0)
        m = vmc(system, init, space, a.steps, a.lr, a.n_samples, log, 11 if a.resume else 1, base_path)
        save(base_path, m)
    elif a.stage == "distill":
        teacher = load(base_path, model(space, 0))
        xs = teacher.sample(jax.random.PRNGKey(2), 1024)
        if a.resume:  # continue distilling the saved VQ-NQS
            student = load(vq_path, model(space, 64))
        else:
            student = vq_from_baseline(teacher, xs, jax.random.PRNGKey(3), n_codes=64, n_code_heads=1)

        def cb(i, loss):
            if i % 25 == 0:
                print(f"distill step {i:4d}  L2 = {loss:.3e}  t = {time.perf_counter() - t0:.0f}s", flush=True)
                log.append({"step": i, "loss": loss})

        lr = a.lr if a.lr < 0.01 else 1e-3
        if a.cosine:  # Adam rate decaying by a cosine to 1% over the steps
            lr = optax.cosine_decay_schedule(lr, max(a.steps, 1), alpha=0.01)
        student, losses = distill(student, teacher, jax.random.PRNGKey(40 if a.resume else 4), n_steps=a.steps, n_samples=512,
                                  learning_rate=lr, callback=cb,
                                  revive_until=0 if a.resume else a.steps // 2)
        save(vq_path, student)
    elif a.stage == "finetune":
        m = load(ft_path if a.resume else vq_path, model(space, 64))
        # capacity None: B * T unique slots, always enough while the weights change
        # (a calibrated capacity could overflow during training and give NaN)
        m = vmc(system, m, space, a.steps, a.lr, a.n_samples, log, 6, ft_path)
        save(ft_path, m.with_capacity(None))
    else:
        res = {}
        for name, path, nc in (("baseline", base_path, 0), ("vq6", vq_path, 64), ("vq6_ft", ft_path, 64)):
            if not path.exists():
                continue
            m = load(path, model(space, nc))
            if n <= 20:
                e, norm = exact_energy(system, m, space)
                res[name] = {"energy_per_site": e / n, "norm": norm, "method": "exact enumeration"}
            else:
                e, err = mc_energy(system, m, 8192, jax.random.PRNGKey(7))
                res[name] = {"energy_per_site": e / n, "error": err / n, "method": "MC, 8192 exact samples"}
            if a.L in REF:
                res[name]["relative_error"] = abs(res[name]["energy_per_site"] - REF[a.L]) / abs(REF[a.L])
            print(name, res[name], flush=True)
        (out / f"{tag}_evaluate.json").write_text(json.dumps(res, indent=1))
        return
    suffix = "_resumed" if a.resume else ""
    (out / f"{tag}_{a.stage}{suffix}_log.json").write_text(json.dumps({"args": vars(a), "log": log,
                                                              "wall_s": time.perf_counter() - t0}, indent=1))


if __name__ == "__main__":
    main()
