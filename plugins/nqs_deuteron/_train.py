"""Pieces of the deuteron driver's training (deterministic quadrature, no sampling):
the Gaussian pre-training, the BFGS polish and the per-wave overlaps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from jax.flatten_util import ravel_pytree

from ._ansatz import DeuteronNetwork


def gaussian_targets(k, b: float = 1.5):
    """The pre-training targets of Keeble and Rios 2020, `psi_L(k) = N_L k^L exp(-b^2 k^2 / 2)`,
    `L = 0, 2`, each normalised to `int dk k^2 psi_L^2 = 1` (`b` in fm)."""
    k = jnp.asarray(k)
    n0 = np.sqrt(4.0 * b**3 / np.sqrt(np.pi))
    n2 = np.sqrt(16.0 * b**7 / (15.0 * np.sqrt(np.pi)))
    g = jnp.exp(-0.5 * b**2 * k**2)
    return n0 * g, n2 * k**2 * g


def _split(network):
    return eqx.partition(network, eqx.is_inexact_array)


def pretrain(network: DeuteronNetwork, k, b: float = 1.5, n_steps: int = 1000, learning_rate: float = 1e-2):
    """Fit the network to `gaussian_targets(k, b)` (mean squared error on the mesh, Adam).

    **Returns:** `(network, final_loss)`.
    """
    ts, td = gaussian_targets(k, b)
    params, static = _split(network)

    def loss(p):
        ps, pd = eqx.combine(p, static).on_mesh(k)
        return jnp.mean((ps - ts) ** 2 + (pd - td) ** 2)

    params, value = _adam(loss, params, n_steps, learning_rate)
    return eqx.combine(params, static), float(value)


def _adam(loss, params, n_steps, learning_rate):
    opt = optax.adam(learning_rate)

    @jax.jit
    def run(params):
        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, _), values = jax.lax.scan(step, (params, opt.init(params)), None, length=n_steps)
        return p, values

    # optax's step counter is int32: trace under standard promotion (the tests run strict)
    with jax.numpy_dtype_promotion("standard"):
        params, values = run(params)
    return params, (values[-1] if n_steps else loss(params))


def _bfgs(loss, params, n_steps):
    """Full-memory BFGS (scipy) on the flattened parameters, gradients from jax.

    The network has only `4 n_hidden` parameters, so the dense inverse-Hessian
    estimate is cheap; on the N3LO table it reaches sub-keV accuracy where
    optax L-BFGS (memory 10) stalled at 5-50 keV after 4000 steps."""
    flat, unravel = ravel_pytree(params)
    vg = jax.jit(jax.value_and_grad(lambda v: loss(unravel(v))))
    history = []

    def fun(v):
        value, grad = vg(jnp.asarray(v))
        return float(value), np.asarray(grad)

    res = scipy.optimize.minimize(
        fun, np.asarray(flat), jac=True, method="BFGS",
        callback=lambda intermediate_result: history.append(float(intermediate_result.fun)), options={"maxiter": n_steps, "gtol": 1e-12},
    )
    return unravel(jnp.asarray(res.x)), history


def _overlap(ham, a, b):
    s = np.sqrt(ham.mesh.w) * ham.mesh.k
    ua, ub = s * np.asarray(a), s * np.asarray(b)
    return float((ua @ ub) ** 2 / ((ua @ ua) * (ub @ ub)))
