"""FLOP accounting of local-energy evaluations, dense and with reuse (Sharir et al. 2022, Table 1, Fig. 2)."""

from __future__ import annotations

import jax
import numpy as np


def _net_costs(net, n_tokens: int) -> dict:
    """Analytic FLOPs (multiply-add = 2) of the pieces of one transformer stack."""
    d = net.d_model
    f = net.w_1.shape[-1]
    nh = net.n_heads
    n_out = net.head_w.shape[-1]
    t = n_tokens
    ln = 8 * d  # mean, variance, normalise, scale and shift
    qkv = ln + 2 * d * 3 * d + 3 * d
    post = 2 * d * d + 2 * d + ln + 2 * d * f + 2 * f + 8 * f + 2 * f * d + 2 * d  # W_o, residual, LN, FFN (GELU ~8)
    head = ln + 2 * d * n_out + n_out
    attn = 2 * (2 * t * t * d) + 5 * t * t * nh  # QK^T, AV, scaled masked softmax (per configuration)
    if net.codebook is not None:
        h, q, _ = net.codebook.shape[1:]
        vq = t * (2 * q * d + 2 * h * q)  # distances (matrix form) + argmin, per configuration
    else:
        vq = 0
    final = net.has_final  # final half-block: Q/K/V, attention, W_o + residual
    return {"qkv": qkv, "post": post, "head": head, "attention": attn, "vq": vq, "layers": net.n_layers,
            "final": final, "final_post": 2 * d * d + 2 * d}


def local_energy_flops(model, n_configs: int, counts=None) -> dict:
    """Analytic FLOPs to evaluate `log psi` on one sample and its connected
    configurations (`n_configs` = 1 + number of connected ones), dense or with
    reuse.

    **Arguments:**

    - `model`: a `VQTransformer`.
    - `n_configs`: `B`, configurations evaluated together.
    - `counts`: unique vectors per stage (`model.unique_counts`), amplitude
      stages then phase stages; `None` gives the dense cost only.

    **Returns:** dict with `dense`, `reuse` (if `counts`), and the per-location
    parts only (`dense_per_location`, `reuse_per_location`: the "quantised ops"
    of Table 1); FLOPs per sample.
    """
    t = model.n_tokens
    nets = [model.amp] + ([model.phase] if model.phase is not None else [])
    out = {"dense": 0.0, "dense_per_location": 0.0, "reuse": 0.0, "reuse_per_location": 0.0}
    start = 0
    for net in nets:
        c = _net_costs(net, t)
        n_layers = c["layers"]
        loc = n_configs * t
        per_loc_dense = loc * (n_layers * (c["qkv"] + c["post"]) + c["head"])
        mixer = n_configs * n_layers * (c["attention"] + c["vq"])
        if c["final"]:
            per_loc_dense += loc * (c["qkv"] + c["final_post"])
            mixer += n_configs * c["attention"]
        out["dense"] += per_loc_dense + mixer
        out["dense_per_location"] += per_loc_dense
        if counts is not None:
            s = np.asarray(counts[start : start + n_layers + 1], dtype=float)
            if net.codebook is None:  # dense after the first attention
                s = np.concatenate([s[:1], np.full(n_layers, float(loc))])
            per_loc = sum(s[i] * c["qkv"] + s[i + 1] * c["post"] for i in range(n_layers))
            if c["final"]:  # Q/K/V on the unique vectors; after the attention all locations differ
                per_loc += s[-1] * c["qkv"] + loc * (c["final_post"] + c["head"])
            else:
                per_loc += s[-1] * c["head"]
            out["reuse"] += per_loc + mixer
            out["reuse_per_location"] += per_loc
        start += n_layers + 1
    if counts is None:
        del out["reuse"], out["reuse_per_location"]
    return out


def xla_flops(fn, *args) -> float:
    """FLOPs of the compiled `jax.jit(fn)(*args)` from XLA's cost analysis
    (gathers and sorts count zero; padded slots count in full)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))
