"""The transformer stack of `VQTransformer` (Sharir et al. 2022, Fig. 1, Table 1): one
decoder or encoder, its ordinary (dense) evaluation and its initial weights. The
compressed evaluation of nearly equal configurations (Section 3.2) is in
`_compressed.py`."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._quantizer import quantize

_LN_EPS = 1e-6


def _layer_norm(x, p):
    """LayerNorm over the last axis; `p = (scale, bias)` stacked as `(2, d)`."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + _LN_EPS) * p[0] + p[1]


class _Net(eqx.Module):
    """One transformer stack (decoder or encoder) of `VQTransformer` (private).

    Per block (pre-LayerNorm): `A = Attn(LN(X))`, `X <- X + W_o VQ(A) + b_o`,
    `X <- X + FFN(LN(X))`; the quantiser sits after the attention, before the
    output projection and the residual connection (Sharir et al. 2022, Fig. 1).
    Optionally a final half-block `X <- X + W_o Attn(LN(X)) + b_o` without a
    quantiser before the output head (Sharir et al. 2022, Table 1).
    """

    embed: Array  # (n_vocab, d); the decoder's last row is the start token
    pos: Array  # (T, d)
    ln1: Array  # (L, 2, d)
    w_qkv: Array  # (L, d, 3d)
    b_qkv: Array  # (L, 3d)
    codebook: Array | None  # (L, H, Q, d/H)
    w_o: Array  # (L, d, d)
    b_o: Array  # (L, d)
    ln2: Array
    w_1: Array  # (L, d, f)
    b_1: Array
    w_2: Array  # (L, f, d)
    b_2: Array
    ln_f: Array  # (2, d)
    head_w: Array  # (d, n_out)
    head_b: Array  # (n_out,)
    # final half-block (attention only, no quantiser; Sharir et al. 2022, Table 1), or None
    fin_ln: Array | None  # (2, d)
    fin_qkv: Array | None  # (d, 3d)
    fin_bqkv: Array | None  # (3d,)
    fin_wo: Array | None  # (d, d)
    fin_bo: Array | None  # (d,)
    n_heads: int = eqx.field(static=True)
    causal: bool = eqx.field(static=True)

    @property
    def n_layers(self) -> int:
        return self.w_qkv.shape[0]

    @property
    def d_model(self) -> int:
        return self.w_qkv.shape[1]

    # ---- per-location operations -------------------------------------------------
    def qkv(self, layer, x):
        return _layer_norm(x, self.ln1[layer]) @ self.w_qkv[layer] + self.b_qkv[layer]

    def post(self, layer, x, q):
        """Output projection of the (quantised) attention, residual, FFN."""
        x = x + q @ self.w_o[layer] + self.b_o[layer]
        h = jax.nn.gelu(_layer_norm(x, self.ln2[layer]) @ self.w_1[layer] + self.b_1[layer])
        return x + h @ self.w_2[layer] + self.b_2[layer]

    def head(self, x):
        return _layer_norm(x, self.ln_f) @ self.head_w + self.head_b

    @property
    def has_final(self) -> bool:
        return self.fin_qkv is not None

    def final_qkv(self, x):
        return _layer_norm(x, self.fin_ln) @ self.fin_qkv + self.fin_bqkv

    def final_post(self, x, a):
        return x + a @ self.fin_wo + self.fin_bo

    # ---- location mixer ---------------------------------------------------------------
    def attend(self, qkv):
        """Multi-head softmax self-attention, `qkv` of shape `(B, T, 3d)` -> `(B, T, d)`."""
        b, t, _ = qkv.shape
        d, h = self.d_model, self.n_heads
        q, k, v = (a.reshape(b, t, h, d // h) for a in jnp.split(qkv, 3, axis=-1))
        s = jnp.einsum("bihc,bjhc->bhij", q, k) * (1.0 / math.sqrt(d // h))
        if self.causal:
            s = jnp.where(jnp.tril(jnp.ones((t, t), dtype=bool)), s, -jnp.inf)
        a = jax.nn.softmax(s, axis=-1)
        return jnp.einsum("bhij,bjhc->bihc", a, v).reshape(b, t, d)

    # ---- evaluation -----------------------------------------------------------------
    def dense(self, ids):
        """Per-token outputs for token ids `(B, T)` (ordinary evaluation)."""
        x = self.embed[ids] + self.pos
        for layer in range(self.n_layers):
            a = self.attend(self.qkv(layer, x))
            if self.codebook is not None:
                a, _ = quantize(a, self.codebook[layer])
            x = self.post(layer, x, a)
        if self.has_final:
            x = self.final_post(x, self.attend(self.final_qkv(x)))
        return self.head(x)

    def quantizer_inputs(self, ids):
        """Quantiser inputs and chosen codes of every layer, for token ids `(B, T)`:
        shapes `(L, B*T, d)` and `(L, B*T, H)` (codes `None` without quantisers)."""
        x = self.embed[ids] + self.pos
        ins, idx = [], []
        for layer in range(self.n_layers):
            a = self.attend(self.qkv(layer, x))
            ins.append(a.reshape(-1, a.shape[-1]))
            if self.codebook is not None:
                q, c = quantize(a, self.codebook[layer])
                idx.append(c.reshape(-1, c.shape[-1]))
            else:  # baseline: the attention outputs a quantiser would see
                q = a
            x = self.post(layer, x, q)
        return jnp.stack(ins), (jnp.stack(idx) if idx else None)


def _init_net(key, n_vocab, n_tokens, d, n_heads, n_layers, ffn, n_out, n_code_heads, n_codes, causal, final=False):
    f64 = jnp.float64
    shapes = {
        "embed": ((n_vocab, d), 1.0),
        "pos": ((n_tokens, d), 0.1),
        "w_qkv": ((n_layers, d, 3 * d), 1.0 / math.sqrt(d)),
        "w_o": ((n_layers, d, d), 1.0 / math.sqrt(d)),
        "w_1": ((n_layers, d, ffn), 1.0 / math.sqrt(d)),
        "w_2": ((n_layers, ffn, d), 1.0 / math.sqrt(ffn)),
        "head_w": ((d, n_out), 0.1 / math.sqrt(d)),
    }
    if n_codes:
        shapes["codebook"] = ((n_layers, n_code_heads, n_codes, d // n_code_heads), 0.5)
    flat = np.asarray(jax.random.normal(key, (sum(math.prod(s) for s, _ in shapes.values()),), f64))
    w, start = {}, 0
    for name, (shape, std) in shapes.items():
        size = math.prod(shape)
        w[name] = jnp.asarray(flat[start : start + size].reshape(shape) * std)
        start += size
    if final:  # own key: the other weights do not depend on `final`
        k_fin = jax.random.split(jax.random.fold_in(key, 1))
        w["fin_qkv"] = jax.random.normal(k_fin[0], (d, 3 * d), f64) / math.sqrt(d)
        w["fin_wo"] = jax.random.normal(k_fin[1], (d, d), f64) / math.sqrt(d)
    ln = jnp.stack([jnp.ones((n_layers, d), f64), jnp.zeros((n_layers, d), f64)], axis=1)
    return _Net(
        embed=w["embed"],
        pos=w["pos"],
        ln1=ln,
        w_qkv=w["w_qkv"],
        b_qkv=jnp.zeros((n_layers, 3 * d), f64),
        codebook=w.get("codebook"),
        w_o=w["w_o"],
        b_o=jnp.zeros((n_layers, d), f64),
        ln2=ln,
        w_1=w["w_1"],
        b_1=jnp.zeros((n_layers, ffn), f64),
        w_2=w["w_2"],
        b_2=jnp.zeros((n_layers, d), f64),
        ln_f=jnp.stack([jnp.ones((d,), f64), jnp.zeros((d,), f64)]),
        head_w=w["head_w"],
        head_b=jnp.zeros((n_out,), f64),
        fin_ln=jnp.stack([jnp.ones((d,), f64), jnp.zeros((d,), f64)]) if final else None,
        fin_qkv=w.get("fin_qkv"),
        fin_bqkv=jnp.zeros((3 * d,), f64) if final else None,
        fin_wo=w.get("fin_wo"),
        fin_bo=jnp.zeros((d,), f64) if final else None,
        n_heads=n_heads,
        causal=causal,
    )
