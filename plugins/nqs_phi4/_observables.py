"""Observables of lattice phi^4: the zero-momentum correlator, jackknife / blocking
errors, effective masses, configuration files and configuration generation."""

from __future__ import annotations

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import nqs_core


def correlator(phi: Array) -> Array:
    """Zero-momentum two-point function of each configuration (Bedaque and Oh 2024, Eq. 15).

    `O(t) = 1/L0 sum_y0 phibar(y0 + t) phibar(y0)` with `phibar(y0)` the spatial
    mean of time slice `y0`, for every `t = 0 .. L0 - 1` (`O(t) = O(L0 - t)`).

    **Arguments:**

    - `phi`: configurations `(..., L0, L1)`.

    **Returns:** `(..., L0)`.
    """
    phi = jnp.asarray(phi)
    pb = jnp.mean(phi, axis=-1)
    L0 = pb.shape[-1]
    return jnp.stack([jnp.mean(jnp.roll(pb, -t, axis=-1) * pb, axis=-1) for t in range(L0)], axis=-1)


def correlator_at(phi: Array, t: int) -> Array:
    """`O(t)` of Eq. 15 for one time separation `t`; `phi` is `(..., L0, L1)`."""
    pb = jnp.mean(jnp.asarray(phi), axis=-1)
    return jnp.mean(jnp.roll(pb, -t, axis=-1) * pb, axis=-1)


def _bins(x: np.ndarray, n_bins: int) -> np.ndarray:
    n = x.shape[0]
    if n_bins < 2 or n_bins > n:
        raise ValueError(f"n_bins must be between 2 and the number of samples {n}, got {n_bins}")
    size = n // n_bins
    return x[: size * n_bins].reshape((n_bins, size) + x.shape[1:]).mean(axis=1)


def jackknife(data, fn=None, n_bins: int = 100):
    """Binned jackknife estimate of `fn(mean of data)` and its error / covariance.

    **Arguments:**

    - `data`: samples `(N, ...)` in Monte Carlo order (binning absorbs autocorrelation
      shorter than `N / n_bins`).
    - `fn`: function of the mean (NumPy array -> array); identity when `None`.
    - `n_bins`: number of jackknife bins (default 100, at most `N`).

    **Returns:** `(estimate, error, covariance)`: `fn` of the full mean, the
    jackknife standard error and covariance of the outputs (flattened to 1D).
    """
    x = np.asarray(data, dtype=float)
    fn = (lambda m: m) if fn is None else fn
    b = _bins(x, min(n_bins, x.shape[0]))
    n = b.shape[0]
    total = b.sum(axis=0)
    loo = np.stack([np.ravel(fn((total - b[i]) / (n - 1))) for i in range(n)])
    est = np.asarray(fn(x.mean(axis=0)))
    d = loo - loo.mean(axis=0)
    cov = (n - 1) / n * d.T @ d
    err = np.sqrt(np.diag(cov)).reshape(est.shape)
    return est, err, cov


def blocking_errors(data) -> np.ndarray:
    """Blocking (Flyvbjerg-Petersen) error of the mean of every column of `data (N, k)`."""
    x = np.asarray(data, dtype=float)
    x = x.reshape(x.shape[0], -1)
    return np.array([nqs_core.blocking_error(x[:, j]) for j in range(x.shape[1])])


def effective_mass(c) -> np.ndarray:
    """`m_eff(t) = arccosh[(C(t-1) + C(t+1)) / (2 C(t))]` for `t = 1 .. L0 - 2`
    (NaN where undefined); the argument is `C(t)` for `t = 0 .. L0 - 1`."""
    c = np.asarray(c, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (c[..., :-2] + c[..., 2:]) / (2.0 * c[..., 1:-1])
        return np.arccosh(np.where(r >= 1.0, r, np.nan))


def integrated_autocorrelation(series) -> float:
    """Integrated autocorrelation time `tau_int` (>= 1/2) of a series
    `(n_chains, n)` (Sokal window, as `nqs_core.statistics`)."""
    return float(nqs_core.statistics(jnp.asarray(series)).tau_corr) + 0.5


# -- configuration files -------------------------------------------------------


def save_configurations(path, phi, **meta) -> pathlib.Path:
    """Save configurations `(N, L0, L1)` and metadata (JSON-serialisable values) to npz."""
    path = pathlib.Path(path)
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 3:
        raise ValueError(f"phi must have shape (N, L0, L1), got {phi.shape}")
    np.savez(path, phi=phi, meta=np.array(json.dumps(meta)))
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_configurations(path):
    """Load `(phi, meta)` from an npz file written by `save_configurations`, or any
    npz holding an array `phi` of shape `(N, L0, L1)` (bring your own configurations)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"configuration file not found: {path}")
    with np.load(path, allow_pickle=False) as f:
        if "phi" not in f:
            raise ValueError(f"{path} has no array 'phi' (found {sorted(f.files)})")
        phi = np.asarray(f["phi"], dtype=np.float64)
        meta = json.loads(str(f["meta"])) if "meta" in f else {}
    if phi.ndim != 3:
        raise ValueError(f"'phi' in {path} must have shape (N, L0, L1), got {phi.shape}")
    return phi, meta


def generate_configurations(
    L0: int,
    L1: int,
    m2: float,
    lam: float,
    n: int,
    *,
    seed: int = 0,
    n_chains: int = 16,
    sampler: str = "hmc",
    **sampler_kwargs,
):
    """Sample `n` configurations of `exp(-S)` (Eq. 14) with HMC (default) or local Metropolis.

    **Arguments:**

    - `L0, L1, m2, lam`: lattice and couplings of `Phi4Action`.
    - `n`: number of configurations returned (over all chains).
    - `seed`: PRNG seed; `n_chains`: independent chains.
    - `sampler`: `"hmc"` or `"metropolis_field"`; `sampler_kwargs` go to its constructor.

    **Returns:** `(phi, info)`: configurations `(n, L0, L1)` ordered chain by chain
    (`n / n_chains` consecutive configurations per chain) and a dict with the
    acceptance, step size / width, the integrated autocorrelation time of `O(L0/2)` and
    of the magnetisation (in stored configurations) and the wall time.
    """
    from ._space import Phi4Field
    from ._system import Phi4Action
    from ._sampler import HMC, MetropolisField

    if n < n_chains:
        raise ValueError(f"n must be at least n_chains={n_chains}, got {n}")
    space = Phi4Field(L0, L1)
    action = Phi4Action(space, m2=m2, lam=lam)
    cls = {"hmc": HMC, "metropolis_field": MetropolisField}.get(sampler)
    if cls is None:
        raise ValueError(f"sampler must be 'hmc' or 'metropolis_field', got {sampler!r}")
    smp = cls(space, n_samples=n, n_chains=n_chains, **sampler_kwargs)
    dist = nqs_core.BoltzmannDistribution(action)
    t0 = time.perf_counter()
    state = smp.init(dist, jax.random.PRNGKey(seed))
    samples, state, info = smp.sample(dist, state)
    samples = jax.block_until_ready(samples)
    wall = time.perf_counter() - t0
    per = samples.shape[1]
    phi = np.asarray(samples).reshape((n_chains * per, L0, L1))[:n]
    o = np.asarray(correlator_at(samples, L0 // 2))
    mag = np.asarray(jnp.mean(samples, axis=(-2, -1)))
    out = {k: float(v) for k, v in info.items()}
    out.update(
        tau_corr_C_half=integrated_autocorrelation(o),
        tau_magnetisation=integrated_autocorrelation(mag),
        wall_s=wall,
        sampler=sampler,
        n_chains=n_chains,
    )
    return phi, out
