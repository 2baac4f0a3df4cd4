"""Regularised natural-gradient solves in the eigenbasis of `S`: the soft
eigenvalue cutoff and the signal-to-noise cutoff of Schmitt and Heyl 2020,
shared by SR (parameter space), SRt and MinSR (sample space)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nqs_core.distributed import n_ranks, sum_over_ranks, total_samples

#: the exponent of the smooth cutoff `1 / (1 + (c / x)^6)` (Schmitt and Heyl
#: 2020, supplement; the regulariser jVMC uses)
SOFT_POWER = 6


def check_cutoffs(rcond, snr_cutoff) -> None:
    """Refuse a negative or non-finite `rcond` / `snr_cutoff` (one line each)."""
    for name, value in (("rcond", rcond), ("snr_cutoff", snr_cutoff)):
        if not (isinstance(value, (int, float)) and 0.0 <= float(value) < float("inf")):
            raise ValueError(f"{name} must be a finite number >= 0 (0 = off), got {value!r}")


def soft_factor(ratio):
    """`1 / (1 + ratio^6)`: 1 for `ratio -> 0`, 0 for `ratio -> inf` (also for
    `ratio = inf`), 1/2 at `ratio = 1`."""
    return 1.0 / (1.0 + ratio**SOFT_POWER)


def null_tolerance(lam_max, n_rows, n_params):
    """Eigenvalues at or below `max(rows, P) * eps * lambda_max` are numerical
    zeros (the null space of `S`, or of `X X^T`); the eigen path drops them
    always, whatever the cutoffs, so SR (`P x P`) and SRt (`2M x 2M`) keep
    the same directions."""
    eps = jnp.finfo(lam_max.dtype).eps
    return max(n_rows, n_params) * eps * jnp.maximum(lam_max, 0.0)


def damping(lam, rho, var, n_samples, rcond, snr_cutoff, tol):
    """The damping factor `g_k` of every eigen-direction.

    **Arguments:**

    - `lam`: eigenvalues `lambda_k` of `S` (not shifted).
    - `rho`: `rho_k = v_k . F`, the force along each eigenvector.
    - `var`: the variance over samples of the per-sample contributions
      `Q_{s,k}` (their mean is `rho_k`); `None` when `snr_cutoff = 0`.
    - `n_samples`: `M`, the number of samples over all ranks.
    - `rcond`, `snr_cutoff`: the cutoffs (Python floats; 0 = off).
    - `tol`: eigenvalues `<= tol` are dropped (`null_tolerance`).

    **Returns:** `(g, kept)`: `g_k = r_k s_k` (0 for the null directions) with
    `r_k = 1 / (1 + (rcond lambda_max / lambda_k)^6)` and
    `s_k = 1 / (1 + (snr_cutoff / SNR_k)^6)`,
    `SNR_k = |rho_k| sqrt(M) / std_s(Q_{s,k})`; for a degenerate eigenvalue
    the SNR of its eigenspace `E`,
    `sqrt(sum_{j in E} rho_j^2 M / sum_{j in E} var_s(Q_{s,j}))`, which does
    not depend on the (arbitrary) basis of `E` (`eigenspace_sums`).
    """
    kept = lam > tol
    safe = jnp.where(kept, lam, 1.0)
    g = kept.astype(lam.dtype)
    if rcond > 0:
        g = g * soft_factor(rcond * jnp.max(lam) / safe)
    if snr_cutoff > 0:
        # a degenerate eigenvalue: the SNR of its eigenspace (basis-independent)
        rho2, var = eigenspace_sums(lam, jnp.where(kept, rho**2, 0.0), jnp.where(kept, var, 0.0))
        # snr_cutoff / SNR_k = snr_cutoff std_k / (|rho_k| sqrt(M)); a direction
        # without noise (std = 0) is kept, a noisy one with rho = 0 removed
        signal = jnp.sqrt(rho2 * n_samples)
        noise = snr_cutoff * jnp.sqrt(jnp.maximum(var, 0.0))
        ratio = jnp.where(signal > 0, noise / jnp.where(signal > 0, signal, 1.0), jnp.where(noise > 0, jnp.inf, 0.0))
        g = g * soft_factor(ratio)
    return g, kept


#: eigenvalues closer than this times `lambda_max` are one degenerate eigenvalue
#: for the SNR (its eigenvectors are determined only to about `eps / gap`)
DEGENERACY_RTOL = 1e-8


def eigenspace_sums(lam, rho2, var):
    """`sum_{j in E(k)} rho2_j` and `sum_{j in E(k)} var_j` for every `k`,
    with `E(k)` the eigenvalues degenerate with `lambda_k` (a chain of gaps
    `<= DEGENERACY_RTOL * lambda_max` in the ascending `lam`).

    Per-direction SNRs are not defined in a degenerate eigenspace: its basis is
    arbitrary. This matters in practice: for a holomorphic ansatz with complex
    parameters (counted as real pairs) every eigenvalue of `S` is doubly
    degenerate (`O` of the imaginary part is `i O` of the real part), and the
    sums over the pair give the SNR of the complex eigen-direction, as with
    complex parameters (Schmitt and Heyl 2020)."""
    k = lam.shape[0]
    gap = jnp.diff(lam) > DEGENERACY_RTOL * jnp.max(jnp.abs(lam))
    ids = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(gap.astype(jnp.int32))])
    sums = jax.ops.segment_sum(jnp.stack([rho2, var], axis=1), ids, num_segments=k, indices_are_sorted=True)
    return sums[ids, 0], sums[ids, 1]


def apply_inverse(g, kept, lam, diag_shift, coeffs):
    """`g_k / (lambda_k + diag_shift) * coeffs_k`, 0 for the dropped directions."""
    denom = jnp.where(kept, lam + diag_shift, 1.0)
    return jnp.where(kept, g / denom, 0.0) * coeffs


def _pair_rows(q, split: bool, blocks: int):
    """Sum the rows of one sample: `q` has the rows of `blocks` consecutive
    row blocks (one per rank), each `[Re rows; Im rows]` when `split`."""
    if not split:
        return q
    k = q.shape[1]
    q = q.reshape(blocks, 2, -1, k)
    return (q[:, 0] + q[:, 1]).reshape(-1, k)


def solve_sr_spectral(x, force, f, split, diag_shift, rcond, snr_cutoff, s):
    """SR in the eigenbasis of the `P x P` matrix `S = X^T X` (summed over
    ranks, given as `s`): `delta = sum_k g_k / (lambda_k + diag_shift) v_k (v_k . F)`.

    Per-sample contributions for the SNR: `Q_{s,k} = M sum_{rows of s} (X v_k)_row f_row`
    over this rank's rows (`X v_k` costs one `rows x P x P` product), their
    variance summed over ranks.

    **Returns:** `(delta, effective_rank)`.
    """
    rows, p = x.shape
    n_samples = total_samples(rows // 2 if split else rows)
    lam, v = jnp.linalg.eigh(s)
    rho = force @ v
    tol = null_tolerance(jnp.max(lam), rows * n_ranks(), p)
    var = None
    if snr_cutoff > 0:
        q = _pair_rows(n_samples * (x @ v) * f[:, None], split, 1)
        var = sum_over_ranks(jnp.sum((q - rho) ** 2, axis=0)) / n_samples
    g, kept = damping(lam, rho, var, n_samples, rcond, snr_cutoff, tol)
    delta = v @ apply_inverse(g, kept, lam, diag_shift, rho)
    return delta, jnp.sum(g)


def solve_sr_spectral_holomorphic(a, force, eps, diag_shift, rcond, snr_cutoff, g):
    """`solve_sr_spectral` in complex form for a holomorphic ansatz: the
    eigendecomposition `G = W diag(lambda) W^H` of the Hermitian
    `G = A^H A` (`P_c x P_c`, summed over ranks, given as `g`) and
    `z = sum_k g_k / (lambda_k + diag_shift) w_k (w_k^H F)` with
    `F = A^H eps^*` (`force`).

    Every eigenvalue of the real `S` is an eigenvalue of `G` twice (the
    directions `w_k` and `i w_k`), so the damping is the same: `rho_k^2` of
    the real pair is `|w_k^H F|^2`, and the variance of the pair's per-sample
    contributions is that of the complex `Q_{s,k} = M (A w_k)_s eps_s`
    (whose mean is `(w_k^H F)^*`); the cutoffs use the real form's
    `lambda_max` and null tolerance (`2M` rows, `2 P_c` columns).

    **Returns:** `(z, effective_rank)`, the rank in real directions (twice the
    sum of the complex damping factors).
    """
    rows, pc = a.shape
    n_samples = total_samples(rows)
    lam, w = jnp.linalg.eigh(g)
    rho = force @ jnp.conj(w)
    tol = null_tolerance(jnp.max(lam), 2 * rows * n_ranks(), 2 * pc)
    var = None
    if snr_cutoff > 0:
        q = n_samples * (a @ w) * eps[:, None]
        var = sum_over_ranks(jnp.sum(jnp.abs(q - jnp.conj(rho)) ** 2, axis=0)) / n_samples
    damp, kept = damping(lam, jnp.abs(rho), var, n_samples, rcond, snr_cutoff, tol)
    z = w @ (apply_inverse(damp, kept, lam, diag_shift, jnp.ones_like(lam)).astype(rho.dtype) * rho)
    return z, 2.0 * jnp.sum(damp)


def sample_space_spectral(t, f_all, split, rows_local, p, diag_shift, rcond, snr_cutoff, hard=None):
    """Coefficients `c` such that `delta = X^T c`, from the eigendecomposition
    `T = X X^T = U diag(lambda) U^T` over the samples of all ranks (the rows
    of `T` and `f_all` are rank 0's rows, rank 1's, ...). The eigenvectors of
    `S` are `v_k = X^T u_k / sqrt(lambda_k)`, so `X v_k = sqrt(lambda_k) u_k`,
    `rho_k = sqrt(lambda_k) (u_k . f)` and
    `delta = X^T sum_k g_k / (lambda_k + diag_shift) u_k (u_k . f)`.

    `hard = (rcond, acond)` replaces the soft `rcond` by MinSR's hard cutoff:
    directions with `lambda_k + diag_shift <= max(rcond * max, acond)` are
    dropped (the eigenvalues of `T + diag_shift I`, as `MinSR` without SNR);
    `n_kept` counts the directions this keeps. Numerically null directions of
    `T` (`null_tolerance`) are dropped on every path: `X^T u_k = 0` there, and
    their signal-to-noise ratio is rounding over rounding.

    **Returns:** `(coeffs, effective_rank, n_kept)`.
    """
    n_samples = total_samples(rows_local // 2 if split else rows_local)
    lam, u = jnp.linalg.eigh(t)
    c = u.T @ f_all
    root = jnp.sqrt(jnp.maximum(lam, 0.0))
    rho = root * c
    var = None
    if snr_cutoff > 0:
        q = _pair_rows(n_samples * (u * root) * f_all[:, None], split, n_ranks())
        var = jnp.mean((q - rho) ** 2, axis=0)
    tol = null_tolerance(jnp.max(lam), t.shape[0], p)
    if hard is None:
        g, kept = damping(lam, rho, var, n_samples, rcond, snr_cutoff, tol)
        return u @ apply_inverse(g, kept, lam, diag_shift, c), jnp.sum(g), jnp.sum(kept)
    h_rcond, h_acond = hard
    w = lam + diag_shift
    hard_kept = w > jnp.maximum(h_rcond * jnp.max(jnp.abs(w)), h_acond)
    g, kept = damping(lam, rho, var, n_samples, 0.0, snr_cutoff, tol)
    kept = kept & hard_kept
    g = jnp.where(kept, g, 0.0)
    return u @ apply_inverse(g, kept, lam, diag_shift, c), jnp.sum(g), jnp.sum(hard_kept)
