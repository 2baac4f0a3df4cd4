"""One-body density and pair distribution of sampled particle configurations, with error bars and plots."""

from __future__ import annotations

import pathlib
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import nqs_core

from ._ansatz import ho_orbitals
from ._common import as_int


class Density(NamedTuple):
    """A histogram estimate of the one-body density `n(x)` (integrates to `A`).

    **Fields:** `centers` (bin centres), `values` (density), `errors` (one
    standard error), `edges` (bin edges); NumPy arrays.
    """

    centers: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    edges: np.ndarray


class PairDistribution(NamedTuple):
    """A 2D histogram estimate of `g(x, y) = <sum_{i != j} delta(x - x_i) delta(y - x_j)>`
    (integrates to `A (A - 1)`).

    **Fields:** `centers` (bin centres, both axes), `values` `(n_bins, n_bins)`,
    `errors` (one standard error per bin), `edges`; NumPy arrays.
    """

    centers: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    edges: np.ndarray


def _edges(samples: np.ndarray, bins, range_) -> np.ndarray:
    if np.ndim(bins) == 0:
        n = as_int("bins", bins, 1)
        if range_ is None:
            lim = float(np.max(np.abs(samples))) if samples.size else 1.0
            range_ = (-lim, lim)
        lo, hi = (float(v) for v in range_)
        if not hi > lo:
            raise ValueError(f"range must be (low, high) with high > low, got {range_!r}")
        return np.linspace(lo, hi, n + 1)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be a positive integer or increasing bin edges")
    return edges


def _as_chains(samples) -> np.ndarray:
    """`(n_chains, n_per_chain, A)`; a 2D `(n, A)` array is one chain."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"samples must have shape (n_chains, n_per_chain, A) or (n, A), got {x.shape}")
    return x


def one_body_density(samples, bins=60, range=None) -> Density:  # noqa: A002 (numpy's name)
    """Histogram estimate of the one-body density `n(x) = <sum_i delta(x - x_i)>`.

    Each sample contributes `count_b / width_b` to bin `b`; the error bars are
    `nqs_core.statistics` of these per-sample values (autocorrelation time and
    chain spread included).

    **Arguments:**

    - `samples`: `(n_chains, n_per_chain, A)` from a sampler, or `(n, A)`.
    - `bins`: number of bins (default 60) or increasing bin edges.
    - `range`: `(low, high)` for integer `bins` (default: symmetric, covering all samples).

    **Returns:** a `Density`.
    """
    x = _as_chains(samples)
    edges = _edges(x, bins, range)
    nb = edges.size - 1
    idx = np.searchsorted(edges, x, side="right") - 1  # (c, n, A)
    inside = (idx >= 0) & (idx < nb) & (x <= edges[-1])
    idx = np.where(inside, idx, nb)  # overflow bin, dropped below
    onehot_counts = np.zeros(x.shape[:2] + (nb + 1,), dtype=np.float64)
    c, n, _ = idx.shape
    np.add.at(onehot_counts, (np.arange(c)[:, None, None], np.arange(n)[None, :, None], idx), 1.0)
    per_sample = onehot_counts[..., :nb] / np.diff(edges)  # (c, n, nb)
    stats = jax.vmap(nqs_core.statistics, in_axes=2)(jnp.asarray(per_sample))
    return Density(
        centers=0.5 * (edges[1:] + edges[:-1]),
        values=np.asarray(stats.mean),
        errors=np.asarray(stats.error_of_mean),
        edges=edges,
    )


def pair_distribution(samples, bins=40, range=None, n_blocks: int = 16) -> PairDistribution:  # noqa: A002
    """Histogram estimate of the pair distribution
    `g(x, y) = <sum_{i != j} delta(x - x_i) delta(y - x_j)>` (symmetric, integrates to `A(A-1)`).

    The error bars come from the scatter of independent histograms of blocks
    of samples: one block per chain when there are at least 4 chains, else
    `n_blocks` consecutive blocks of the single chain (standard error of the
    block mean).

    **Arguments:**

    - `samples`: `(n_chains, n_per_chain, A)` or `(n, A)`.
    - `bins`: bins per axis (default 40) or increasing bin edges.
    - `range`: `(low, high)` for integer `bins`.
    - `n_blocks`: blocks for the error bars when there are fewer than 4 chains.

    **Returns:** a `PairDistribution`.
    """
    x = _as_chains(samples)
    a = x.shape[-1]
    if a < 2:
        raise ValueError("the pair distribution needs at least two particles")
    edges = _edges(x, bins, range)
    if x.shape[0] >= 4:
        blocks = [xc for xc in x]
    else:
        flat = x.reshape(-1, a)
        n_blocks = as_int("n_blocks", n_blocks, 2)
        blocks = np.array_split(flat, n_blocks)
    i, j = np.nonzero(~np.eye(a, dtype=bool))
    area = np.outer(np.diff(edges), np.diff(edges))
    hists = []
    for b in blocks:
        h, _, _ = np.histogram2d(b[:, i].ravel(), b[:, j].ravel(), bins=(edges, edges))
        hists.append(h / (len(b) * area))
    hists = np.stack(hists)
    weights = np.array([len(b) for b in blocks], dtype=np.float64)
    mean = np.tensordot(weights / weights.sum(), hists, axes=1)
    err = hists.std(axis=0, ddof=1) / np.sqrt(len(blocks))
    return PairDistribution(centers=0.5 * (edges[1:] + edges[:-1]), values=mean, errors=err, edges=edges)


def free_density(x, n_particles: int) -> np.ndarray:
    """Exact one-body density `sum_{k<A} phi_k(x)^2` of `A` free fermions in the trap."""
    a = as_int("n_particles", n_particles, 1)
    phi = np.asarray(ho_orbitals(jnp.asarray(np.asarray(x, dtype=np.float64)), a))
    return np.sum(phi**2, axis=-1)


def free_pair_distribution(x, y, n_particles: int) -> np.ndarray:
    """Exact pair distribution `n(x) n(y) - rho(x, y)^2` of `A` free fermions,
    `rho(x, y) = sum_{k<A} phi_k(x) phi_k(y)`, on the grid `x` (rows) by `y` (columns)."""
    a = as_int("n_particles", n_particles, 1)
    px = np.asarray(ho_orbitals(jnp.asarray(np.asarray(x, dtype=np.float64)), a))
    py = np.asarray(ho_orbitals(jnp.asarray(np.asarray(y, dtype=np.float64)), a))
    rho = px @ py.T
    return np.outer(np.sum(px**2, -1), np.sum(py**2, -1)) - rho**2


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_density(
    densities: Density | Sequence[Density],
    path,
    labels: Sequence[str] | None = None,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
) -> pathlib.Path:
    """Plot one or several one-body densities with error bars to a PNG.

    **Arguments:**

    - `densities`: a `Density` or a list of them.
    - `path`: output file (`.png`).
    - `labels`: legend entries, one per density.
    - `reference`: optional `(x, n(x))` curve drawn as a line (e.g. `free_density`).
    - `title`: optional plot title.

    **Returns:** the path written.
    """
    if isinstance(densities, Density):
        densities = [densities]
    labels = list(labels) if labels is not None else [None] * len(densities)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for d, lab in zip(densities, labels):
        ax.errorbar(d.centers, d.values, yerr=d.errors, fmt=".", ms=3, capsize=1.5, label=lab)
    if reference is not None:
        ax.plot(reference[0], reference[1], "k-", lw=1, label="reference")
    ax.set_xlabel("x  [oscillator lengths]")
    ax.set_ylabel("n(x)")
    if title:
        ax.set_title(title)
    if any(lab is not None for lab in labels) or reference is not None:
        ax.legend(frameon=False)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pair_distribution(pair: PairDistribution, path, title: str | None = None) -> pathlib.Path:
    """Plot a pair distribution `g(x1, x2)` as a colour map to a PNG.

    **Arguments:**

    - `pair`: a `PairDistribution`.
    - `path`: output file (`.png`).
    - `title`: optional plot title.

    **Returns:** the path written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    e = pair.edges
    mesh = ax.pcolormesh(e, e, pair.values.T, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label="g(x1, x2)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
