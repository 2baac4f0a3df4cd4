"""Decision gradient descent with the Hyvarinen-score metric G_VMC (Drissi et al. 2024)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from nqs_core import AbstractContinuousSpace, AbstractPreconditioner, batch_apply, parameters, real_ravel
from nqs_core.distributed import n_ranks

from ._sr import SOLVERS, solve_sr


def score_jacobian(ansatz, xs, chunk_size=None):
    """`B[s, k, i] = d/dtheta_i d/dx_k Re log psi(x_s)`: the parameter derivatives of
    the score `grad_x log|psi|`, shape `(M, D, P)` (`D` coordinates, `P` real parameters)."""
    params, static = parameters(ansatz)
    vec, unravel = real_ravel(params)
    shape = xs.shape[1:]

    def score(v, x):
        model = eqx.combine(unravel(v), static)
        return jax.grad(lambda y: jnp.real(model(y.reshape(shape))))(x.reshape(-1))

    return batch_apply(lambda x: jax.jacrev(score)(vec, x), xs, chunk_size)


def dgd_metric(ansatz, xs, chunk_size=None):
    """`G_VMC = 1/4 sum_k E[d_i d_xk ln p  d_j d_xk ln p]` with `p = |psi|^2` (Drissi et al. 2024),
    i.e. `E[sum_k B_ki B_kj]` with `B = d_theta grad_x log|psi|`; dense `(P, P)`."""
    b = score_jacobian(ansatz, xs, chunk_size)
    b = b.reshape(-1, b.shape[-1]) / jnp.sqrt(xs.shape[0])
    return b.T @ b


class DGD(AbstractPreconditioner):
    """Decision gradient descent with the VMC (Hyvarinen) scoring rule (Drissi et al. 2024).

    The metric is the one of the VMC score: for `p = |psi|^2`,
    `G_VMC_ij = 1/4 sum_k E_p[d_theta_i d_x_k ln p  d_theta_j d_x_k ln p]`,
    built from the derivatives of the *score* `grad_x log|psi|` with respect
    to the parameters (so it exists only for continuum systems). The direction
    is `(G_VMC + lambda I)^{-1} grad E`; with optax `sgd(lr)` the update is
    `delta = -lr G^{-1} grad E`.

    `G = B^T B` with `B` the `(M D) x P` matrix of `d_theta d_x log|psi| / sqrt(M)`;
    the solve is SR's: dense `P x P` Cholesky or CG on `v -> B^T B v + lambda v` (lineax).

    **Arguments:**

    - `diag_shift`: `lambda` added to the diagonal.
    - `diag_scale`: additionally `diag_scale * diag(G)`.
    - `solver`: `"cholesky"` or `"cg"`.
    - `chunk_size`: samples per batch when building `B` (`None`: all).
    """

    diag_shift: float = 1e-3
    diag_scale: float = 0.0
    solver: str = eqx.field(default="cholesky", static=True)
    chunk_size: int | None = eqx.field(default=None, static=True)

    def __init__(self, diag_shift: float = 1e-3, diag_scale: float = 0.0, solver: str = "cholesky", chunk_size: int | None = None):
        if solver not in SOLVERS:
            raise ValueError(f"unknown DGD solver {solver!r}; valid: {', '.join(SOLVERS)}")
        if diag_shift < 0 or diag_scale < 0:
            raise ValueError("diag_shift and diag_scale must be >= 0")
        self.diag_shift = diag_shift
        self.diag_scale = diag_scale
        self.solver = solver
        self.chunk_size = chunk_size

    def init(self, ansatz, samples):
        return None

    def check_system(self, system):
        """Refuse a system without continuous coordinates (the metric differentiates in `x`)."""
        if not isinstance(system.space, AbstractContinuousSpace):
            raise ValueError(
                "DGD needs a continuum system (its metric uses d/dx log psi), but the space "
                f"{type(system.space).__name__} is discrete; use the sr preconditioner for spins"
            )

    def __call__(self, context, state):
        if n_ranks() > 1:
            raise NotImplementedError("DGD runs in one process only")
        self.check_system(context.system)
        ansatz = context.ansatz
        xs = context.flat_samples
        grad = context.gradient()
        g, unravel = real_ravel(grad)
        b = score_jacobian(ansatz, xs, self.chunk_size)
        b = b.reshape(-1, b.shape[-1]) / jnp.sqrt(xs.shape[0])
        delta, ok = solve_sr(b, g, self.diag_shift, self.diag_scale, self.solver)
        return unravel(delta), state, {"solve_ok": ok}
