"""Permutation-equivariant neural determinant ansatz for 1D spinless fermions (Keeble et al. 2023)."""

from __future__ import annotations

import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, Scalar

import nqs_core

from ._common import as_int
from ._space import Particles1D

_ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
}
_INITS = ("ho", "random")


def hermite_polynomials(x: Array, n: int) -> Array:
    """Normalised Hermite polynomials `chi_m(x) = (2^m m! sqrt(pi))^{-1/2} H_m(x)`
    for `m = 0 .. n-1`, shape `(*x.shape, n)`.

    `chi_m(x) exp(-x^2/2)` is the `m`-th harmonic-oscillator eigenfunction
    (`hbar = m = omega = 1`); computed with the stable three-term recurrence.
    """
    c0 = jnp.full_like(x, math.pi**-0.25)
    out = [c0]
    if n > 1:
        out.append(math.sqrt(2.0) * x * c0)
    for m in range(1, n - 1):
        out.append(math.sqrt(2.0 / (m + 1)) * x * out[m] - math.sqrt(m / (m + 1)) * out[m - 1])
    return jnp.stack(out[:n], axis=-1)


def ho_orbitals(x: Array, n: int) -> Array:
    """Harmonic-oscillator eigenfunctions `phi_m(x)`, `m = 0 .. n-1`, shape `(*x.shape, n)`."""
    return hermite_polynomials(x, n) * jnp.exp(-0.5 * x * x)[..., None]


class EquivariantSlater(nqs_core.AbstractAnsatz):
    """Neural determinant wave function for `A` spinless fermions in 1D (Keeble et al. 2023).

    Permutation-equivariant layers act on the per-particle features `h_i`
    (starting from `h_i = x_i`):
    `h_i <- act(W' h_i + V sum_j h_j + b)` (the equivariant layer of Keeble et al. 2023;
    from the second layer on with a residual connection). The weights are
    stored `(in, out)` and applied as `h @ W + b`, the dense-layer pattern
    that kfac-jax's graph matcher recognises, so `KFAC` gets Kronecker-factored
    blocks for them. After `n_layers`
    layers, `n_dets` sets of `A` generalised orbitals are read out,

    `phi^d_k(x_i; {x}) = [sum_m P^d_km chi_m(x_i) + w^d_k . h_i + g^d_k] exp(-s^d_k x_i^2 / 2)`,

    with a Hermite backbone `chi_m` (normalised Hermite polynomials, `m < A`)
    and a learnable Gaussian envelope of width `s^d_k = exp(log_width)`.
    Because `phi^d_k(x_i; {x})` depends on the other particles only through
    permutation-invariant sums, swapping two particles swaps two columns of
    `[phi^d_k(x_i)]`: each determinant is antisymmetric, and so is
    `psi = sum_d det[phi^d_k(x_i)]` (summed stably as a signed log-sum-exp).

    With `init="ho"` (default) the backbone is the identity and the network
    read-out `w` of the first determinant is zero, so the first determinant
    starts as exactly the harmonic-oscillator Slater determinant (the free
    ground state, `E = A^2/2` with zero variance when `n_dets = 1`); the
    network then learns the correlations. `init="random"` draws everything at
    random (use `pretrain_to_ho` before an energy minimisation).

    The wave function of 1D fermions is real with sign changes. By default the
    output is `log |psi|` (real): local energies and log-derivatives, hence
    every VMC quantity, depend only on it. With `signed=True` the output is
    complex, `log|psi| + i pi [psi < 0]`, the convention for signs in nqs.

    **Arguments:**

    - `space`: a `Particles1D` space (fixes `A`).
    - `hidden`: latent width `H` of the equivariant layers (default 16).
    - `n_layers`: number of equivariant layers `L` (default 2).
    - `n_dets`: number of determinants `D` (default 1).
    - `activation`: `"tanh"` (default), `"softplus"`, `"silu"`, `"gelu"` or `"sigmoid"`.
    - `init`: `"ho"` (default) or `"random"`, see above.
    - `hermite_backbone`: include the Hermite-polynomial term (default `True`;
      without it the orbitals are pure network output times the envelope, as
      in Keeble et al. 2023, and need pre-training).
    - `signed`: return the complex signed `log psi` (default `False`).
    - `key`: PRNG key for the initial parameters.
    """

    layers: list
    orb_w: Array
    orb_b: Array
    backbone: Array | None
    log_width: Array
    n_particles: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    n_dets: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    init: str = eqx.field(static=True)
    signed: bool = eqx.field(static=True)

    def __init__(
        self,
        space: Particles1D,
        hidden: int = 16,
        n_layers: int = 2,
        n_dets: int = 1,
        activation: str = "tanh",
        init: str = "ho",
        hermite_backbone: bool = True,
        signed: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        if not isinstance(space, Particles1D):
            raise TypeError(f"EquivariantSlater needs a Particles1D space, got {type(space).__name__}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        for name, v in (("hermite_backbone", hermite_backbone), ("signed", signed)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} must be true or false, got {v!r}")
        a = space.n_particles
        self.n_particles = a
        self.hidden = h = as_int("hidden", hidden, 1)
        self.n_layers = as_int("n_layers", n_layers, 0)
        self.n_dets = d = as_int("n_dets", n_dets, 1)
        self.activation = activation
        self.init = init
        self.signed = signed
        dtype = space.dtype
        keys = jax.random.split(key, self.n_layers + 3)
        layers = []
        fan_in = 1
        for l in range(self.n_layers):
            kw, kv, kb = jax.random.split(keys[l], 3)
            # weights stored (in, out) and applied as `h @ w + b`: the dense-layer
            # pattern kfac-jax recognises (Kronecker-factored KFAC blocks); drawn
            # (out, in) and transposed so the initial parameters do not change
            w = (jax.random.normal(kw, (h, fan_in), dtype) / math.sqrt(fan_in)).T
            v = (jax.random.normal(kv, (h, fan_in), dtype) / math.sqrt(fan_in * a)).T
            b = 0.5 * jax.random.normal(kb, (h,), dtype)
            layers.append((w, v, b))
            fan_in = h
        self.layers = layers
        width = fan_in
        kw, kb, kp = keys[-3:]
        scale = 1.0 / math.sqrt(width)
        orb_w = scale * jax.random.normal(kw, (d, a, width), dtype)
        if init == "ho":
            # first determinant: exactly the HO Slater determinant
            orb_w = orb_w.at[0].set(0.0)
            orb_w = orb_w.at[1:].multiply(0.1)
            orb_b = jnp.zeros((d, a), dtype)
            backbone = jnp.broadcast_to(jnp.eye(a, dtype=dtype), (d, a, a))
        else:
            orb_b = 0.1 * jax.random.normal(kb, (d, a), dtype)
            backbone = jax.random.normal(kp, (d, a, a), dtype) / math.sqrt(a)
        self.orb_w = orb_w
        self.orb_b = orb_b
        self.backbone = jnp.asarray(backbone) if hermite_backbone else None
        self.log_width = jnp.zeros((d, a), dtype)

    @property
    def hermite_backbone(self) -> bool:
        return self.backbone is not None

    def features(self, x: Array) -> Array:
        """Equivariant per-particle features `h_i`, shape `(A, H)` (`(A, 1)` without layers)."""
        act = _ACTIVATIONS[self.activation]
        h = x[:, None]
        for l, (w, v, b) in enumerate(self.layers):
            pre = (h @ w + b) + jnp.sum(h, axis=0, keepdims=True) @ v
            h = act(pre) if l == 0 else h + act(pre)
        return h

    def orbitals(self, x: Array) -> Array:
        """Generalised orbitals `phi^d_k(x_i; {x})`, shape `(n_dets, A, A)` with
        index order `[d, k, i]` (orbital `k`, particle `i`)."""
        a = self.n_particles
        if x.shape != (a,):
            raise ValueError(f"EquivariantSlater expects one configuration of shape ({a},), got {x.shape}")
        h = self.features(x)  # (A, H)
        out = jnp.einsum("dkh,ih->dki", self.orb_w, h) + self.orb_b[:, :, None]
        if self.backbone is not None:
            chi = hermite_polynomials(x, a)  # (A_i, A_m)
            out = out + jnp.einsum("dkm,im->dki", self.backbone, chi)
        env = jnp.exp(-0.5 * jnp.exp(self.log_width)[:, :, None] * (x * x)[None, None, :])
        return out * env

    def log_abs_and_sign(self, x: Array) -> tuple[Scalar, Scalar]:
        """`(log |psi(x)|, sign psi(x))` of one configuration."""
        sign, logdet = jnp.linalg.slogdet(self.orbitals(x))
        if self.n_dets == 1:
            return logdet[0], sign[0]
        out, s = jax.nn.logsumexp(logdet, b=sign, return_sign=True)
        return out, s

    def __call__(self, x: Array) -> Scalar:
        logabs, sign = self.log_abs_and_sign(x)
        if not self.signed:
            return logabs
        phase = jnp.where(sign < 0, jnp.asarray(math.pi, logabs.dtype), jnp.zeros((), logabs.dtype))
        return jax.lax.complex(logabs, phase)


def pretrain_to_ho(
    ansatz: EquivariantSlater,
    key: PRNGKeyArray,
    n_steps: int = 500,
    n_points: int = 256,
    learning_rate: float = 3e-3,
    spread: float | None = None,
) -> tuple[EquivariantSlater, np.ndarray]:
    """Pre-train the orbitals of `ansatz` to the harmonic-oscillator orbitals.

    Minimises `mean_x sum_{d,k,i} (phi^d_k(x_i; {x}) - phi^HO_k(x_i))^2` with
    optax Adam, on fresh configurations `x ~ N(0, spread^2)` every step, so that
    every determinant approaches the free Slater determinant (the
    pre-training step of Keeble et al. 2023 before energy minimisation).

    **Arguments:**

    - `ansatz`: an `EquivariantSlater`.
    - `key`: PRNG key for the training points.
    - `n_steps`: Adam steps (default 500).
    - `n_points`: configurations per step (default 256).
    - `learning_rate`: Adam learning rate (default 3e-3).
    - `spread`: standard deviation of the training positions (default
      `sqrt(A)`, about the extent of the A-particle HO density).

    **Returns:** `(pretrained_ansatz, losses)` with the loss of every step.
    """
    if not isinstance(ansatz, EquivariantSlater):
        raise TypeError(f"pretrain_to_ho needs an EquivariantSlater, got {type(ansatz).__name__}")
    n_steps = as_int("n_steps", n_steps, 1)
    n_points = as_int("n_points", n_points, 1)
    a = ansatz.n_particles
    spread = math.sqrt(a) if spread is None else float(spread)
    params, static = nqs_core.parameters(ansatz)
    opt = optax.adam(learning_rate)
    return _pretrain(params, static, opt, key, n_steps, n_points, spread)


def _pretrain(params, static, opt, key, n_steps, n_points, spread):
    a = eqx.combine(params, static).n_particles

    def loss(p, xs):
        model = eqx.combine(p, static)
        phi = jax.vmap(model.orbitals)(xs)  # (n, D, A, A)
        target = jnp.swapaxes(ho_orbitals(xs, a), -1, -2)[:, None]  # (n, 1, k, i)
        return jnp.mean(jnp.sum((phi - target) ** 2, axis=(-1, -2)))

    @jax.jit
    def run(params, key):
        def step(carry, k):
            p, s = carry
            xs = spread * jax.random.normal(k, (n_points, a), dtype=jax.tree.leaves(p)[0].dtype)
            val, g = jax.value_and_grad(loss)(p, xs)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), val

        (p, _), losses = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, n_steps))
        return p, losses

    # optax's bias corrections mix int32 step counts with floats
    with jax.numpy_dtype_promotion("standard"):
        p, losses = run(params, key)
    return eqx.combine(p, static), np.asarray(losses)
