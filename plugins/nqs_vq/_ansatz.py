"""VQ-NQS transformer wave function (Sharir et al. 2022, Section 3): an autoregressive
decoder for the amplitude, a bidirectional encoder for the phase, vector
quantisers after every self-attention module. The transformer stacks are in
`_network.py`, the compressed evaluation of many nearly equal configurations
(Section 3.2) in `_compressed.py`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAutoregressiveAnsatz, AbstractConnectedAnsatz, AbstractDiscreteSpace, AbstractSpace

from ._compressed import _check_capacity, _replace_capacity, compressed
from ._network import _init_net, _Net

_MASKED = -1e30  # log-weight of patch values that break the fixed magnetisation


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
        amp, overflow, counts = compressed(self.amp, self._decoder_ids(tok), cap_a)
        ph = None
        if self.phase is not None:
            ph, over_p, counts_p = compressed(self.phase, tok, cap_p)
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
