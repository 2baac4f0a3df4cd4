"""Stochastic reconfiguration in sample space (SRt) and MinSR."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from nqs_core.distributed import alltoall, concat_over_ranks, n_ranks, sum_over_ranks

from ._spectral import check_cutoffs, sample_space_spectral
from ._sr import _AbstractNaturalGradient, _sample_space_bytes


def _eigh_solve(a, f, rcond, acond):
    """`pinv(a) f` for symmetric `a` from its eigendecomposition, dropping
    eigenvalues below `max(rcond * lambda_max, acond)`; also returns the number kept."""
    w, v = jnp.linalg.eigh(a)
    cut = jnp.maximum(rcond * jnp.max(jnp.abs(w)), acond)
    keep = w > cut
    winv = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
    return v @ (winv * (v.T @ f)), jnp.sum(keep)


def _gram(x, split: bool):
    """`X X^T`; with `split` (X = [Y_R; Y_I]) from three of its four blocks, as
    the matrix is symmetric: 25 % fewer flops than one full product."""
    if not split:
        return x @ x.T
    m = x.shape[0] // 2
    yr, yi = x[:m], x[m:]
    rr, ii, ri = yr @ yr.T, yi @ yi.T, yr @ yi.T
    return jnp.block([[rr, ri], [ri.T, ii]])


def sample_space_gram(x, f, split: bool = False):
    """`(T, f_all, X_block)` with `T = X X^T` over the samples of all ranks.

    In one process `X_block = X`. Under MPI (Rende et al. 2024, Methods and Fig. 2) each
    rank holds the rows of its own samples; one `alltoall` transposes them so
    that rank `r` holds *all* samples for the `r`-th block of `P / n_ranks`
    parameters, the partial products `X_block X_block^T` are summed over
    ranks, and `f` is gathered. Memory per rank stays `O(M P / n_ranks)`.
    """
    n = n_ranks()
    if n == 1:
        return _gram(x, split), f, x
    m_loc, p = x.shape
    pb = -(-p // n)
    xp = jnp.pad(x, ((0, 0), (0, pb * n - p)))
    blocks = jnp.transpose(xp.reshape(m_loc, n, pb), (1, 0, 2))  # block j -> rank j
    xb = alltoall(blocks).reshape(n * m_loc, pb)  # rows: rank 0's samples, rank 1's, ...
    return sum_over_ranks(xb @ xb.T), concat_over_ranks(f), xb


def sample_space_back(xb, coeffs, p):
    """`delta = X^T coeffs`: each rank computes its parameter block, then the
    blocks are gathered (the second transpose)."""
    d = xb.T @ coeffs
    if n_ranks() == 1:
        return d
    return concat_over_ranks(d)[:p]


def solve_srt(x, f, diag_shift, split: bool = False):
    """Sample-space SR (Rende et al. 2024, Eq. 10): `delta = X^T (X X^T + lambda I)^{-1} f`.

    The `n x n` system (`n = 2M`, or `M` for real log-derivatives) goes through
    lineax `Cholesky`. When Cholesky fails (a matrix that is numerically not
    positive definite, e.g. `lambda = 0` with rank-deficient `X`) the solve falls
    back to an eigendecomposition pseudo-inverse instead of returning NaN.

    `split=True` declares `x = [Y_R; Y_I]` (two halves of equal height), which
    saves a quarter of the work in forming `X X^T`.

    **Returns:** `(delta, used_fallback)`.
    """
    t, f, xb = sample_space_gram(x, f, split)
    a = t + diag_shift * jnp.eye(t.shape[0], dtype=t.dtype)
    op = lx.MatrixLinearOperator(a, lx.positive_semidefinite_tag)
    sol = lx.linear_solve(op, f, lx.Cholesky(), throw=False)
    ok = (sol.result == lx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
    eps = jnp.finfo(a.dtype).eps * a.shape[0]
    coeffs = jax.lax.cond(ok, lambda: sol.value, lambda: _eigh_solve(a, f, eps, 0.0)[0])
    return sample_space_back(xb, coeffs, x.shape[1]), (~ok).astype(jnp.int32)


class SRt(_AbstractNaturalGradient):
    """Stochastic reconfiguration in sample space (Rende et al. 2024, Eq. 10).

    Exactly the SR update `(S + lambda I)^{-1} F` of `SR`, computed through the
    push-through identity as `X^T (X X^T + lambda I_{2M})^{-1} f`: a `2M x 2M`
    solve (`M x M` for real log-derivatives) instead of `P x P`, so the cost is
    `O(M^2 P + M^3)` and the memory `O(M P)` — the method of choice when the
    network has many more parameters than there are samples.

    **Arguments:**

    - `diag_shift`: `lambda`; the same diagonal shift as in parameter space.
    - `rcond`, `snr_cutoff`: the soft eigenvalue cutoff and the signal-to-noise
      cutoff of Schmitt and Heyl 2020 (Supplemental Material, Eqs. 20-21 of the
      arXiv version), as in `SR` (0 = off; see there): with the same values `SR` and `SRt` give the same
      `delta`. The eigendecomposition is that of the sample-space matrix
      `T = X X^T = U diag(lambda) U^T`, whose nonzero eigenvalues are those of
      `S`, with eigenvectors `v_k = X^T u_k / sqrt(lambda_k)` of `S`:
      `delta = X^T sum_k g_k / (lambda_k + lambda) u_k (u_k . f)`, and the
      per-sample contributions to `rho_k = v_k . F` come from
      `X v_k = sqrt(lambda_k) u_k` at no extra cost.

    The `info` dict reports `solver_fallback` (1 when Cholesky failed and the
    eigendecomposition pseudo-inverse was used; always 0 on the eigen path) and,
    when `rcond > 0` or `snr_cutoff > 0`, `effective_rank` (the sum of the
    damping factors). The log-derivative matrix is built in chunks of the
    estimator's `chunk_size`.
    """

    diag_shift: float = 1e-4
    rcond: float = eqx.field(default=0.0, static=True, converter=float)
    snr_cutoff: float = eqx.field(default=0.0, static=True, converter=float)

    def __check_init__(self):
        if self.diag_shift < 0:
            raise ValueError("diag_shift must be >= 0")
        check_cutoffs(self.rcond, self.snr_cutoff)

    def _solver_bytes(self, n_samples, n_params, value_bytes):
        if self.rcond > 0 or self.snr_cutoff > 0:
            return _eigen_bytes(n_samples, value_bytes, self.snr_cutoff > 0)
        return _sample_space_bytes(n_samples, value_bytes)

    def _solve(self, x, f, split):
        if self.rcond > 0 or self.snr_cutoff > 0:
            t, f_all, xb = sample_space_gram(x, f, split)
            coeffs, rank, _ = sample_space_spectral(t, f_all, split, x.shape[0], x.shape[1], self.diag_shift, self.rcond, self.snr_cutoff)
            return sample_space_back(xb, coeffs, x.shape[1]), {"solver_fallback": jnp.zeros((), jnp.int32), "effective_rank": rank}
        delta, fallback = solve_srt(x, f, self.diag_shift, split=split)
        return delta, {"solver_fallback": fallback}


def _eigen_bytes(n_samples, value_bytes, snr: bool) -> float:
    """Bytes of the sample-space eigen path: `T`, its eigenvectors and the
    eigensolver's workspace (about `2 T`); the SNR's per-sample contributions
    one more matrix of the size of `T`."""
    rows = n_samples * (2 if value_bytes > 8 else 1)
    return (5.0 if snr else 4.0) * 8 * rows * rows


class MinSR(_AbstractNaturalGradient):
    """MinSR (Chen and Heyl 2024): the minimum-norm natural-gradient update.

    `delta = X^T pinv(X X^T + lambda I) f` with the pseudo-inverse truncating
    eigenvalues of the `2M x 2M` sample-space matrix below
    `max(rcond * largest, acond)`. With `lambda = 0` this is the minimum-norm
    solution of `X delta = f` restricted to the well-conditioned subspace
    (the regularisation of Chen and Heyl 2024 instead of a diagonal shift).

    **Arguments:**

    - `rcond`: relative cut-off on the eigenvalues (default 1e-12).
    - `acond`: absolute cut-off (default 0).
    - `diag_shift`: optional diagonal shift added before truncation (default 0).
    - `snr_cutoff`: the signal-to-noise cutoff of Schmitt and Heyl 2020
      (Supplemental Material, Eqs. 20-21 of the arXiv version; 0 = off), as in
      `SR` and `SRt`: each
      kept direction is damped further by `1 / (1 + (snr_cutoff / SNR_k)^6)`.
      The cutoffs `rcond` / `acond` stay hard (that is MinSR).

    `info["n_kept"]` is the number of eigenvalues kept by `rcond` / `acond`
    and `info["effective_rank"]` the sum of the damping factors: `n_kept`
    without `snr_cutoff`; with it, the sum of the SNR factors over the kept
    directions that are not numerically null in `X X^T` (those have
    `X^T u_k = 0`: a diagonal shift keeps them in `n_kept` but they carry no
    update).
    """

    rcond: float = 1e-12
    acond: float = 0.0
    diag_shift: float = 0.0
    snr_cutoff: float = eqx.field(default=0.0, static=True, converter=float)

    def __check_init__(self):
        if self.rcond < 0 or self.acond < 0 or self.diag_shift < 0:
            raise ValueError("rcond, acond and diag_shift must be >= 0")
        check_cutoffs(0.0, self.snr_cutoff)

    def _solver_bytes(self, n_samples, n_params, value_bytes):
        if self.snr_cutoff > 0:
            return _eigen_bytes(n_samples, value_bytes, True)
        return _sample_space_bytes(n_samples, value_bytes)

    def _solve(self, x, f, split):
        t, f_all, xb = sample_space_gram(x, f, split=split)
        if self.snr_cutoff > 0:
            hard = (self.rcond, self.acond)
            coeffs, rank, kept = sample_space_spectral(t, f_all, split, x.shape[0], x.shape[1], self.diag_shift, 0.0, self.snr_cutoff, hard=hard)
            return sample_space_back(xb, coeffs, x.shape[1]), {"n_kept": kept, "effective_rank": rank}
        t = t + self.diag_shift * jnp.eye(t.shape[0], dtype=t.dtype)
        coeffs, kept = _eigh_solve(t, f_all, self.rcond, self.acond)
        return sample_space_back(xb, coeffs, x.shape[1]), {"n_kept": kept, "effective_rank": kept.astype(t.dtype)}
