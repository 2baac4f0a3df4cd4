"""Monte Carlo statistics with honest error bars."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


class Stats(eqx.Module):
    """Summary of correlated Monte Carlo data from several Markov chains.

    **Fields:**

    - `mean`: sample mean (complex for complex data).
    - `error_of_mean`: one standard error, corrected for autocorrelation,
      `sqrt(variance * (1 + 2 tau_corr) / N)`, or from the spread of chain means when
      that is larger (chains that have not mixed).
    - `variance`: `mean |x - mean|^2`.
    - `tau_corr`: integrated autocorrelation time minus 1/2 (0 for independent
      samples), in units of samples along a chain, with Sokal's automatic window.
    - `R_hat`: split-chain Gelman-Rubin statistic (about 1 when chains agree;
      Gelman et al. 2013, Bayesian Data Analysis, 3rd ed., eq. 11.4 on split
      chains). NaN when undefined: fewer than 4 samples per chain (8 with one
      chain), or no variance within the chains (frozen chains, a constant
      observable), never 0; printed as `nan`.

    Prints like `-20.404 ± 0.003 [σ²=0.051, τ=0.4, R̂=1.0020]`.
    """

    mean: Array
    error_of_mean: Array
    variance: Array
    tau_corr: Array
    R_hat: Array

    def __repr__(self) -> str:
        mean = complex(self.mean)
        err = float(self.error_of_mean)
        digits = _digits(err)
        if abs(mean.imag) > 0.0 and abs(mean.imag) >= err:
            m = f"{mean.real:.{digits}f}{mean.imag:+.{digits}f}j"
        else:
            m = f"{mean.real:.{digits}f}"
        return (
            f"{m} ± {err:.{digits}f} [σ²={float(self.variance):.4g}, "
            f"τ={float(self.tau_corr):.2g}, R̂={_format_rhat(float(self.R_hat))}]"
        )

    __str__ = __repr__

    def to_dict(self) -> dict[str, float]:
        mean = complex(self.mean)
        out = {
            "mean": mean.real,
            "error": float(self.error_of_mean),
            "variance": float(self.variance),
            "tau_corr": float(self.tau_corr),
            "R_hat": float(self.R_hat),
        }
        if mean.imag != 0.0:
            out["mean_imag"] = mean.imag
        return out


def _format_rhat(r: float) -> str:
    """`1.0020`, `nan` (undefined), `5.3e+11` (far from 1)."""
    return f"{r:.4f}" if not math.isfinite(r) or abs(r) < 100 else f"{r:.3g}"


def _digits(err: float) -> int:
    if not math.isfinite(err) or err <= 0:
        return 6
    return int(min(12, max(1, 1 - math.floor(math.log10(err)))))


def _autocorrelation(x: Array) -> Array:
    """Normalised autocorrelation along the last axis, averaged over chains.
    `x` has shape `(n_chains, n)` and is real."""
    n = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    f = jnp.fft.rfft(xc, n=2 * n, axis=-1)
    acov = jnp.fft.irfft(f * jnp.conj(f), axis=-1)[..., :n] / n
    acov = acov.mean(axis=0)
    return acov / jnp.where(acov[0] > 0, acov[0], 1.0)


def _tau_sokal(rho: Array, c: float = 5.0) -> Array:
    """Integrated autocorrelation time minus 1/2 with Sokal's window: the
    smallest W with W >= c * tau_int(W)."""
    n = rho.shape[0]
    tau_int = 0.5 + jnp.cumsum(rho[1:])  # tau_int(W) for W = 1..n-1
    w = jnp.arange(1, n, dtype=rho.dtype)
    ok = w >= c * tau_int
    idx = jnp.where(ok.any(), jnp.argmax(ok), n - 2)
    return jnp.maximum(tau_int[idx] - 0.5, 0.0)


#: Split R-hat is undefined (NaN) when the within-chain variance is below this
#: squared times the mean square of the data (rounding noise of frozen chains).
_RHAT_RTOL = 1e-12


def _split_rhat(x: Array) -> Array:
    n_chains, n = x.shape
    if n < 4:
        return jnp.array(jnp.nan)
    half = n // 2
    parts = jnp.concatenate([x[:, :half], x[:, half : 2 * half]], axis=0)
    m, k = parts.shape
    means = parts.mean(axis=1)
    w = parts.var(axis=1, ddof=1).mean()
    b = k * means.var(ddof=1)
    var_plus = (k - 1) / k * w + b / k
    # undefined (NaN, never 0) when the chains do not vary: frozen chains, a
    # constant observable, or a within-chain variance at the rounding level
    undefined = ~(w > _RHAT_RTOL**2 * jnp.mean(parts**2))
    return jnp.where(undefined, jnp.nan, jnp.sqrt(var_plus / jnp.where(undefined, 1.0, w)))


@jax.jit  # eagerly, its few dozen small operations would each compile on first use
def statistics(data: Array) -> Stats:
    """Statistics of Monte Carlo data shaped `(n_chains, n_per_chain)` (a 1D
    array is read as one chain). Compiled (`jax.jit`) once per shape; works
    inside other compiled functions.

    The error of the mean uses the integrated autocorrelation time averaged
    over chains; with several chains it is never smaller than the error
    estimated from the scatter of the chain means (a blocking estimate with one
    block per chain), so unmixed chains are not hidden.
    """
    data = jnp.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    data = data.reshape(data.shape[0], -1)
    n_chains, n = data.shape
    total = n_chains * n
    mean = data.mean()
    variance = jnp.mean(jnp.abs(data - mean) ** 2)
    real = jnp.real(data)
    if n >= 4:
        tau = _tau_sokal(_autocorrelation(real))
    else:
        tau = jnp.array(0.0, dtype=real.dtype)
    err_tau = jnp.sqrt(jnp.var(real) * (1.0 + 2.0 * tau) / total)
    if n_chains > 1:
        err_chains = jnp.sqrt(real.mean(axis=1).var(ddof=1) / n_chains)
        err = jnp.maximum(err_tau, err_chains) if n >= 4 else err_chains
        rhat = _split_rhat(real)
    else:
        err = err_tau
        rhat = _split_rhat(real) if n >= 8 else jnp.array(jnp.nan)
    return Stats(mean=mean, error_of_mean=err, variance=variance, tau_corr=tau, R_hat=rhat)


def blocking_error(data, min_blocks: int = 16) -> float:
    """Flyvbjerg-Petersen blocking estimate of the error of the mean of one
    long series (NumPy, not jitted): halves the series repeatedly and returns
    the largest error seen while at least `min_blocks` blocks remain."""
    x = np.asarray(data, dtype=float).ravel()
    best = x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else float("nan")
    while x.size // 2 >= min_blocks:
        x = 0.5 * (x[: 2 * (x.size // 2) : 2] + x[1 : 2 * (x.size // 2) : 2])
        best = max(best, x.std(ddof=1) / math.sqrt(x.size))
    return best

