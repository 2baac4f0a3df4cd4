"""Distillation of a trained baseline into a VQ-NQS (Sharir et al. 2022, Section 4), and
codebook maintenance (initialisation from data, dead-code removal)."""

from __future__ import annotations

import time
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from ._quantizer import code_usage, replace_dead_codes
from ._ansatz import VQTransformer


@eqx.filter_jit
def _quantizer_inputs(model, xs):
    return model.quantizer_inputs(xs)


@eqx.filter_jit
def _mismatch(student, teacher, xs):
    a = jnp.real(jax.vmap(student)(xs))
    b = jnp.real(jax.vmap(teacher)(xs))
    return jnp.mean(jnp.square(a - b))


def _nets(model):
    return [model.amp] + ([model.phase] if model.phase is not None else [])


def _set_codebooks(model: VQTransformer, books: list) -> VQTransformer:
    is_none = lambda x: x is None  # noqa: E731  (a baseline's codebooks are None)
    model = eqx.tree_at(lambda m: m.amp.codebook, model, books[0], is_leaf=is_none)
    if len(books) > 1:
        model = eqx.tree_at(lambda m: m.phase.codebook, model, books[1], is_leaf=is_none)
    return model


def revive_dead_codes(model: VQTransformer, xs: Array, key: PRNGKeyArray, min_count: int = 1):
    """Dead-code removal over every quantiser of `model`: codes chosen fewer than
    `min_count` times on the configurations `xs` `(M, n_sites)` are moved onto
    randomly chosen quantiser inputs of that batch.

    **Returns:** `(model, n_replaced)`.
    """
    if model.amp.codebook is None:
        raise ValueError("revive_dead_codes: the model has no quantisers (n_codes = 0)")
    books, total = [], 0
    for net, (ins, idx) in zip(_nets(model), _quantizer_inputs(model, xs)):
        layers = []
        for layer in range(net.n_layers):
            key, sub = jax.random.split(key)
            cb = net.codebook[layer]
            usage = code_usage(idx[layer], cb.shape[1])
            new, n = replace_dead_codes(cb, ins[layer], usage, sub, min_count)
            layers.append(new)
            total += n
        books.append(jnp.stack(layers))
    return _set_codebooks(model, books), total


def vq_from_baseline(
    baseline: VQTransformer, xs: Array, key: PRNGKeyArray, n_codes: int = 64, n_code_heads: int = 1
) -> VQTransformer:
    """A VQ-NQS with the weights of a trained `baseline` (`n_codes = 0`) and new
    multi-head codebooks (`n_code_heads` x `n_codes`) initialised from randomly
    chosen attention outputs of the baseline on the configurations `xs`.

    **Returns:** the `VQTransformer` to distil (same architecture plus quantisers).
    """
    if baseline.amp.codebook is not None:
        raise ValueError("vq_from_baseline: `baseline` already has quantisers")
    if n_codes < 1 or baseline.amp.d_model % n_code_heads:
        raise ValueError(f"need n_codes >= 1 and d_model divisible by n_code_heads, got {n_codes}, {n_code_heads}")
    books = []
    for net, (ins, _) in zip(_nets(baseline), _quantizer_inputs(baseline, xs)):
        d = net.d_model
        key, sub = jax.random.split(key)
        pick = jax.random.randint(sub, (net.n_layers, n_code_heads, n_codes), 0, ins.shape[1])
        segs = ins.reshape(net.n_layers, ins.shape[1], n_code_heads, d // n_code_heads)
        layer = jnp.arange(net.n_layers)[:, None, None]
        head = jnp.arange(n_code_heads)[None, :, None]
        books.append(segs[layer, pick, head])  # (L, H, Q, d/H)
    return _set_codebooks(baseline, books)


def distill(
    student: VQTransformer,
    teacher,
    key: PRNGKeyArray,
    n_steps: int = 500,
    n_samples: int = 512,
    learning_rate: float = 1e-3,
    revive_every: int = 50,
    revive_until: int | None = None,
    callback: Callable[[int, float], None] | None = None,
):
    """Train `student` to reproduce the log-amplitudes of `teacher` (Sharir et al. 2022, Section 4).

    Each step samples `n_samples` configurations from the teacher (exactly, it
    must be autoregressive) and takes an Adam step on the L2 loss
    `mean_x (Re log psi_student(x) - Re log psi_teacher(x))^2`; every
    `revive_every` steps dead codes are moved onto current quantiser inputs.

    **Arguments:**

    - `student`: the VQ-NQS to train (e.g. from `vq_from_baseline`).
    - `teacher`: a trained autoregressive ansatz (`sample`, `__call__`).
    - `key`: PRNG key.
    - `n_steps`, `n_samples`, `learning_rate`, `revive_every`: as above
      (`revive_every = 0` switches dead-code removal off).
    - `revive_until`: no dead-code removal after this step (default: `n_steps // 2`).
      Moving codes changes the function, so the last steps run without it.
    - `callback`: called as `callback(step, loss)` after every step.

    **Returns:** `(student, losses)` with the loss of every step (NumPy array).
    """
    if n_steps < 0 or n_samples < 1:
        raise ValueError(f"need n_steps >= 0 and n_samples >= 1, got {n_steps}, {n_samples}")
    opt = optax.adam(learning_rate)
    params, static = eqx.partition(student, eqx.is_inexact_array)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = opt.init(params)

    @eqx.filter_jit
    def targets(key):
        xs = teacher.sample(key, n_samples)
        return xs, jnp.real(jax.vmap(teacher)(xs))

    @eqx.filter_jit
    def step(params, opt_state, xs, ys):
        def loss_fn(p):
            model = eqx.combine(p, static)
            return jnp.mean(jnp.square(jnp.real(jax.vmap(model)(xs)) - ys))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int counters
            updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    until = n_steps // 2 if revive_until is None else revive_until
    losses = []
    for i in range(n_steps):
        key, k_s, k_r = jax.random.split(key, 3)
        xs, ys = targets(k_s)
        params, opt_state, loss = step(params, opt_state, xs, ys)
        losses.append(float(loss))
        if revive_every and (i + 1) % revive_every == 0 and i + 1 < until:
            model, _ = revive_dead_codes(eqx.combine(params, static), xs, k_r)
            params = eqx.filter(model, eqx.is_inexact_array)
        if callback is not None:
            callback(i, losses[-1])
    return eqx.combine(params, static), np.asarray(losses)


def log_amplitude_mismatch(student, teacher, xs: Array) -> float:
    """`mean_x (Re log psi_student(x) - Re log psi_teacher(x))^2` on `xs`."""
    return float(_mismatch(student, teacher, xs))


@eqx.filter_jit
def _unique_counts(model, xs, conn):
    return jax.vmap(model.unique_counts)(xs, conn)


def calibrate_capacity(model: VQTransformer, system, xs: Array, margin: float = 0.25, multiple: int = 8):
    """Unique slots per stage for `log_psi_connected`, from the measured unique
    counts of the connected configurations of the samples `xs`.

    **Returns:** `(model_with_capacity, counts)`: capacity = the maximum count
    times `1 + margin`, rounded up to a multiple of `multiple`, at most `B * T`;
    `counts` is the `(M, n_stages)` array of measured unique counts.
    """
    conn = jax.vmap(system.connected)(xs)[0]
    counts = np.asarray(_unique_counts(model, xs, conn))
    full = (conn.shape[1] + 1) * model.n_tokens
    cap = np.minimum(full, np.ceil(counts.max(axis=0) * (1.0 + margin) / multiple) * multiple).astype(int)
    n_amp = model.amp.n_layers + 1
    return model.with_capacity((tuple(cap[:n_amp]), tuple(cap[n_amp:]))), counts


def timed(f, *args, repeats: int = 3) -> float:
    """Best-of-`repeats` wall time of `jax.block_until_ready(f(*args))` after one warm-up call."""
    jax.block_until_ready(f(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best
