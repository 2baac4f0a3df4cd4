"""Deep Vision Transformer with translation-invariant factored attention (Rende et al. 2024, Eq. 11, Algorithm 1)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAnsatz, AbstractBravaisLattice, AbstractLattice, AbstractSpace

from ._common import input_encoding, log_cosh

_LN_EPS = 1e-6


def _layer_norm(x, scale, bias):
    """LayerNorm over the last axis with learnable `scale` and `bias`."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + _LN_EPS) * scale + bias


def _patch_grid(lattice: AbstractLattice, patch_size: int) -> tuple[int, int]:
    """`(L, W)` of a two-dimensional lattice, checked against `patch_size`."""
    if not isinstance(lattice, AbstractBravaisLattice) or lattice.ndim != 2 or lattice.n_basis != 1:
        raise ValueError(f"ViT needs a two-dimensional Bravais lattice with one site per cell, e.g. `square`; got {lattice!r}")
    length, width = lattice.extent
    if patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
    if length % patch_size or width % patch_size:
        raise ValueError(
            f"patch_size={patch_size} does not divide the lattice extent {length} x {width}; "
            f"choose a common divisor of {length} and {width}"
        )
    return length, width


def patch_displacements(n_rows: int, n_cols: int) -> np.ndarray:
    """Index of the periodic displacement between every pair of patches.

    Patches are numbered `p = P * n_cols + Q` on an `n_rows` x `n_cols` patch
    lattice. Entry `[i, j]` is `((P_i - P_j) mod n_rows) * n_cols + (Q_i - Q_j) mod n_cols`,
    so `alpha[mu, D[i, j]]` is an attention matrix that depends only on the
    displacement `r_i - r_j`, with periodic wrap.

    **Returns:** an `int32` NumPy array of shape `(n_p, n_p)`, `n_p = n_rows * n_cols`.
    """
    p, q = np.divmod(np.arange(n_rows * n_cols), n_cols)
    dp = (p[:, None] - p[None, :]) % n_rows
    dq = (q[:, None] - q[None, :]) % n_cols
    return (dp * n_cols + dq).astype(np.int32)


def vit_parameter_count(
    length: int,
    patch_size: int,
    n_layers: int,
    d_model: int,
    n_heads: int,
    output_norm: bool = False,
    width: int | None = None,
) -> int:
    """Number of real parameters of `ViT` (complex output parameters count twice).

    Per encoder block: two LayerNorms (`4d`), `V` and `W` with biases
    (`2(d^2 + d)`), the attention weights (`h n_p`, one vector per head indexed
    by the patch displacement) and the FFN (`d -> 2d -> d`, `4d^2 + 3d`). Plus
    the patch embedding (`b^2 d + d`), the final LayerNorm (`2d`) and the complex
    output layer (`d` units on `d` inputs with bias: `2(d^2 + d)` reals), and
    `4d` more with `output_norm=True`.

    With `b = 2, n_l = 8, d = 72, h = 12` on 10 x 10 this gives 267432 as written
    in Algorithm 1 of Rende et al. 2024, and 267720 (their Table I) with
    `output_norm=True`; see `ViT`.
    """
    width = length if width is None else width
    n_p = (length // patch_size) * (width // patch_size)
    d = d_model
    block = 4 * d + 2 * (d * d + d) + n_heads * n_p + (4 * d * d + 3 * d)
    total = n_layers * block + patch_size**2 * d + d + 2 * d + 2 * (d * d + d)
    return total + (4 * d if output_norm else 0)


class ViT(AbstractAnsatz):
    """Deep Vision Transformer wave function with factored attention (Rende et al. 2024).

    The `L x W` spin configuration is cut into `b x b` patches, giving a sequence
    of `n_p = L W / b^2` vectors of `b^2` spins. Following Algorithm 1 of Rende et al. 2024:

    1. embed: `x_i = E s_i + e` (real, `b^2 -> d`);
    2. `n_l` pre-LayerNorm encoder blocks
       `X <- X + MHFA(LN(X))`, `X <- X + FFN(LN(X))`, with the multi-head
       factored attention of Eq. (11)

       `A_{i,p} = sum_q W_{pq} sum_j alpha^{mu(q)}_{r_i - r_j} sum_r V_{qr} x_{j,r}` (+ biases of `V`, `W`),

       where head `mu(q)` owns channels `q` in its block of `d/h`, and the
       attention weights are input independent and translation invariant
       between patches (one vector of `n_p` weights per head, indexed by the
       periodic patch displacement); `FFN(x) = W_2 relu(W_1 x + c_1) + c_2`
       with hidden width `2d`;
    3. `y = LN(X)`, `z = sum_i y_i` (line 8 of Algorithm 1 writes the sum with
       upper limit `d`; it is the sum over the `n_p` patches);
    4. complex output layer: `log psi = sum_{a=1}^{d} log cosh(b_a + w_a . z)`.

    The body has real (`float64`) parameters, the output layer complex
    (`complex128`) ones. Every LayerNorm has a learnable scale and bias.

    Because the attention depends only on patch displacements and the output
    sums over patches, `log psi` is exactly invariant under translations of the
    configuration by whole patches (with the periodic wrap of the patch lattice).
    Full translation symmetry needs only the `b^2` translations inside a patch:
    wrap the ViT in `Symmetrized(symmetries="patch_translations")`.

    **Parameter count.** As written above the model has
    `n_l (4d + 2(d^2+d) + h n_p + 4d^2 + 3d) + b^2 d + d + 2d + 2(d^2+d)` real
    parameters: 267432 for `b=2, n_l=8, d=72, h=12` on 10 x 10, 288 = 4d fewer
    than the 267720 quoted by Rende et al. 2024 (Table I). The residual is `4d` for all four
    architectures of its Fig. 4 (85400, 187100, 267720, 994700), which is
    exactly one LayerNorm (scale and bias, `2d`) on each of the real and
    imaginary parts of the output pre-activations `b + W z` (as recalled, not
    re-checked, the output head of the authors' later public Flax code has
    those two LayerNorms); `output_norm=True` adds them here
    (`log psi = sum_a log cosh(LN_re(Re t_a) + i LN_im(Im t_a))`,
    `t = b + W z`), and the count then equals theirs exactly.

    **Arguments:**

    - `space`: configuration space (injected); its size must equal the number of sites.
    - `lattice`: a two-dimensional lattice with `extent = (L, W)`, e.g. `square`
      (site `i = x W + y`), injected from `[lattice]`.
    - `patch_size`: `b`; must divide `L` and `W`.
    - `n_layers`: number of encoder blocks `n_l`.
    - `d_model`: embedding dimension `d`.
    - `n_heads`: number of attention heads `h`; must divide `d`.
    - `output_norm`: LayerNorm on the real and imaginary parts of the output
      pre-activations (see above; default `False`, Algorithm 1 as printed).
    - `encoding`: the input encoding: `"value"` (default: the configuration
      values, `b^2` inputs per patch) or `"one_hot"` (one input per local state
      and site, `b^2 d_loc` per patch, for d-level sites such as spin S).
    - `key`: PRNG key (injected).

    Initialisation: LeCun normal (`std = 1/sqrt(fan_in)`) for the dense layers,
    `std = 1/sqrt(n_p)` for the attention weights, zero biases, LayerNorm scales
    one; the complex output weights have `std = 0.1/sqrt(d n_p)`, so the initial
    state is close to uniform.
    """

    embed_w: Array
    embed_b: Array
    ln1_scale: Array
    ln1_bias: Array
    v_w: Array
    v_b: Array
    alpha: Array
    w_w: Array
    w_b: Array
    ln2_scale: Array
    ln2_bias: Array
    ff1_w: Array
    ff1_b: Array
    ff2_w: Array
    ff2_b: Array
    final_scale: Array
    final_bias: Array
    out_w: Array
    out_b: Array
    out_norm_scale: Array | None
    out_norm_bias: Array | None
    displacement: Array
    extent: tuple[int, int] = eqx.field(static=True)
    patch_size: int = eqx.field(static=True)
    n_heads: int = eqx.field(static=True)
    local_states: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        lattice: AbstractLattice,
        patch_size: int = 2,
        n_layers: int = 2,
        d_model: int = 16,
        n_heads: int = 4,
        output_norm: bool = False,
        encoding: str = "value",
        *,
        key: PRNGKeyArray,
    ):
        length, width = _patch_grid(lattice, patch_size)
        n_in, self.local_states = input_encoding(space, encoding)
        channels = n_in // space.size
        if space.size != length * width:
            raise ValueError(f"inconsistent sizes: space has {space.size} sites, lattice has {length * width}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if n_heads < 1 or d_model < 1 or d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a positive multiple of n_heads={n_heads}")
        b, d, nl = patch_size, d_model, n_layers
        rows, cols = length // b, width // b
        n_p = rows * cols
        f64 = jnp.float64
        shapes = {
            "embed_w": ((b * b * channels, d), 1.0 / math.sqrt(b * b * channels)),
            "v_w": ((nl, d, d), 1.0 / math.sqrt(d)),
            "alpha": ((nl, n_heads, n_p), 1.0 / math.sqrt(n_p)),
            "w_w": ((nl, d, d), 1.0 / math.sqrt(d)),
            "ff1_w": ((nl, d, 2 * d), 1.0 / math.sqrt(d)),
            "ff2_w": ((nl, 2 * d, d), 1.0 / math.sqrt(2 * d)),
            "out_re": ((d, d), 0.1 / math.sqrt(2 * d * n_p)),
            "out_im": ((d, d), 0.1 / math.sqrt(2 * d * n_p)),
        }
        # one draw for every weight (one compilation of the generator, not one per shape)
        flat = np.asarray(jax.random.normal(key, (sum(math.prod(s) for s, _ in shapes.values()),), f64))
        w, start = {}, 0
        for name, (shape, std) in shapes.items():
            size = math.prod(shape)
            w[name] = flat[start : start + size].reshape(shape) * std
            start += size
        self.embed_w = jnp.asarray(w["embed_w"])
        self.embed_b = jnp.zeros((d,), f64)
        self.ln1_scale, self.ln1_bias = jnp.ones((nl, d), f64), jnp.zeros((nl, d), f64)
        self.v_w, self.v_b = jnp.asarray(w["v_w"]), jnp.zeros((nl, d), f64)
        self.alpha = jnp.asarray(w["alpha"])
        self.w_w, self.w_b = jnp.asarray(w["w_w"]), jnp.zeros((nl, d), f64)
        self.ln2_scale, self.ln2_bias = jnp.ones((nl, d), f64), jnp.zeros((nl, d), f64)
        self.ff1_w, self.ff1_b = jnp.asarray(w["ff1_w"]), jnp.zeros((nl, 2 * d), f64)
        self.ff2_w, self.ff2_b = jnp.asarray(w["ff2_w"]), jnp.zeros((nl, d), f64)
        self.final_scale, self.final_bias = jnp.ones((d,), f64), jnp.zeros((d,), f64)
        self.out_w = jnp.asarray(w["out_re"] + 1j * w["out_im"])
        self.out_b = jnp.zeros((d,), jnp.complex128)
        if output_norm:
            self.out_norm_scale, self.out_norm_bias = jnp.ones((2, d), f64), jnp.zeros((2, d), f64)
        else:
            self.out_norm_scale = self.out_norm_bias = None
        self.displacement = jnp.asarray(patch_displacements(rows, cols))
        self.extent = (length, width)
        self.patch_size = b
        self.n_heads = n_heads

    @property
    def n_layers(self) -> int:
        return self.alpha.shape[0]

    @property
    def d_model(self) -> int:
        return self.embed_b.shape[0]

    def patches(self, x: Array) -> Array:
        """The `(n_p, b^2)` patch sequence of one configuration (patch `P * W/b + Q`
        holds sites `(P b + u, Q b + v)`, `u, v < b`, in row-major order)."""
        length, width = self.extent
        b = self.patch_size
        grid = x.reshape(length // b, b, width // b, b)
        return grid.transpose(0, 2, 1, 3).reshape(-1, b * b)

    def _patch_inputs(self, x: Array) -> Array:
        """`patches(x)` for the value encoding; for one-hot, the `(n_p, b^2 d_loc)`
        patches of the one-hot vectors (site-major within a patch)."""
        if self.local_states is None:
            return self.patches(x)
        length, width = self.extent
        b = self.patch_size
        onehot = (x[:, None] == jnp.asarray(self.local_states, dtype=x.dtype)).astype(x.dtype)
        grid = onehot.reshape(length // b, b, width // b, b, -1)
        return grid.transpose(0, 2, 1, 3, 4).reshape(length // b * (width // b), -1)

    def __call__(self, x):
        h = self.n_heads
        d = self.d_model
        xs = self._patch_inputs(x.reshape(-1).astype(jnp.float64)) @ self.embed_w + self.embed_b

        def block(carry, p):
            ln1s, ln1b, vw, vb, alpha, ww, wb, ln2s, ln2b, f1w, f1b, f2w, f2b = p
            v = (_layer_norm(carry, ln1s, ln1b) @ vw + vb).reshape(-1, h, d // h)
            att = alpha[:, self.displacement]  # (h, n_p, n_p): alpha^mu_{r_i - r_j}
            mixed = jnp.einsum("mij,jmc->imc", att, v).reshape(-1, d)
            carry = carry + mixed @ ww + wb
            hidden = jax.nn.relu(_layer_norm(carry, ln2s, ln2b) @ f1w + f1b)
            return carry + hidden @ f2w + f2b, None

        layers = (
            self.ln1_scale, self.ln1_bias, self.v_w, self.v_b, self.alpha, self.w_w, self.w_b,
            self.ln2_scale, self.ln2_bias, self.ff1_w, self.ff1_b, self.ff2_w, self.ff2_b,
        )  # fmt: skip
        xs, _ = jax.lax.scan(block, xs, layers)
        z = jnp.sum(_layer_norm(xs, self.final_scale, self.final_bias), axis=0)
        t = z.astype(jnp.complex128) @ self.out_w + self.out_b
        if self.out_norm_scale is not None:
            re = _layer_norm(jnp.real(t), self.out_norm_scale[0], self.out_norm_bias[0])
            im = _layer_norm(jnp.imag(t), self.out_norm_scale[1], self.out_norm_bias[1])
            t = jax.lax.complex(re, im)
        return jnp.sum(log_cosh(t))
