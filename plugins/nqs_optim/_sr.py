"""Stochastic reconfiguration in parameter space (dense P x P)."""

from __future__ import annotations

import abc

import functools
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from nqs_core import AbstractNaturalGradient
from nqs_core.distributed import n_ranks, sum_over_ranks

from ._spectral import check_cutoffs, solve_sr_spectral, solve_sr_spectral_holomorphic


def real_sample_matrix(y, eps):
    """`X` and `f` of Rende et al. 2024, Eqs. 7-8, with samples along the rows:
    `X = [Y_R; Y_I]` of shape `(2M, P)` and `f = [eps_R; -eps_I]`, so that
    `S = X^T X` and `F = X^T f`. When the log-derivatives are real (a real
    wave function of real parameters) `Y_I = 0` and `X = Y_R`, `f = eps_R`:
    an `M x M` sample-space problem instead of `2M x 2M`."""
    if jnp.iscomplexobj(y):
        x = jnp.concatenate([jnp.real(y), jnp.imag(y)], axis=0)
        f = jnp.concatenate([jnp.real(eps), -jnp.imag(eps)])
    else:
        x, f = y, jnp.real(eps)
    return x, f


SOLVERS = ("cholesky", "cg")

#: `gram(x, "auto")` calls BLAS from the host when `x` has at least this many
#: multiply-adds (`rows * P^2`); below it the callback's fixed cost (~0.1 ms) is
#: not worth saving half of a small product.
GRAM_BLAS_MIN_WORK = 2**24


def gram(x, method: str = "auto"):
    """`X^H X` of a real or complex `(M, P)` matrix `X` (samples along the
    rows; `X^T X` when real), this rank's rows only.

    The product is symmetric (Hermitian), so only one triangle needs
    computing: on the CPU backend (`method="auto"`, with at least
    `GRAM_BLAS_MIN_WORK` multiply-adds) it is BLAS's rank-k update (`?syrk`
    real, `?herk` complex: half the FLOPs of a general product) on `X` in
    place, called from the host through `jax.pure_callback` with BLAS held to
    `gram_threads()` threads (this process's cores, shared among MPI ranks);
    the other triangle is copied. Otherwise (another backend, a small `X`,
    `method="xla"`) it is XLA's product. Both give the same matrix up to
    rounding.

    **Arguments:**

    - `x`: real or complex matrix of shape `(M, P)`.
    - `method`: `"auto"`, `"blas"` (the host call, on any backend) or `"xla"`.

    **Returns:** the `(P, P)` matrix `X^H X`, of `x`'s dtype.
    """
    if method not in ("auto", "blas", "xla"):
        raise ValueError(f"unknown gram method {method!r}; valid: auto, blas, xla")
    m, p = x.shape
    blas_ok = x.dtype in (jnp.float32, jnp.float64, jnp.complex64, jnp.complex128)
    if method == "auto":
        method = "blas" if blas_ok and jax.default_backend() == "cpu" and m * p * p >= GRAM_BLAS_MIN_WORK else "xla"
    if method == "xla" or not blas_ok:
        return (jnp.conj(x) if jnp.iscomplexobj(x) else x).T @ x
    out = jax.ShapeDtypeStruct((p, p), x.dtype)
    try:  # reads and writes XLA's buffers in place (no copy of `x`); JAX >= 0.7
        from jax.experimental.buffer_callback import buffer_callback
    except ImportError:
        return jax.pure_callback(_host_gram, out, x, vmap_method="sequential")
    return buffer_callback(_buffer_gram, out, vmap_method="sequential")(x)


def _buffer_gram(ctx, out, x):
    np.asarray(out)[...] = _host_gram(np.asarray(x))


def _host_gram(x):
    """`x^H x` by BLAS `?syrk` / `?herk` on the host (`gram_threads()` threads), both triangles filled."""
    from scipy.linalg import blas

    x = np.asarray(x)
    if x.shape[0] == 0:
        return np.zeros((x.shape[1], x.shape[1]), x.dtype)
    update = {np.float64: blas.dsyrk, np.float32: blas.ssyrk, np.complex128: blas.zherk, np.complex64: blas.cherk}[x.dtype.type]
    # a C-ordered (M, P) `x` is the column-major (P, M) matrix `x^T`: the update
    # with trans = 0 gives `x^T (x^T)^H` = `(x^H x)^*` without copying `x`
    with _limited_blas():
        upper = update(1.0, np.ascontiguousarray(x).T, trans=0, lower=0)
    full = np.triu(upper) + np.triu(upper, 1).T.conj()
    return full.conj() if np.iscomplexobj(full) else full


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def gram_threads() -> int:
    """BLAS threads of the host Gram: the cores this process may use
    (`os.sched_getaffinity`), shared among the MPI ranks (as if all ran on
    one host: a conservative split). XLA's own threads wait while the host
    call runs. On the 2-core development machine two threads instead of one
    took the L = 20 TDVP step (`benchmarks/tdvp_step.py`) from 2.39 s to
    2.15 s."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // n_ranks())


def _limited_blas():
    """BLAS held to `gram_threads()` threads inside the block (threadpoolctl)."""
    return _blas_controller().limit(limits=gram_threads(), user_api="blas")


class _AbstractNaturalGradient(AbstractNaturalGradient):
    """Shared pipeline of SR, SRt and MinSR (private; the public classes are
    final): `Y, eps -> X, f` (Eqs. 7-8), a solve for `delta`, and the direction
    `-delta` shaped like the parameters. Subclasses implement `_solve`."""

    @abc.abstractmethod
    def _solve(self, x, f, split: bool):
        """`(delta, info)` for the real sample matrix `x` and vector `f`; `split`
        says `x = [Y_R; Y_I]`."""

    def init(self, ansatz, samples):
        return None

    def memory_estimate(self, n_samples, n_params, value_bytes):
        # Y, its centred copy and the real sample matrix X, then the solver's own
        return 3.0 * n_samples * n_params * value_bytes + self._solver_bytes(n_samples, n_params, value_bytes)

    @abc.abstractmethod
    def _solver_bytes(self, n_samples, n_params, value_bytes) -> float:
        """Bytes of the linear solve and its factor."""
        raise NotImplementedError

    def solve(self, y, eps):
        x, f = real_sample_matrix(y, eps)
        return self._solve(x, f, jnp.iscomplexobj(y))


def _sample_space_bytes(n_samples, value_bytes) -> float:
    """Bytes of a sample-space solve (SRt, MinSR): the `2M x 2M` matrix (`M x M`
    for real log-derivatives) and its factor."""
    rows = n_samples * (2 if value_bytes > 8 else 1)
    return 2.0 * 8 * rows * rows


class SR(_AbstractNaturalGradient):
    """Stochastic reconfiguration (natural gradient), solved in parameter space.

    Solves `(S + lambda I) delta = F` with `S = Re[Y^H Y]` and `F = Re[Y^T eps]`
    (Rende et al. 2024, Eqs. 2-8; complex parameters count as two real ones) and returns
    `-delta` as the direction, so an optax `sgd(lr)` moves `theta += lr * delta`.

    **Arguments:**

    - `diag_shift`: `lambda`, added to the diagonal of `S`.
    - `diag_scale`: additionally adds `diag_scale * diag(S)` (relative shift); 0 by default.
    - `solver`: `"cholesky"` (dense `P x P` matrix, lineax `Cholesky`) or `"cg"`
      (lineax `CG` on the operator `v -> X^T X v + lambda v`, never forming `S`).
    - `rtol`, `atol`, `max_steps`: CG tolerances.
    - `rcond`: soft relative eigenvalue cutoff (0 = off). The eigen-direction
      `v_k` of `S` (eigenvalue `lambda_k`) is damped by
      `r_k = 1 / (1 + (rcond * lambda_max / lambda_k)^6)`, the smooth cutoff of
      Schmitt and Heyl 2020 (Supplemental Material, regularisation section): a
      hard cutoff would make the TDVP equation of motion jump when an
      eigenvalue crosses it, which breaks adaptive integrators.
    - `snr_cutoff`: the signal-to-noise cutoff of Schmitt and Heyl 2020
      (Supplemental Material, Eqs. 20-21 of the arXiv version; 0 = off).
      `rho_k = v_k . F` is the mean over samples of per-sample contributions
      `Q_{s,k} = M Re[(Y v_k)_s eps_s]`; `SNR_k = |rho_k| sqrt(M) / std_s(Q_{s,k})`
      and the direction is damped further by `1 / (1 + (snr_cutoff / SNR_k)^6)`.
      For a degenerate eigenvalue (within `1e-8 lambda_max`; every eigenvalue is a
      pair for a holomorphic ansatz with complex parameters) the SNR is that of
      its eigenspace, `sqrt(M sum_j rho_j^2 / sum_j var_s Q_{s,j})`, which does not
      depend on the eigensolver's choice of basis. Meant for Monte Carlo samples
      (equal weights); under MPI the statistics run over the samples of all ranks.

    When `rcond > 0` or `snr_cutoff > 0` the solve goes through the
    eigendecomposition of the dense `S` (`solver = "cholesky"` only, no
    `diag_scale`: both are refused):
    `delta = sum_k g_k / (lambda_k + diag_shift) v_k (v_k . F)` with `g_k` the
    product of the two damping factors (`diag_shift` enters the denominator
    only; the factors use the unshifted `lambda_k`). Eigenvalues at rounding
    level (`<= max(2M, P) * eps * lambda_max`, the null space of `S`) are
    dropped on this path. Otherwise the Cholesky / CG solve of
    `(S + lambda I) delta = F` runs as without the cutoffs (bit for bit).

    The `info` dict reports `solve_ok` (1 when lineax succeeded; on the eigen
    path, 1 when `delta` is finite) and, on the eigen path, `effective_rank`
    (the sum of the damping factors `g_k`: the number of directions kept).
    """

    diag_shift: float = 1e-3
    diag_scale: float = 0.0
    solver: str = eqx.field(default="cholesky", static=True)
    rtol: float = 1e-10
    atol: float = 1e-10
    max_steps: int | None = eqx.field(default=None, static=True)
    rcond: float = eqx.field(default=0.0, static=True, converter=float)
    snr_cutoff: float = eqx.field(default=0.0, static=True, converter=float)

    def __check_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown SR solver {self.solver!r}; valid: {', '.join(SOLVERS)}")
        if self.diag_shift < 0 or self.diag_scale < 0:
            raise ValueError("diag_shift and diag_scale must be >= 0")
        check_cutoffs(self.rcond, self.snr_cutoff)
        if self._spectral and self.solver != "cholesky":
            raise ValueError('rcond and snr_cutoff need the eigendecomposition of the dense S: use solver = "cholesky" (or set both to 0 for "cg")')
        if self._spectral and self.diag_scale != 0:
            raise ValueError("diag_scale cannot be combined with rcond or snr_cutoff (it is not diagonal in the eigenbasis of S): use diag_shift")

    @property
    def _spectral(self) -> bool:
        """Whether the solve goes through the eigendecomposition of `S`."""
        return self.rcond > 0 or self.snr_cutoff > 0

    def _solver_bytes(self, n_samples, n_params, value_bytes):
        if self._spectral:
            # S, its eigenvectors and the eigensolver's workspace (about 2 P x P);
            # the SNR also needs X V (one more real rows x P matrix)
            rows = n_samples * (2 if value_bytes > 8 else 1)
            return 4.0 * 8 * n_params * n_params + (8.0 * rows * n_params if self.snr_cutoff > 0 else 0.0)
        # the P x P matrix and its Cholesky factor; conjugate gradients only multiply by X
        return 2.0 * 8 * n_params * n_params if self.solver == "cholesky" else 0.0

    def _solve(self, x, f, split):
        # `f @ x`, not `x.T @ f`: XLA on the CPU copies a transposed `x` for the
        # latter (a pass over `M x P` numbers, measured 0.3 CPU s of the 2^16-state full sum)
        force = sum_over_ranks(f @ x)
        if self._spectral:
            s = sum_over_ranks(gram(x))
            delta, rank = solve_sr_spectral(x, force, f, split, self.diag_shift, self.rcond, self.snr_cutoff, s)
            return delta, {"solve_ok": jnp.all(jnp.isfinite(delta)).astype(jnp.int32), "effective_rank": rank}
        delta, ok = solve_sr(x, force, self.diag_shift, self.diag_scale, self.solver, self.rtol, self.atol, self.max_steps)
        return delta, {"solve_ok": ok}

    def solve_holomorphic(self, a, eps):
        """The complex `P_c x P_c` form of the solve for a holomorphic ansatz:
        `(G + lambda I) z = A^H eps^*` with `G = A^H A` (the `herk` Gram of the
        complex `(M, P_c)` matrix: half the multiply-adds of the real
        `(2M, 2 P_c)` one, and a complex Cholesky factor of half the size);
        on the eigen path (`rcond`, `snr_cutoff`) the eigendecomposition of
        `G`, whose eigenvalues are those of `S`, each once instead of twice.
        The same `delta = [Re z; Im z]` as `solve` on the real form up to
        rounding. Conjugate gradients (`solver = "cg"`) go through the real
        form."""
        if self.solver != "cholesky":
            return super().solve_holomorphic(a, eps)
        # `eps @ a`, not `a.T @ eps` (no transposed copy of `a`); A^H eps^* = (A^T eps)^*
        force = sum_over_ranks(jnp.conj(eps @ a))
        if self._spectral:
            g = sum_over_ranks(gram(a))
            z, rank = solve_sr_spectral_holomorphic(a, force, eps, self.diag_shift, self.rcond, self.snr_cutoff, g)
            return z, {"solve_ok": jnp.all(jnp.isfinite(z)).astype(jnp.int32), "effective_rank": rank}
        z, ok = solve_sr(a, force, self.diag_shift, self.diag_scale)
        return z, {"solve_ok": ok}


def solve_sr(x, force, diag_shift, diag_scale=0.0, solver="cholesky", rtol=1e-10, atol=1e-10, max_steps=None):
    """Solve `(X^T X + diag_shift I + diag_scale diag(X^T X)) delta = force` with lineax.
    Under MPI `X` holds this rank's rows and `X^T X` is summed over ranks. With
    `solver = "cholesky"` `X` may be complex (`X^H X`, the complex form of
    `SR.solve_holomorphic`)."""
    p = x.shape[1]
    if solver == "cholesky":
        s = sum_over_ranks(gram(x))
        s = s + jnp.diag((diag_shift + diag_scale * jnp.real(jnp.diag(s))).astype(s.dtype))
        op = lx.MatrixLinearOperator(s, lx.positive_semidefinite_tag)
        sol = lx.linear_solve(op, force, lx.Cholesky(), throw=False)
    else:
        sdiag = sum_over_ranks(jnp.sum(x * x, axis=0))
        shift = diag_shift + diag_scale * sdiag

        def matvec(v):
            return sum_over_ranks((x @ v) @ x) + shift * v

        structure = jax.ShapeDtypeStruct((p,), x.dtype)
        op = lx.FunctionLinearOperator(matvec, structure, lx.positive_semidefinite_tag)
        sol = lx.linear_solve(op, force, lx.CG(rtol=rtol, atol=atol, max_steps=max_steps), throw=False)
    return sol.value, (sol.result == lx.RESULTS.successful).astype(jnp.int32)
