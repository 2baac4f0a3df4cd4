"""Correlated fit of the correlator to `A (e^{-m t} + e^{-m (L0 - t)})` (Bedaque and Oh 2024, Eq. 17)."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import scipy.optimize


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Result of `fit_correlator`: parameters, their standard errors, chi^2 and dof."""

    A: float
    A_err: float
    m: float
    m_err: float
    chi2: float
    dof: int

    @property
    def chi2_dof(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["chi2_dof"] = self.chi2_dof
        return d

    def __str__(self) -> str:
        return (
            f"A = {self.A:.6g} ± {self.A_err:.2g}, m = {self.m:.5f} ± {self.m_err:.5f}, "
            f"chi2/dof = {self.chi2:.2f}/{self.dof} = {self.chi2_dof:.2f}"
        )


def cosh_model(t, A, m, L0):
    """`A (e^{-m t} + e^{-m (L0 - t)})`."""
    t = np.asarray(t, dtype=float)
    return A * (np.exp(-m * t) + np.exp(-m * (L0 - t)))


def fit_correlator(t, c, cov, L0: int, p0=None) -> FitResult:
    """Correlated least-squares fit of Eq. 17 with the full covariance matrix.

    Minimises `chi^2 = r^T cov^{-1} r`, `r = c - model(t)`, by whitening the
    residuals with the Cholesky factor of `cov` (scipy `least_squares`); the
    parameter errors are `sqrt(diag((J^T cov^{-1} J)^{-1}))`.

    **Arguments:**

    - `t`: time separations used (distinct: `O(t) = O(L0 - t)`, so use at most `t <= L0/2`).
    - `c`: correlator estimates at `t`.
    - `cov`: covariance matrix of the estimates (of the mean), `(len(t), len(t))`.
    - `L0`: temporal extent.
    - `p0`: optional starting `(A, m)`.

    **Returns:** a `FitResult`.
    """
    t = np.asarray(t, dtype=float)
    c = np.asarray(c, dtype=float)
    cov = np.asarray(cov, dtype=float)
    if cov.shape != (t.size, t.size) or c.shape != t.shape:
        raise ValueError(f"shapes do not match: t {t.shape}, c {c.shape}, cov {cov.shape}")
    if t.size < 3:
        raise ValueError("need at least 3 time separations to fit A and m")
    chol = scipy.linalg.cholesky(cov, lower=True)
    if p0 is None:
        i = int(np.argmin(t))
        j = int(min(i + 1, t.size - 1))
        m0 = float(np.log(abs(c[i] / c[j])) / max(t[j] - t[i], 1.0)) if c[i] * c[j] > 0 else 0.2
        m0 = m0 if np.isfinite(m0) and m0 > 0 else 0.2
        p0 = (float(c[i]) / (np.exp(-m0 * t[i]) + np.exp(-m0 * (L0 - t[i]))), m0)

    def resid(p):
        return scipy.linalg.solve_triangular(chol, c - cosh_model(t, p[0], p[1], L0), lower=True)

    res = scipy.optimize.least_squares(resid, np.asarray(p0, dtype=float), method="lm", xtol=1e-14, ftol=1e-14)
    jac = res.jac
    pcov = np.linalg.inv(jac.T @ jac)
    chi2 = float(res.fun @ res.fun)
    A, m = res.x
    return FitResult(
        A=float(A), A_err=float(np.sqrt(pcov[0, 0])), m=float(m), m_err=float(np.sqrt(pcov[1, 1])), chi2=chi2, dof=int(t.size - 2)
    )
