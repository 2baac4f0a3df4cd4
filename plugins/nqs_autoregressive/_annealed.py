"""The annealed objective of Roth 2020 (Appendix C, Eq. 24) and its optimizer."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import optax
from jaxtyping import Array

from nqs_core import AbstractScheduledEstimator, Estimate, EnergyEstimator, batch_apply, statistics


class AnnealedEstimator(AbstractScheduledEstimator):
    """Energy plus pseudo-entropy reward and magnetisation penalty (Roth 2020, Eq. 24).

    The loss is `E + T(t)/N <log |psi(s)|^2> + C <M_s^2>` with `N` the number of
    sites, `M_s = sum_i s_i / 2` the magnetisation of a sample and the
    temperature `T(t) = temperature / (1 + decay * t)` at optimisation step `t`.
    All three terms are expectations over `|psi|^2`, so the gradient has the
    usual covariance form with the local value
    `L(s) = E_loc(s) + T/N log|psi(s)|^2 + C M_s^2`. The reported statistics
    (`__call__`) are those of the energy alone.

    The step `t` is a field that the VMC driver sets at every step through
    `at_step`; the temperature is logged. Works with every preconditioner
    (plain gradient, SR, SRt, MinSR).

    **Arguments:**

    - `temperature`: `T_0` (default 1.0; 0 gives the plain energy, as the seed
      uses during iterative retraining).
    - `decay`: rate of the `1/(1 + decay t)` schedule (default 0.001).
    - `penalty`: `C` (default 10.0; zero effect on a fixed-`total_sz` space).
    - `chunk_size`: evaluate at most this many samples at once (`None`: all).
    """

    temperature: float = eqx.field(static=True)
    decay: float = eqx.field(static=True)
    penalty: float = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    step: Array

    def __init__(self, temperature: float = 1.0, decay: float = 0.001, penalty: float = 10.0, chunk_size: int | None = None):
        for name, v in (("temperature", temperature), ("decay", decay), ("penalty", penalty)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        self.temperature = float(temperature)
        self.decay = float(decay)
        self.penalty = float(penalty)
        self.chunk_size = chunk_size
        self.step = jnp.zeros((), jnp.float64)

    def current_temperature(self) -> Array:
        """`T(t)` at the stored step."""
        return self.temperature / (1.0 + self.decay * self.step)

    def at_step(self, step) -> "AnnealedEstimator":
        """A copy with the step counter set to `step` (called by the VMC driver)."""
        return eqx.tree_at(lambda e: e.step, self, jnp.asarray(step, jnp.float64))

    def step_info(self):
        """The temperature of the current step, for the log."""
        return {"temperature": self.current_temperature()}

    def _energy(self) -> EnergyEstimator:
        return EnergyEstimator(chunk_size=self.chunk_size)

    def __call__(self, ansatz, system, samples):
        return self._energy()(ansatz, system, samples)

    def local_loss(self, ansatz, samples: Array, estimate: Estimate) -> Estimate:
        """The `Estimate` of the local values `L(s)` of the annealed loss."""
        ndim = samples.ndim - estimate.local_values.ndim
        flat = samples.reshape((-1,) + samples.shape[samples.ndim - ndim :])
        n_sites = int(flat[0].size)
        log_p = 2.0 * jnp.real(batch_apply(ansatz, flat, self.chunk_size))
        mag = 0.5 * jnp.sum(flat.reshape(flat.shape[0], -1), axis=1)
        extra = self.current_temperature() / n_sites * log_p + self.penalty * mag**2
        extra = extra.reshape(estimate.local_values.shape)
        local = estimate.local_values + extra.astype(estimate.local_values.dtype)
        return Estimate(stats=statistics(local), local_values=local)

    def gradient(self, ansatz, samples, estimate):
        return self._energy().gradient(ansatz, samples, self.local_loss(ansatz, samples, estimate))

    def natural_gradient_data(self, ansatz, samples, estimate):
        return self._energy().natural_gradient_data(ansatz, samples, self.local_loss(ansatz, samples, estimate))


def adam_rsqrt(learning_rate: float = 1e-3, decay: float = 0.001, clip_norm: float | None = 1.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adam with the learning-rate decay of Roth 2020, `eta_t = eta_0 / sqrt(1 + decay t)`
    and gradient-norm clipping (Roth 2020, Appendix C: `eta_0 = 1e-3`, `decay = 0.001`,
    L2 norm clipped to 1).

    **Arguments:** `learning_rate` (`eta_0`), `decay` (0 for a constant rate),
    `clip_norm` (global-norm clip before Adam; `None`: none), `b1`, `b2`, `eps`.
    """
    if learning_rate <= 0 or decay < 0:
        raise ValueError(f"learning_rate must be positive and decay non-negative, got {learning_rate!r}, {decay!r}")

    def schedule(t):
        return learning_rate / jnp.sqrt(1.0 + decay * jnp.asarray(t, jnp.float64))

    tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
    if clip_norm is None:
        return tx
    if clip_norm <= 0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    return optax.chain(optax.clip_by_global_norm(clip_norm), tx)
