"""Estimators: samples -> statistics, gradients, log-derivative matrices.

The protocol (`AbstractEstimator`, `Estimate`) and the variational Monte Carlo
energy estimator (`EnergyEstimator`, `log_derivatives`)."""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from ._ansatz import AbstractAnsatz
from ._distributed import concat_over_ranks, n_ranks, sum_over_ranks
from ._samples import Samples, is_weighted, sample_array, weighted_statistics
from ._stats import Stats, statistics
from ._system import AbstractSystem
from ._tree import HolomorphicLayout, batch_apply, parameters, real_ravel


class Estimate(eqx.Module):
    """What an estimator returns for one set of samples.

    **Fields:**

    - `stats`: `Stats` of the estimated quantity (the energy for VMC).
    - `local_values`: the per-sample values, shape `(n_chains, n_per_chain)`.
    """

    stats: Stats
    local_values: Array


class AbstractEstimator(eqx.Module):
    """Turns samples into an `Estimate` and into the ingredients of an update.

    `gradient` returns the gradient of the estimated loss with respect to the
    parameters as a pytree shaped like them (complex leaves carry
    `d/dRe + 1j d/dIm`). `natural_gradient_data` returns the centred
    log-derivative matrix `Y` of shape `(M, P)` (one row per sample, `P` real
    parameters, divided by `sqrt(M)`) and the centred residual vector `eps`
    (`(M,)`) so that the force is `F = Re[Y^T eps]` and the quantum geometric
    tensor `S = Re[Y^H Y]` (Rende et al. 2024, Eqs. 5-8).

    `samples` is what the sampler returned: a bare array of equally weighted
    draws, or `nqs_core.Samples` with weights, which an estimator must honour
    (averages `sum_i w_i f(x_i)` instead of `mean_i f(x_i)`; `Y` and `eps`
    rows scaled by `sqrt(w_i)` instead of `1 / sqrt(M)`).

    An estimator with a `chunk_size` field (at most this many configurations
    evaluated at once, `None`: all together) has `nqs_core.measure` evaluate
    the observables with the same bound (`measure_chunk_size`).

    Estimators whose loss depends on the optimisation step (an annealing
    schedule, say) also implement the `AbstractScheduledEstimator` capability.
    """

    @abc.abstractmethod
    def __call__(self, ansatz: AbstractAnsatz, system: AbstractSystem, samples: Array | Samples) -> Estimate:
        raise NotImplementedError

    @abc.abstractmethod
    def gradient(self, ansatz: AbstractAnsatz, samples: Array | Samples, estimate: Estimate):
        raise NotImplementedError

    @abc.abstractmethod
    def natural_gradient_data(
        self, ansatz: AbstractAnsatz, samples: Array | Samples, estimate: Estimate
    ) -> tuple[Array, Array]:
        raise NotImplementedError

class AbstractScheduledEstimator(AbstractEstimator):
    """Capability: an estimator whose loss depends on the optimisation step
    (an annealing schedule, say). The VMC driver calls `at_step` at every step
    with the current step number (a traced scalar) and adds `step_info` to the
    step's log record (`scheduled`)."""

    @abc.abstractmethod
    def at_step(self, step: Array) -> "AbstractScheduledEstimator":
        """The estimator to use at optimisation step `step`."""
        raise NotImplementedError

    @abc.abstractmethod
    def step_info(self) -> dict[str, Array]:
        """Scalars to log for the current step (e.g. a temperature)."""
        raise NotImplementedError


def measure_chunk_size(estimator: AbstractEstimator) -> int | None:
    """The `chunk_size` field of an estimator (the memory bound `nqs_core.measure`
    applies to the observables), `None` when it declares none. A field, not a
    protocol member, so that estimators without one stay valid."""
    names = {f.name for f in dataclasses.fields(estimator)}
    return estimator.chunk_size if "chunk_size" in names else None


def scheduled(estimator: AbstractEstimator, step: Array) -> tuple[AbstractEstimator, dict[str, Array]]:
    """The estimator to use at optimisation step `step` and the scalars it logs
    (itself and none unless it is an `AbstractScheduledEstimator`)."""
    if isinstance(estimator, AbstractScheduledEstimator):
        estimator = estimator.at_step(step)
        return estimator, estimator.step_info()
    return estimator, {}


def _flat(samples, ndim):
    """`(n_chains, n_per_chain, *shape)` -> `(M, *shape)` (of `Samples.x` for `Samples`)."""
    samples = sample_array(samples)
    return samples.reshape((-1,) + samples.shape[samples.ndim - ndim :])


def _sum_over_chunks(f, xs, chunk_size):
    """`sum_i f(xs_i-chunk)` where f maps a chunk to a pytree; chunks bound memory."""
    n = jax.tree.leaves(xs)[0].shape[0]
    if chunk_size is None or chunk_size >= n:
        return f(xs)
    n_chunks = -(-n // chunk_size)
    pad = n_chunks * chunk_size - n

    def pad_and_split(a):
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a
        return a.reshape((n_chunks, chunk_size) + a.shape[1:])

    chunks = jax.tree.map(pad_and_split, xs)
    # zero-padded rows must carry zero weight: f receives them with zero coefficients
    parts = jax.lax.map(f, chunks)
    return jax.tree.map(lambda p: p.sum(axis=0), parts)


class EnergyEstimator(AbstractEstimator):
    """Local energies `E_loc(x) = <x|H|psi>/<x|psi>`, their statistics, the energy
    gradient and the centred log-derivative matrix.

    **Arguments:**

    - `chunk_size`: evaluate at most this many samples at once (memory bound for
      large models); `None` evaluates all together.
    - `clip_local_energy`: if set to `k`, the gradient and the natural-gradient
      data use local energies clipped to `median +- k * mean|E_loc - median|`
      (real and imaginary parts separately, medians over all samples and ranks).
      A rare sample near a node of `psi` with a huge `E_loc` then cannot drive a
      destructive step. The reported energy and its statistics are never
      clipped; the gradient is slightly biased. Typical `k`: 5. `None`: off.

    Under MPI every rank holds its own samples; means, statistics and the
    gradient are reduced over ranks, and `natural_gradient_data` returns this
    rank's rows of the globally centred matrices.

    Weighted samples (`nqs_core.Samples`, e.g. the `full_sum` sampler's exact
    sum or an importance sampler) are honoured: the energy is `sum_i w_i
    E_loc(x_i)` with `nqs_core.weighted_statistics`, the gradient `2 Re sum_i
    w_i (E_loc - E)^* O_i` and the natural-gradient rows are scaled by
    `sqrt(w_i)`; `clip_local_energy` applies to equally weighted samples only.

    The gradient is `dE/dtheta = 2 Re <(E_loc - E)^* O>` with
    `O = d log psi / d theta` for every real parameter (complex parameters count
    as two real ones), computed with one reverse pass over the batch.
    """

    chunk_size: int | None = None
    clip_local_energy: float | None = None

    def __check_init__(self):
        k = self.clip_local_energy
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0):
            raise ValueError(f"clip_local_energy must be a positive number or None, got {k!r}")

    def _for_gradient(self, eloc, mean):
        """`(E_loc - <E_loc>)` for the gradient, clipped if requested."""
        if self.clip_local_energy is None:
            return eloc - mean
        k = float(self.clip_local_energy)
        every = concat_over_ranks(eloc)

        def clip(x, x_all):
            med = jnp.median(x_all)
            width = k * jnp.mean(jnp.abs(x_all - med))
            return jnp.clip(x, med - width, med + width), jnp.clip(x_all, med - width, med + width)

        if jnp.iscomplexobj(eloc):
            re, re_all = clip(jnp.real(eloc), jnp.real(every))
            im, im_all = clip(jnp.imag(eloc), jnp.imag(every))
            clipped, clipped_all = jax.lax.complex(re, im), jax.lax.complex(re_all, im_all)
        else:
            clipped, clipped_all = clip(eloc, every)
        return clipped - jnp.mean(clipped_all)

    def __call__(self, ansatz, system, samples):
        return _estimate(self, ansatz, system, samples)

    def _estimate(self, ansatz, system, samples):
        ndim = len(system.space.shape)
        flat = _flat(samples, ndim)
        x = sample_array(samples)
        # batched: discrete Hamiltonians evaluate only the non-zero connected elements
        eloc = system.local_energies(ansatz, flat, chunk_size=self.chunk_size)
        eloc = eloc.reshape(x.shape[: x.ndim - ndim])
        if is_weighted(samples):
            stats = weighted_statistics(samples.weights.reshape(-1), eloc.reshape(-1), exact=samples.exact)
            if samples.exact:  # <H> of a Hermitian H is real: drop the rounding-level imaginary part
                stats = eqx.tree_at(lambda s: s.mean, stats, jnp.real(stats.mean))
            return Estimate(stats=stats, local_values=eloc)
        # under MPI the statistics see every rank's chains (identical on all ranks)
        return Estimate(stats=statistics(concat_over_ranks(eloc)), local_values=eloc)

    def gradient(self, ansatz, samples, estimate):
        return _gradient(self, ansatz, samples, estimate)

    def _centred(self, samples, estimate):
        """Weighted samples: `(flat samples, w, E_loc - E)`, the last 0 where `w = 0`."""
        eloc = estimate.local_values.reshape(-1)
        flat = _flat(samples, samples.x.ndim - estimate.local_values.ndim)
        w = samples.weights.reshape(-1)
        d = jnp.where(w > 0, eloc - estimate.stats.mean.astype(eloc.dtype), jnp.zeros((), eloc.dtype))
        return flat, w, d

    def _gradient(self, ansatz, samples, estimate):
        if is_weighted(samples):
            flat, w, d = self._centred(samples, estimate)
            coeff = 2.0 * w.astype(d.dtype) * jnp.conj(d)
        else:
            eloc = estimate.local_values.reshape(-1)
            x = sample_array(samples)
            flat = _flat(x, x.ndim - estimate.local_values.ndim)
            m = eloc.shape[0] * n_ranks()  # samples over all ranks
            coeff = 2.0 * jnp.conj(self._for_gradient(eloc, estimate.stats.mean)) / m
        params, static = parameters(ansatz)
        vec, unravel = real_ravel(params)

        def chunk_grad(batch):
            xs, c = batch

            def loss(v):
                model = eqx.combine(unravel(v), static)
                return jnp.sum(jnp.real(c * jax.vmap(model)(xs)))

            return jax.grad(loss)(vec)

        g = sum_over_ranks(_sum_over_chunks(chunk_grad, (flat, coeff), self.chunk_size))
        return unravel(g)

    def natural_gradient_data(self, ansatz, samples, estimate):
        if is_weighted(samples):
            flat, w, d = self._centred(samples, estimate)
            jac = log_derivatives(ansatz, flat, self.chunk_size)
            o_mean = sum_over_ranks(jnp.sum(w[:, None].astype(jac.dtype) * jac, axis=0))
            sqrt_w = jnp.sqrt(w)
            return sqrt_w[:, None].astype(jac.dtype) * (jac - o_mean), -2.0 * sqrt_w.astype(d.dtype) * jnp.conj(d)
        eloc = estimate.local_values.reshape(-1)
        x = sample_array(samples)
        flat = _flat(x, x.ndim - estimate.local_values.ndim)
        m = eloc.shape[0] * n_ranks()
        jac = log_derivatives(ansatz, flat, self.chunk_size)
        o_mean = sum_over_ranks(jnp.sum(jac, axis=0)) / m
        # rows of this rank's samples, centred with the means over all ranks
        y = (jac - o_mean) / jnp.sqrt(m)
        eps = -2.0 * jnp.conj(self._for_gradient(eloc, estimate.stats.mean)) / jnp.sqrt(m)
        return y, eps


# Compiled entry points: called eagerly (a script, `nqs_core.measure`), the
# estimator's many small operations would otherwise each compile on first use;
# inside a compiled step they are inlined.
@eqx.filter_jit
def _estimate(estimator, ansatz, system, samples):
    return estimator._estimate(ansatz, system, samples)


@eqx.filter_jit
def _gradient(estimator, ansatz, samples, estimate):
    return estimator._gradient(ansatz, samples, estimate)


def log_derivatives(ansatz, xs, chunk_size=None, scale=None):
    """`O[i, k] = d log psi(x_i) / d theta_k` for every real parameter `k`
    (complex parameters as two real ones, in `real_ravel` order).

    With `scale` (a real vector, one entry per row) the rows come scaled,
    `scale_i O[i, k]`: the derivatives of `scale_i log psi(x_i)`, so that the
    scaling is applied where the derivatives are made, not in another pass
    over the `n x P` matrix.

    For a holomorphic ansatz (`AbstractAnsatz.holomorphic`) one complex
    derivative per complex parameter is computed (one reverse pass instead of
    two) and the imaginary part's column is `i` times the real part's
    (`HolomorphicLayout.real_columns`).

    **Returns:** shape `(n, P)`, complex when `log psi` is complex, else real.
    """
    params, static = parameters(ansatz)
    if _holomorphic(ansatz):
        return _holomorphic_log_derivatives(params, static, xs, chunk_size, scale)
    vec, unravel = real_ravel(params)

    def logpsi(v, x, c):
        out = eqx.combine(unravel(v), static)(x)
        if c is None:
            return out
        c = c.astype(out.real.dtype)
        return jax.lax.complex(c * jnp.real(out), c * jnp.imag(out)) if jnp.iscomplexobj(out) else c * out

    out = jax.eval_shape(lambda v, x: logpsi(v, x, None), vec, xs[0])
    if jnp.iscomplexobj(out):

        def row(batch):
            def re_im(v):
                out = logpsi(v, *batch)
                return jnp.stack([jnp.real(out), jnp.imag(out)])

            jr, ji = jax.jacrev(re_im)(vec)
            return jax.lax.complex(jr, ji)

    else:

        def row(batch):
            return jax.grad(logpsi)(vec, *batch)

    return batch_apply(row, (xs, scale), chunk_size)


def _holomorphic(ansatz) -> bool:
    return isinstance(ansatz, AbstractAnsatz) and ansatz.holomorphic


def _holomorphic_log_derivatives(params, static, xs, chunk_size, scale):
    layout = HolomorphicLayout(params)
    vec, unravel = ravel_pytree(params)

    def row(batch):
        x, c = batch

        def logpsi(v):
            out = eqx.combine(unravel(v), static)(x)
            return out if c is None else c.astype(out.dtype) * out

        return layout.real_columns(jax.grad(logpsi, holomorphic=True)(vec))

    return batch_apply(row, (xs, scale), chunk_size)


def mean_log_derivative(ansatz, xs, weights, chunk_size=None):
    """`sum_i w_i O[i, :]` (the `O` of `log_derivatives`) by one reverse-mode
    pass through `sum_i w_i log psi(x_i)` (two for a complex `log psi`),
    without forming `O`. Summed over this rank's rows only.

    **Returns:** shape `(P,)`, complex when `log psi` is complex, else real.
    """
    params, static = parameters(ansatz)
    if _holomorphic(ansatz):
        layout = HolomorphicLayout(params)
        cvec, cunravel = ravel_pytree(params)

        def holo_chunk(batch):
            x, w = batch

            def total(v):
                lp = jax.vmap(eqx.combine(cunravel(v), static))(x)
                return jnp.sum(w.astype(lp.dtype) * lp)

            return layout.real_columns(jax.grad(total, holomorphic=True)(cvec))

        return _sum_over_chunks(holo_chunk, (xs, weights), chunk_size)
    vec, unravel = real_ravel(params)
    out = jax.eval_shape(eqx.combine(unravel(vec), static), xs[0])

    def chunk(batch):
        x, w = batch

        def sums(v):
            lp = jax.vmap(eqx.combine(unravel(v), static))(x)
            w_ = w.astype(lp.real.dtype)
            return jnp.stack([jnp.sum(w_ * jnp.real(lp)), jnp.sum(w_ * jnp.imag(lp))])

        if not jnp.iscomplexobj(out):
            return jax.grad(lambda v: sums(v)[0])(vec)
        jr, ji = jax.jacrev(sums)(vec)
        return jax.lax.complex(jr, ji)

    return _sum_over_chunks(chunk, (xs, weights), chunk_size)
