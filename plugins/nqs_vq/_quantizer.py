"""Multi-head vector quantiser of Sharir et al. 2022 (Eqs. 4-8): nearest-code lookup with a
straight-through softmax gradient, and dead-code removal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

_SQRT_EPS = 1e-12


def _split_heads(x: Array, n_heads: int) -> Array:
    return x.reshape(x.shape[:-1] + (n_heads, x.shape[-1] // n_heads))


def squared_distances(x: Array, codebook: Array) -> Array:
    """`||x_h - W_{h,j}||^2` for every head `h` and code `j`.

    **Arguments:**

    - `x`: vectors of shape `(..., d)`, split into `H` segments of `d / H`.
    - `codebook`: `W`, shape `(H, Q, d / H)`.

    **Returns:** shape `(..., H, Q)`, clipped at zero (matrix-product form
    `|x|^2 - 2 x.W + |W|^2`, the way the FLOPs are counted: `2 Q d` per vector).
    """
    xs = _split_heads(x, codebook.shape[0])
    cross = jnp.einsum("...hc,hqc->...hq", xs, codebook)
    sq = jnp.sum(xs * xs, axis=-1)[..., None] - 2.0 * cross + jnp.sum(codebook * codebook, axis=-1)
    return jnp.maximum(sq, 0.0)


def codes(x: Array, codebook: Array) -> Array:
    """Eq. (5): `I_VQ(x; W)_h = argmax_j D_hj = argmin_j ||x_h - W_hj||`.

    **Returns:** `int32` indices of shape `(..., H)`.
    """
    n_heads, _, dh = codebook.shape
    flat = x.reshape(-1, n_heads * dh)
    out = []
    for h in range(n_heads):  # |x_h|^2 is the same for every code: argmin of |W|^2 - 2 x.W
        w = codebook[h]
        score = jnp.sum(w * w, axis=-1) - 2.0 * (flat[:, h * dh : (h + 1) * dh] @ w.T)
        out.append(jnp.argmin(score, axis=-1).astype(jnp.int32))
    return jnp.stack(out, axis=-1).reshape(x.shape[:-1] + (n_heads,))


def lookup(idx: Array, codebook: Array) -> Array:
    """Eq. (6): the quantised vector `V_VQ` for code indices `idx` of shape `(..., H)`.

    **Returns:** shape `(..., d)`, the `H` code vectors concatenated.
    """
    heads = jnp.arange(codebook.shape[0])
    vals = codebook[heads, idx]  # (..., H, d/H)
    return vals.reshape(idx.shape[:-1] + (-1,))


def straight_through_reference(x: Array, codebook: Array) -> Array:
    """Eqs. (4), (7), (8) written out: `V = g(D)^T W` with
    `g(z) = SG[OneHot(argmax z)] + Softmax(z) - SG[Softmax(z)]`,
    `D_hj = -||x_h - W_hj||`.

    The forward value equals `lookup(codes(x, W), W)`; the gradient flows to `x`
    and `W` through the softmax of the negative distances. `quantize` has the
    same value and gradient but skips the softmax in the forward pass.
    """
    d = -jnp.sqrt(squared_distances(x, codebook) + _SQRT_EPS)
    soft = jax.nn.softmax(d, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(d, axis=-1), codebook.shape[1], dtype=soft.dtype)
    g = jax.lax.stop_gradient(hard) + soft - jax.lax.stop_gradient(soft)
    vals = jnp.einsum("...hq,hqc->...hc", g, codebook)
    return vals.reshape(x.shape)


@jax.custom_vjp
def _quantize(x, codebook):
    idx = codes(x, codebook)
    return lookup(idx, codebook), idx


def _quantize_fwd(x, codebook):
    return _quantize(x, codebook), (x, codebook)


def _quantize_bwd(res, g):
    x, codebook = res
    g_vals, _ = g
    _, vjp = jax.vjp(straight_through_reference, x, codebook)
    return vjp(g_vals)


_quantize.defvjp(_quantize_fwd, _quantize_bwd)


def quantize(x: Array, codebook: Array) -> tuple[Array, Array]:
    """Multi-head vector quantisation of Sharir et al. 2022 (Eqs. 4-8).

    **Arguments:**

    - `x`: vectors of shape `(..., d)`.
    - `codebook`: `W`, shape `(H, Q, d / H)`; `d` must be divisible by `H`.

    **Returns:** `(values, idx)`: the quantised vectors (shape of `x`, exactly
    the code vectors in the forward pass) and the code indices `(..., H)`.
    The gradient is the straight-through estimator of Eq. (8)
    (`straight_through_reference`).
    """
    if x.shape[-1] != codebook.shape[0] * codebook.shape[2]:
        raise ValueError(
            f"quantize: x has {x.shape[-1]} features, the codebook {codebook.shape} expects "
            f"H * d/H = {codebook.shape[0] * codebook.shape[2]}"
        )
    return _quantize(x, codebook)


def code_usage(idx: Array, n_codes: int) -> Array:
    """How often each code was chosen: `idx` of shape `(M, H)` -> counts `(H, n_codes)`."""
    one = jax.nn.one_hot(idx, n_codes, dtype=jnp.int32)  # (M, H, Q)
    return jnp.sum(one, axis=0)


def replace_dead_codes(
    codebook: Array, inputs: Array, usage: Array, key: PRNGKeyArray, min_count: int = 1
) -> tuple[Array, int]:
    """Dead-code removal: codes used fewer than `min_count` times are replaced by
    randomly chosen quantiser inputs (per head), so every code sits where data is.

    **Arguments:**

    - `codebook`: `(H, Q, d / H)`.
    - `inputs`: recent quantiser inputs, shape `(M, d)`.
    - `usage`: code counts `(H, Q)` on those inputs (`code_usage`).
    - `key`: PRNG key for the choice of replacements.
    - `min_count`: codes with fewer uses are dead (default 1: unused).

    **Returns:** `(new_codebook, n_replaced)`.
    """
    n_heads = codebook.shape[0]
    xs = _split_heads(jnp.asarray(inputs), n_heads)  # (M, H, d/H)
    pick = jax.random.randint(key, codebook.shape[:2], 0, xs.shape[0])  # (H, Q)
    repl = xs[pick, jnp.arange(n_heads)[:, None]]  # (H, Q, d/H)
    dead = usage < min_count
    new = jnp.where(dead[..., None], repl, codebook)
    return new, int(np.sum(np.asarray(dead)))
