"""Optimal step size alpha* and momentum mu* on top of any preconditioner (Drissi et al. 2024)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from nqs_core import AbstractPreconditioner, parameters, real_ravel
from nqs_core.distributed import n_ranks, sum_over_ranks

from ._sr import SR


def fisher_products(ansatz, xs, directions):
    """`F_ab = d_a^T F d_b` for the Fisher of `p = |psi|^2`,
    `F = 4 Re Cov(O, O)`, `O = d log psi / d theta`, without forming `F`:
    one forward-mode derivative of `log psi` over the batch per direction.

    **Arguments:** `ansatz`, `xs` (`(M, *shape)`), `directions` (list of real
    parameter vectors in `real_ravel` order).

    **Returns:** the `(n, n)` matrix of products.
    """
    params, static = parameters(ansatz)
    vec, unravel = real_ravel(params)

    def logpsi(v):
        return jax.vmap(eqx.combine(unravel(v), static))(xs)

    m = xs.shape[0] * n_ranks()
    cols = []
    for d in directions:
        _, t = jax.jvp(logpsi, (vec,), (d,))
        cols.append(t - sum_over_ranks(jnp.sum(t)) / m)
    j = jnp.stack(cols)  # (n, M), centred
    return 4.0 * jnp.real(sum_over_ranks(jnp.conj(j) @ j.T)) / m


def energy_subspace_model(system, ansatz, xs, directions):
    """Gradient `b` and Hessian `H` of the sampled energy restricted to the plane
    `theta + x_1 d_1 + x_2 d_2` at `x = 0` (the energy's second-order expansion
    along the current direction and the previous update).

    The energy at `theta + x.d` is the reweighted sample estimate
    `E(x) = sum_i w_i(x) E_L(X_i; theta + x.d) / sum_i w_i(x)`,
    `w_i(x) = |psi_{theta + x.d}(X_i) / psi_theta(X_i)|^2`, on the current samples
    `X_i ~ |psi_theta|^2`; `b = grad_x E(0)` and `H = hess_x E(0)` (forward mode,
    two directions, so the cost is a few local-energy evaluations). `b` equals
    `(grad E . d_1, grad E . d_2)` up to the zero-mean term `<d E_L / d theta>`,
    and `H` contains the sampled energy-covariance terms
    `2 Cov(O_a O_b + d_a O_b, E_L) + 2 Cov(O_a, d_b E_L) + ...` that the Fisher
    model leaves out.

    **Returns:** `(b, H)`, shapes `(2,)` and `(2, 2)`.
    """
    params, static = parameters(ansatz)
    vec, unravel = real_ravel(params)
    dmat = jnp.stack(directions)  # (2, P)
    log0 = jax.lax.stop_gradient(jnp.real(jax.vmap(ansatz)(xs)))

    def energy(x):
        model = eqx.combine(unravel(vec + x @ dmat), static)
        logp = jnp.real(jax.vmap(model)(xs))
        eloc = jnp.real(jax.vmap(lambda c: system.local_energy(model, c))(xs))
        w = jnp.exp(2.0 * (logp - log0))
        return sum_over_ranks(jnp.sum(w * eloc)) / sum_over_ranks(jnp.sum(w))

    x0 = jnp.zeros((2,), vec.dtype)
    b = jax.jacfwd(energy)(x0)
    h = jax.jacfwd(jax.jacfwd(energy))(x0)
    return b, 0.5 * (h + h.T)


def optimal_coefficients(f, b, diag_shift: float = 1e-10):
    """`(alpha*, mu*) = -F^{-1} b` for the 2x2 matrix `f` of Fisher products and
    `b = (grad E . Delta, grad E . delta_prev)` (the formula of Drissi et al. 2024: the
    minimum of `M(alpha Delta + mu delta) = 1/2 x^T F x + grad E^T x`).

    A relative shift `diag_shift * trace(f)` regularises the solve; when the
    previous update vanishes (first step) `mu* = 0` and `alpha*` is the 1D minimum.
    """
    reg = diag_shift * jnp.trace(f) + jnp.finfo(f.dtype).tiny
    a = f + reg * jnp.eye(2, dtype=f.dtype)
    op = lx.MatrixLinearOperator(a, lx.positive_semidefinite_tag)
    sol = lx.linear_solve(op, -b, lx.Cholesky(), throw=False)
    ok = (sol.result == lx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
    # fallback: alpha only (also the exact answer when the previous update is zero)
    alpha_only = jnp.stack([-b[0] / (f[0, 0] + reg), jnp.zeros((), f.dtype)])
    return jnp.where(ok, sol.value, alpha_only), ok


class OptimalStep(AbstractPreconditioner):
    """Optimal scaling `alpha*` and momentum `mu*` (Drissi et al. 2024) on top of any preconditioner.

    With `Delta_n = -inner(grad E)` the inner preconditioner's step and
    `delta_{n-1}` the previous update, the update is
    `delta_n = alpha* Delta_n + mu* delta_{n-1}`, where `(alpha*, mu*)` minimise the
    quadratic model `M(delta) = 1/2 delta^T F delta + grad E^T delta` with the
    Fisher `F` of `|psi|^2` (`4 x` the quantum geometric tensor), estimated from
    the current samples (the 2x2 system of Drissi et al. 2024; `F` is never formed).

    It sets the step length itself: **use it with optax `sgd(learning_rate=1)`**
    (the direction it returns is `-delta_n`, and it remembers `delta_n` as the
    previous update, which is only the applied update for `sgd(1)`).

    **Arguments:**

    - `inner`: any preconditioner (default `SR()`); a nested table in TOML.
    - `momentum`: include `mu*` (default `True`); `False` gives only `alpha*`.
    - `diag_shift`: relative regularisation of the 2x2 solve.
    - `max_alpha`: optional cap on `|alpha*|` and `|mu*|` (guards against tiny curvature).
    - `trust_radius`: optional trust region (Drissi et al. 2024), `delta^T F delta <= r^2`:
      when the model minimum lies outside, `(alpha*, mu*)` are scaled onto its
      boundary. The quadratic model uses the Fisher, not the energy Hessian, so
      far from the minimum its unconstrained step can be much too long (see
      docs/components/optim.md, "KFAC, DGD and the optimal step").
    - `trust_decay`: optional decay of the trust radius, `r_n = r / (1 + n / trust_decay)`
      at step `n`: near the minimum the sampled model is dominated by noise and
      a fixed radius keeps taking full-length steps (a stochastic-approximation
      schedule; the step count is kept in the state).

    - `curvature`: the matrix of the 2x2 model. `"fisher"` (default, the
      formula of Drissi et al. 2024): `F`, the Fisher of `|psi|^2`. `"energy"`: the Hessian
      of the sampled (reweighted) energy in the plane of `Delta_n` and
      `delta_{n-1}` (`energy_subspace_model`; needs `system`), with gradient
      from the same expansion (the Hamiltonian is the step's
      `StepContext.system`); when that 2x2 Hessian is not positive definite
      the Fisher model is used for that step.

    `info` reports `alpha` and `mu`.

    **Example (TOML):**

    ```toml
    [preconditioner]
    name = "optimal_step"
    inner = { name = "kfac", damping = 1e-3 }

    [optimizer]
    name = "sgd"
    learning_rate = 1.0
    ```
    """

    inner: AbstractPreconditioner = eqx.field(default_factory=SR)
    momentum: bool = eqx.field(default=True, static=True)
    diag_shift: float = 1e-10
    max_alpha: float | None = None
    trust_radius: float | None = None
    trust_decay: float | None = None
    curvature: str = eqx.field(default="fisher", static=True)

    def __check_init__(self):
        if self.trust_decay is not None and (self.trust_decay <= 0 or self.trust_radius is None):
            raise ValueError(f"trust_decay must be positive and needs trust_radius, got {self.trust_decay}")
        if self.curvature not in ("fisher", "energy"):
            raise ValueError(f"curvature must be 'fisher' or 'energy', got {self.curvature!r}")
        if not isinstance(self.inner, AbstractPreconditioner):
            raise TypeError(f"inner must be a preconditioner, got {type(self.inner).__name__}")
        if self.diag_shift < 0:
            raise ValueError(f"diag_shift must be >= 0, got {self.diag_shift}")
        if self.max_alpha is not None and self.max_alpha <= 0:
            raise ValueError(f"max_alpha must be positive, got {self.max_alpha}")
        if self.trust_radius is not None and self.trust_radius <= 0:
            raise ValueError(f"trust_radius must be positive, got {self.trust_radius}")

    def _solve(self, f, b):
        if self.momentum:
            return optimal_coefficients(f, b, self.diag_shift)
        reg = self.diag_shift * jnp.abs(f[0, 0]) + jnp.finfo(f.dtype).tiny
        coeffs = jnp.stack([-b[0] / (f[0, 0] + reg), jnp.zeros((), f.dtype)])
        return coeffs, jnp.isfinite(coeffs[0])

    def init(self, ansatz, samples):
        vec, _ = real_ravel(parameters(ansatz)[0])
        return (self.inner.init(ansatz, samples), jnp.zeros_like(vec), jnp.zeros((), vec.dtype))

    def __call__(self, context, state):
        inner_state, prev, count = state
        d_inner, inner_state, info = self.inner(context, inner_state)
        step, unravel = real_ravel(d_inner)
        step = -step
        g, _ = real_ravel(context.gradient())
        ansatz, xs = context.ansatz, context.flat_samples
        f = fisher_products(ansatz, xs, [step, prev])
        b = jnp.stack([g @ step, g @ prev])
        coeffs, ok = self._solve(f, b)
        if self.curvature == "energy":
            b_e, h_e = energy_subspace_model(context.system, ansatz, xs, [step, prev])
            c_e, ok_e = self._solve(h_e, b_e)
            # the Hessian of the sampled energy need not be positive definite: Fisher model then
            reg = self.diag_shift * jnp.abs(jnp.trace(h_e)) + jnp.finfo(f.dtype).tiny
            h_reg = h_e + reg * jnp.eye(2, dtype=h_e.dtype)
            if not self.momentum:
                h_reg = h_reg.at[1, 1].set(1.0).at[0, 1].set(0.0).at[1, 0].set(0.0)
            pd = (h_reg[0, 0] > 0) & (jnp.linalg.det(h_reg) > 0)
            use = pd & ok_e & jnp.all(jnp.isfinite(c_e))
            coeffs = jnp.where(use, c_e, coeffs)
            info = {**info, "energy_model_used": use.astype(jnp.int32)}
        if self.max_alpha is not None:
            coeffs = jnp.clip(coeffs, -self.max_alpha, self.max_alpha)
        coeffs = jnp.where(jnp.isfinite(coeffs), coeffs, 0.0)
        fnorm = jnp.sqrt(jnp.maximum(coeffs @ (f @ coeffs), 0.0))
        if self.trust_radius is not None:
            radius = self.trust_radius if self.trust_decay is None else self.trust_radius / (1.0 + count / self.trust_decay)
            coeffs = coeffs * jnp.minimum(1.0, radius / jnp.maximum(fnorm, jnp.finfo(f.dtype).tiny))
        update = coeffs[0] * step + coeffs[1] * prev
        info = {**info, "alpha": coeffs[0], "mu": coeffs[1], "fisher_norm": fnorm, "optimal_step_ok": ok.astype(jnp.int32)}
        return unravel(-update), (inner_state, update, count + 1.0), info
