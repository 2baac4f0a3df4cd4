"""VQ-NQS transformer wave function (Sharir et al. 2022, Section 3): an autoregressive
decoder for the amplitude, a bidirectional encoder for the phase, vector
quantisers after every self-attention module, and the compressed evaluation of
many nearly equal configurations (Section 3.2)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAutoregressiveAnsatz, AbstractConnectedAnsatz, AbstractDiscreteSpace, AbstractSpace

from ._quantizer import codes as vq_codes, lookup as vq_lookup, quantize

_LN_EPS = 1e-6
_MASKED = -1e30  # log-weight of patch values that break the fixed magnetisation
_KEY_BITS = 62  # int64 keys of (unique id, code tuple) pairs stay below 2^62


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

    def compressed(self, ids, capacity):
        """Section 3.2: the same per-token outputs as `dense(ids)` for a batch of
        nearly equal inputs, with every per-location operation applied only to the
        unique vectors.

        The hidden state is kept as `(inv, V)`: `V` holds the unique vectors and
        `inv[b * T + t]` points into it. Before the first block a vector is fixed by
        its (position, token) pair; after block `l` by its previous unique vector and
        the code tuple of the quantiser of block `l`. Attention (the location mixer)
        and the quantiser distances are computed densely.

        **Arguments:**

        - `ids`: token ids `(B, T)`.
        - `capacity`: static number of unique slots per stage (`n_layers + 1`
          ints, or `None` for `B * T`: always enough).

        **Returns:** `(outputs (B, T, n_out), overflow, counts)`: `overflow` is
        True when a stage had more unique vectors than its capacity (the outputs
        are then invalid), `counts` the number of unique vectors per stage.
        """
        b, t = ids.shape
        n = b * t
        sizes = [n] * (self.n_layers + 1) if capacity is None else [min(int(c), n) for c in capacity]
        n_vocab = self.embed.shape[0]
        key = (jnp.arange(t, dtype=jnp.int64)[None, :] * n_vocab + ids.astype(jnp.int64)).reshape(-1)
        uniq, inv, overflow, count = _unique(key, sizes[0])
        counts = [count]
        v = self.embed[uniq % n_vocab] + self.pos[uniq // n_vocab]
        for layer in range(self.n_layers):
            qkv = self.qkv(layer, v)[inv].reshape(b, t, -1)
            a = self.attend(qkv).reshape(n, -1)
            if self.codebook is None:  # no quantiser: the stream is dense from here on
                v = self.post(layer, v[inv], a)
                inv = jnp.arange(n)
                counts.append(jnp.asarray(n))
                continue
            cb = self.codebook[layer]
            idx = vq_codes(a, cb)  # (n, H), dense
            pair, n_keys = inv.astype(jnp.int64), sizes[layer]
            for h in range(cb.shape[0]):  # (unique id, code tuple) as one int64 key
                if (n_keys * cb.shape[1]).bit_length() > _KEY_BITS:
                    _, pair, _, _ = _unique(pair, n)
                    n_keys = n
                pair = pair * cb.shape[1] + idx[:, h].astype(jnp.int64)
                n_keys *= cb.shape[1]
            uniq, new_inv, over, count = _unique(pair, sizes[layer + 1])
            overflow = overflow | over
            counts.append(count)
            # representative location of each unique pair: its previous id and codes
            first = jnp.zeros((sizes[layer + 1],), jnp.int32).at[new_inv].set(jnp.arange(n, dtype=jnp.int32))
            v = self.post(layer, v[inv[first]], vq_lookup(idx[first], cb))
            inv = new_inv
        if self.has_final:  # unquantised attention: every location differs after it
            a = self.attend(self.final_qkv(v)[inv].reshape(b, t, -1)).reshape(n, -1)
            out = self.head(self.final_post(v[inv], a)).reshape(b, t, -1)
        else:
            out = self.head(v)[inv].reshape(b, t, -1)
        return out, overflow, jnp.stack(counts)


def _unique(key, size):
    """`jnp.unique` with a fixed size, an inverse, an overflow flag and the count."""
    uniq, inv = jnp.unique(key, size=size, return_inverse=True, fill_value=key[0])
    inv = inv.reshape(-1)
    overflow = jnp.any(uniq[inv] != key)
    srt = jnp.sort(key)
    count = 1 + jnp.sum(srt[1:] != srt[:-1])
    return uniq, inv, overflow, count


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


class VQTransformer(AbstractAutoregressiveAnsatz, AbstractConnectedAnsatz):
    """Vector-quantised transformer NQS (VQ-NQS, Sharir et al. 2022), with exact direct
    sampling and compressed local energies.

    `psi(s) = sqrt(P(s)) exp(i phi(s))`:

    - tokens are non-overlapping groups of `patch_size` consecutive sites (site
      order, i.e. row-major on a square lattice), each embedded from its
      `2^patch_size` values, plus learned position embeddings;
    - `P(s) = prod_t P(s_t | s_<t)` over tokens, from a causal (unidirectional)
      decoder: token `t` reads the embedding of token `t-1` (a start token for
      `t = 0`) and outputs the logits of the `2^patch_size` values of token `t`.
      With a fixed magnetisation (`space.constraint`) values that cannot reach it
      are masked, so `P` is normalised on the sector. `sum |psi|^2 = 1` exactly;
    - `phi(s)` (if `phase_layers > 0`) from a bidirectional encoder: the mean
      over tokens of `w . LN(x_t)` plus a bias (pooling, linear projection);
    - every block: `X += W_o VQ(Attn(LN(X))) + b_o`, `X += FFN(LN(X))` with a
      GELU FFN of width `ffn_factor * d_model`; `VQ` is the multi-head quantiser
      of Eqs. (4)-(8) with `n_code_heads` codebooks of `n_codes` vectors
      (`n_code_heads * log2(n_codes)` bits); `n_codes = 0` is the baseline
      transformer without quantisation.

    `log_psi_connected(x, xps)` (the hook the discrete Hamiltonians call for
    local energies) evaluates `x` and its connected configurations in the
    compressed form of Section 3.2: per-location operations (Q/K/V and output
    projections, FFN, LayerNorms, heads) act only on unique vectors; with
    quantisers most tokens of the connected configurations repeat those of `x`.
    The result equals the dense evaluation (up to rounding, ~1e-14).
    `capacity` fixes the number of unique slots per stage (static shapes for
    jit); too small a capacity is detected and gives NaN (never a wrong finite
    number); `None` uses the always-sufficient `B * T` (no savings). Calibrate
    it with `nqs_vq.calibrate_capacity`.

    **Arguments:**

    - `space`: spin-1/2 space (injected); its constraint (fixed `total_sz`), if any, is enforced.
    - `patch_size`: spins per token `K` (must divide the number of sites; default 2).
    - `d_model`: hidden size (default 32).
    - `n_heads`: attention heads (default 4).
    - `n_layers`: transformer blocks of the amplitude decoder (default 2).
    - `ffn_factor`: FFN width / `d_model` (default 4).
    - `n_codes`: codebook vectors per quantiser head `Q` (default 64; 0: baseline).
    - `n_code_heads`: quantiser heads `H` (default 1: 6 bits with `Q = 64`).
    - `phase_layers`: blocks of the phase encoder (default 0: real, positive
      wave function, as in Sharir et al. 2022 with the Marshall sign).
    - `final_attention`: end each network with a half-block of attention
      without a quantiser (`X += W_o Attn(LN(X))`), as the networks of Table 1
      of Sharir et al. 2022 (default False). It mixes the quantised streams of all
      locations at full precision; its output differs at every location, so the
      output projection and head after it run densely.
    - `capacity`: unique slots per stage, `[[amplitude stages], [phase stages]]`
      with `n_layers + 1` / `phase_layers + 1` ints, or `None`.
    - `key`: PRNG key (injected).
    """

    amp: _Net
    phase: _Net | None
    n_sites: int = eqx.field(static=True)
    patch_size: int = eqx.field(static=True)
    n_up: int | None = eqx.field(static=True)
    capacity: tuple | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        patch_size: int = 2,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        ffn_factor: int = 4,
        n_codes: int = 64,
        n_code_heads: int = 1,
        phase_layers: int = 0,
        capacity=None,
        final_attention: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        n = int(space.size)
        if not isinstance(space, AbstractDiscreteSpace) or tuple(space.local_states) != (-1.0, 1.0):
            raise TypeError(f"VQTransformer needs a spin-1/2 space (local states -1, 1), got {space!r}")
        if patch_size < 1 or n % patch_size:
            raise ValueError(f"patch_size={patch_size} must be a positive divisor of the number of sites {n}")
        if n_heads < 1 or d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a positive multiple of n_heads={n_heads}")
        if n_layers < 1 or phase_layers < 0:
            raise ValueError(f"need n_layers >= 1 and phase_layers >= 0, got {n_layers}, {phase_layers}")
        if n_codes < 0 or (n_codes and (n_code_heads < 1 or d_model % n_code_heads)):
            raise ValueError(
                f"n_codes={n_codes} must be >= 0 and d_model={d_model} a multiple of n_code_heads={n_code_heads}"
            )
        t = n // patch_size
        n_vals = 2**patch_size
        k_amp, k_phase = jax.random.split(key)
        ffn = ffn_factor * d_model
        args = (d_model, n_heads)
        fin = bool(final_attention)
        self.amp = _init_net(k_amp, n_vals + 1, t, *args, n_layers, ffn, n_vals, n_code_heads, n_codes, True, fin)
        self.phase = (
            _init_net(k_phase, n_vals, t, *args, phase_layers, ffn, 1, n_code_heads, n_codes, False, fin)
            if phase_layers
            else None
        )
        self.n_sites = n
        self.patch_size = patch_size
        if space.constraint is None:
            self.n_up = None
        else:
            n_up = (n + space.constraint.total) / 2  # sum(s) = n_up - (n - n_up)
            if n_up != int(n_up) or not 0 <= n_up <= n:
                raise ValueError(f"total_sz={space.constraint.total / 2:g} is not reachable with {n} spins 1/2")
            self.n_up = int(n_up)
        self.capacity = _check_capacity(capacity, n_layers, phase_layers)

    # ---- tokens -------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return self.n_sites // self.patch_size

    def tokens(self, x: Array) -> Array:
        """Token values `(..., T)` in `[0, 2^K)` of configurations `(..., n_sites)`
        (first site of a patch = most significant bit; up = 1)."""
        bits = (jnp.asarray(x).reshape(x.shape[:-1] + (self.n_tokens, self.patch_size)) > 0).astype(jnp.int32)
        weights = jnp.asarray(2 ** np.arange(self.patch_size - 1, -1, -1), dtype=jnp.int32)
        return jnp.sum(bits * weights, axis=-1)

    def spins(self, tok: Array) -> Array:
        """Inverse of `tokens`: configurations of `+-1.0`."""
        shifts = jnp.arange(self.patch_size - 1, -1, -1, dtype=jnp.int32)
        bits = (tok[..., None] >> shifts) & 1
        return (2.0 * bits.astype(jnp.float64) - 1.0).reshape(tok.shape[:-1] + (self.n_sites,))

    def _decoder_ids(self, tok):
        start = jnp.full(tok.shape[:-1] + (1,), 2**self.patch_size, dtype=tok.dtype)
        return jnp.concatenate([start, tok[..., :-1]], axis=-1)

    def _mask(self, tok):
        """Allowed token values given the prefix, shape `(..., T, 2^K)` (all True
        without a fixed magnetisation)."""
        n_vals = 2**self.patch_size
        shape = tok.shape + (n_vals,)
        if self.n_up is None:
            return jnp.ones(shape, dtype=bool)
        pop = jnp.asarray(np.array([bin(v).count("1") for v in range(n_vals)]), dtype=jnp.int32)
        ups = pop[tok]
        before = jnp.cumsum(ups, axis=-1) - ups
        remaining = self.patch_size * (self.n_tokens - 1 - jnp.arange(self.n_tokens, dtype=jnp.int32))
        total = before[..., None] + pop
        return (total <= self.n_up) & (total + remaining[:, None] >= self.n_up)

    def _log_probs(self, logits, tok):
        """Masked, normalised `log P(value | prefix)`: `(..., T, 2^K)`."""
        return jax.nn.log_softmax(jnp.where(self._mask(tok), logits, _MASKED), axis=-1)

    def _from_outputs(self, amp_out, phase_out, tok):
        lp = self._log_probs(amp_out, tok)
        log_amp = 0.5 * jnp.sum(jnp.take_along_axis(lp, tok[..., None], axis=-1)[..., 0], axis=-1)
        if phase_out is None:
            return log_amp
        phi = jnp.mean(phase_out[..., 0], axis=-1)
        return jax.lax.complex(log_amp, phi)

    def quantizer_inputs(self, xs: Array):
        """Per network (amplitude, phase): the quantiser inputs `(L, M*T, d)` and
        codes `(L, M*T, H)` (or `None`) for configurations `xs` of shape `(M, n_sites)`."""
        tok = self.tokens(xs)
        out = [self.amp.quantizer_inputs(self._decoder_ids(tok))]
        if self.phase is not None:
            out.append(self.phase.quantizer_inputs(tok))
        return out

    # ---- AbstractAnsatz -----------------------------------------------------------------------
    def __call__(self, x):
        tok = self.tokens(x)[None]
        amp = self.amp.dense(self._decoder_ids(tok))
        ph = None if self.phase is None else self.phase.dense(tok)
        return self._from_outputs(amp, ph, tok)[0]

    # ---- AbstractConnectedAnsatz --------------------------------------------------------------------
    def log_psi_connected(self, x, xps):
        out, overflow, _ = self._connected(x, xps)
        out = jnp.where(overflow, jnp.nan, out)
        return out[0], out[1:]

    def _connected(self, x, xps):
        tok = self.tokens(jnp.concatenate([x[None], xps], axis=0))
        cap_a, cap_p = (None, None) if self.capacity is None else self.capacity
        amp, overflow, counts = self.amp.compressed(self._decoder_ids(tok), cap_a)
        ph = None
        if self.phase is not None:
            ph, over_p, counts_p = self.phase.compressed(tok, cap_p)
            overflow = overflow | over_p
            counts = jnp.concatenate([counts, counts_p])
        return self._from_outputs(amp, ph, tok), overflow, counts

    def unique_counts(self, x: Array, xps: Array) -> Array:
        """Number of unique vectors at every stage (amplitude stages, then phase
        stages) when `x` and `xps` are evaluated together (exact, any capacity)."""
        full = _replace_capacity(self, None)
        return full._connected(x, xps)[2]

    def with_capacity(self, capacity) -> "VQTransformer":
        """A copy with another `capacity` (see the class docstring)."""
        n_phase = 0 if self.phase is None else self.phase.n_layers
        return _replace_capacity(self, _check_capacity(capacity, self.amp.n_layers, n_phase))

    # ---- AbstractAutoregressiveAnsatz -----------------------------------------------------------
    def patch_log_probs(self, x: Array) -> Array:
        """`log P(s_t = v | s_<t)` for every token `t` and value `v`: `(T, 2^K)`."""
        tok = self.tokens(x)[None]
        return self._log_probs(self.amp.dense(self._decoder_ids(tok)), tok)[0]

    def conditionals(self, x):
        """Per-site `log P(s_i | s_<i)`, `(n_sites, 2)` (columns: down, up), from
        the token distribution by marginalising over the rest of each token."""
        lp = self.patch_log_probs(x)  # (T, V)
        k = self.patch_size
        n_vals = 2**k
        bits = ((np.arange(n_vals)[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.int32)  # (V, K)
        xb = (jnp.asarray(x).reshape(self.n_tokens, k) > 0).astype(jnp.int32)  # (T, K)
        rows = []
        for o in range(k):
            prefix_ok = jnp.all(jnp.asarray(bits[None, :, :o]) == xb[:, None, :o], axis=-1)  # (T, V)
            m = [
                jax.nn.logsumexp(jnp.where(prefix_ok & jnp.asarray(bits[:, o] == s), lp, -jnp.inf), axis=-1)
                for s in (0, 1)
            ]
            m = jnp.stack(m, axis=-1)  # (T, 2)
            rows.append(m - jax.nn.logsumexp(m, axis=-1, keepdims=True))
        return jnp.stack(rows, axis=1).reshape(self.n_sites, 2)

    def sample(self, key, n):
        t_max = self.n_tokens

        def one(key):
            def body(t, carry):
                tok, key = carry
                key, sub = jax.random.split(key)
                lp = self._log_probs(self.amp.dense(self._decoder_ids(tok[None])), tok[None])[0]
                v = jax.random.categorical(sub, lp[t]).astype(jnp.int32)
                return tok.at[t].set(v), key

            tok, _ = jax.lax.fori_loop(0, t_max, body, (jnp.zeros((t_max,), jnp.int32), key))
            return self.spins(tok)

        return jax.vmap(one)(jax.random.split(key, n))


def _check_capacity(capacity, n_layers, phase_layers):
    if capacity is None:
        return None
    try:
        amp, ph = capacity
        amp = tuple(int(c) for c in amp)
        ph = tuple(int(c) for c in ph)
    except (TypeError, ValueError):
        raise ValueError(
            f"capacity must be None or [[{n_layers + 1} ints], [{phase_layers + 1 if phase_layers else 0} ints]], "
            f"got {capacity!r}"
        ) from None
    if len(amp) != n_layers + 1 or len(ph) != (phase_layers + 1 if phase_layers else 0) or min(amp + ph, default=1) < 1:
        raise ValueError(
            f"capacity needs {n_layers + 1} positive amplitude entries and "
            f"{phase_layers + 1 if phase_layers else 0} phase entries, got {capacity!r}"
        )
    return (amp, ph if phase_layers else None)


def _replace_capacity(model, capacity):
    new = jax.tree_util.tree_map(lambda a: a, model)
    object.__setattr__(new, "capacity", capacity)
    return new
