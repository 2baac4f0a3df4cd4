"""Pre-training and energy minimisation of the deuteron network (deterministic quadrature, no sampling)."""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from jax.flatten_util import ravel_pytree

from ._system import DeuteronHamiltonian, MeshSolution
from ._ansatz import DeuteronNetwork
from ._potentials import AbstractPotential


class DeuteronResult(eqx.Module):
    """Outcome of `train_deuteron`.

    **Fields:** `network` (the trained `DeuteronNetwork`), `hamiltonian`,
    `exact` (`MeshSolution`), `energy` (MeV), `d_probability`, `fidelity`
    (S and D together), `fidelity_s`, `fidelity_d` (per wave, the
    `F^L` of Keeble and Rios 2020; `nan` for an absent D wave), `history` (energy after every
    minimisation step), `wall_time` (s).
    """

    network: DeuteronNetwork
    hamiltonian: DeuteronHamiltonian
    exact: MeshSolution
    energy: float
    d_probability: float
    fidelity: float
    fidelity_s: float
    fidelity_d: float
    history: np.ndarray
    wall_time: float


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


def train_deuteron(
    potential: AbstractPotential,
    n_hidden: int = 20,
    mesh=None,
    pretrain_steps: int = 1000,
    pretrain_b: float = 1.5,
    adam_steps: int = 0,
    learning_rate: float = 1e-2,
    bfgs_steps: int = 5000,
    seed: int = 0,
) -> DeuteronResult:
    """Train the deuteron network on a potential: pre-training to Gaussians, then
    minimisation of the quadrature energy with Adam (optax) followed by BFGS (scipy).

    **Arguments:**

    - `potential`: `Yamaguchi()`, `MalflietTjon()` or a table from `load_potential_table`.
    - `n_hidden`: hidden units of the `DeuteronNetwork`.
    - `mesh`: momentum mesh (default: the table's or the 64-point tangent mesh).
    - `pretrain_steps`, `pretrain_b`: Adam steps and Gaussian width (fm) of the pre-training.
    - `adam_steps`, `learning_rate`: Adam steps on the energy.
    - `bfgs_steps`: BFGS iterations after Adam (scipy, full memory; 0: none).
    - `seed`: initialisation seed.

    **Returns:** a `DeuteronResult` with the energy, D-state probability and the
    fidelity against the exact mesh solution.
    """
    t0 = time.perf_counter()
    for name, v in (("pretrain_steps", pretrain_steps), ("adam_steps", adam_steps), ("bfgs_steps", bfgs_steps)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    ham = DeuteronHamiltonian(potential, mesh)
    k = jnp.asarray(ham.mesh.k)
    network = DeuteronNetwork(n_hidden, key=jax.random.PRNGKey(seed))
    network, _ = pretrain(network, k, pretrain_b, pretrain_steps)
    params, static = _split(network)

    def energy(p):
        ps, pd = eqx.combine(p, static).on_mesh(k)
        return ham.energy(ps, pd)

    history = []
    if adam_steps:
        params, _ = _adam(energy, params, adam_steps, learning_rate)
        history.append(float(energy(params)))
    if bfgs_steps:
        params, values = _bfgs(energy, params, bfgs_steps)
        history.extend(values)
    network = eqx.combine(params, static)
    exact = ham.solve()
    ps, pd = network.on_mesh(k)
    e = float(ham.energy(ps, pd))
    fid = float(ham.fidelity(ps, pd, exact))
    fs = _overlap(ham, ps, exact.psi_s)
    fd = _overlap(ham, pd, exact.psi_d) if ham.coupled else float("nan")
    return DeuteronResult(
        network, ham, exact, e, float(ham.d_probability(ps, pd)), fid, fs, fd,
        np.asarray(history), time.perf_counter() - t0,
    )


def _overlap(ham, a, b):
    s = np.sqrt(ham.mesh.w) * ham.mesh.k
    ua, ub = s * np.asarray(a), s * np.asarray(b)
    return float((ua @ ub) ** 2 / ((ua @ ua) * (ub @ ub)))
