"""Training a neural control variate (Bedaque and Oh 2024, Eqs. 13, 16): the loss, the
Adam loop over epochs, and the exact output-layer fit and linear start that can
precede it."""

from __future__ import annotations

import math
import time
from typing import Callable

import equinox as eqx
import jax.flatten_util
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from ._cv import ControlVariate, CVNetwork, variance_ratio
from ._observables import correlator_at


def l2_norm(network: CVNetwork) -> Array:
    """Sum of squares of all network parameters (the regulariser of Eq. 13)."""
    return sum(jnp.sum(p * p) for p in jax.tree.leaves(eqx.filter(network, eqx.is_inexact_array)))


def cv_loss(cv: ControlVariate, phi: Array, delta: float) -> Array:
    """Eq. 13: `mean_a (O(phi_a) - f(phi_a) - mu)^2 + delta * sum w^2` over a batch."""
    r = jax.vmap(lambda p: cv.observable(p) - cv.f(p))(phi) - cv.mu
    return jnp.mean(r * r) + delta * l2_norm(cv.network)


def paper_schedule(
    learning_rate: float = 1e-3, decay_rate: float = 0.99, transition_steps: int = 1000, final_learning_rate: float = 1e-6
) -> optax.Schedule:
    """Eq. 16: `eta(n) = lr * decay_rate^(n / transition_steps)` until it reaches
    `final_learning_rate` (at `n0` = 6.87e5 for the defaults), constant afterwards."""
    n0 = int(math.ceil(transition_steps * math.log(final_learning_rate / learning_rate) / math.log(decay_rate)))
    return optax.join_schedules(
        [optax.exponential_decay(learning_rate, transition_steps, decay_rate), optax.constant_schedule(final_learning_rate)],
        [max(n0, 1)],
    )


def _split(cv: ControlVariate):
    return eqx.partition(cv, eqx.is_inexact_array)


@eqx.filter_jit
def _epoch(params, static, opt_state, optimizer, phi, key, delta, batch_size: int):
    n = phi.shape[0]
    n_batches = n // batch_size
    perm = jax.random.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)

    def step(carry, idx):
        params, opt_state = carry

        def loss_fn(p):
            return cv_loss(eqx.combine(p, static), phi[idx], delta)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm)
    return params, opt_state, jnp.mean(losses)


def train_control_variate(
    cv: ControlVariate,
    phi_train,
    *,
    n_epochs: int = 100,
    batch_size: int = 1,
    delta: float = 0.0,
    learning_rate: float | optax.Schedule | None = None,
    key: PRNGKeyArray | None = None,
    phi_eval=None,
    eval_every: int = 0,
    refit_every: int = 0,
    callback: Callable[[dict], None] | None = None,
    lr_decay: str = "constant",
):
    """Train a control variate on `phi_train` by Adam on the loss of Eq. 13.

    One epoch is one pass over the shuffled training set in batches of `batch_size`
    (Bedaque and Oh 2024 use `batch_size = 1`: one gradient step per configuration).

    **Arguments:**

    - `cv`: the `ControlVariate` to train (its network and `mu` are trained).
    - `phi_train`: training configurations `(N, L0, L1)`.
    - `n_epochs`: passes over the training set.
    - `batch_size`: configurations per gradient step.
    - `delta`: L2 regularisation strength.
    - `learning_rate`: a float, an optax schedule, or `None` for Eq. 16 (`paper_schedule()`).
    - `lr_decay`: with a float `learning_rate`: `"constant"`, or `"cosine"` (cosine decay
      from `learning_rate` to `learning_rate / 100` over the `n_epochs` of this call; at
      strong coupling this found non-linear control variates that constant rates did not,
      see examples/phi4/README.md, section 3).
    - `key`: PRNG key for the shuffling.
    - `phi_eval`: optional held-out configurations; every `eval_every` epochs the ratio
      `sigma_raw / sigma_CV` on them is recorded (as Fig. 1).
    - `refit_every`: if positive, the output layer and `mu` are set to their exact
      optimum (`fit_output_layer`) before training and every `refit_every` epochs
      (variable projection; `f` is linear in the output layer). 0: plain Adam, as Bedaque and Oh 2024.
    - `callback`: called with each history record.

    **Returns:** `(trained cv, history)`, `history` a list of dicts
    (`epoch`, `loss`, `time_s`, and `ratio` where evaluated).
    """
    phi_train = jnp.asarray(phi_train, dtype=jnp.float64)
    if phi_train.ndim != 3 or phi_train.shape[1:] != cv.action.shape:
        raise ValueError(f"phi_train must have shape (N, {cv.action.shape[0]}, {cv.action.shape[1]}), got {phi_train.shape}")
    if not 1 <= batch_size <= phi_train.shape[0]:
        raise ValueError(f"batch_size must be in [1, {phi_train.shape[0]}], got {batch_size}")
    if lr_decay not in ("constant", "cosine"):
        raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {lr_decay!r}")
    if learning_rate is None:
        learning_rate = paper_schedule()
    elif lr_decay == "cosine":
        if callable(learning_rate):
            raise ValueError("lr_decay='cosine' needs a float learning_rate, not a schedule")
        n_steps = max(n_epochs * (phi_train.shape[0] // batch_size), 1)
        learning_rate = optax.cosine_decay_schedule(float(learning_rate), n_steps, alpha=0.01)
    key = jax.random.PRNGKey(0) if key is None else key
    optimizer = optax.adam(learning_rate)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(eqx.filter(cv, eqx.is_inexact_array))
    if refit_every:
        cv = fit_output_layer(cv, phi_train, delta)
    params, static = _split(cv)
    history = []
    t0 = time.perf_counter()
    if n_epochs < 0:
        raise ValueError(f"n_epochs must be >= 0, got {n_epochs}")
    for epoch in range(1, n_epochs + 1):
        key, sub = jax.random.split(key)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts with floats
            params, opt_state, loss = _epoch(params, static, opt_state, optimizer, phi_train, sub, float(delta), batch_size)
        if refit_every and epoch % refit_every == 0:
            params = _split(fit_output_layer(eqx.combine(params, static), phi_train, delta))[0]
        rec = {"epoch": epoch, "loss": float(loss), "time_s": time.perf_counter() - t0}
        if phi_eval is not None and eval_every and (epoch % eval_every == 0 or epoch == n_epochs):
            rec["ratio"] = variance_ratio(eqx.combine(params, static), phi_eval)
        history.append(rec)
        if callback is not None:
            callback(rec)
    return eqx.combine(params, static), history


def fit_output_layer(cv: ControlVariate, phi_train, delta: float = 0.0, chunk_size: int = 256) -> ControlVariate:
    """Set the output layer of the network (and `mu`) to the exact minimiser of Eq. 13
    with all other weights held fixed.

    `f` is linear in the output-layer weights `v` (and bias), `f = F v`, so Eq. 13 in `v`
    and `mu` is ridge regression: `(F_c^T F_c / N + delta I) v = F_c^T O_c / N` with
    centred features `F_c` and observable `O_c`, `mu = mean(O) - mean(F) v`. For a linear
    `g0` (no hidden layer) this is the global minimum of Eq. 13. A good start for Adam:
    the loss is badly conditioned in the output scale (steps of size `lr` move `f` by
    `~ lr V`), which costs the plain schedule of Eq. 16 hundreds of epochs.

    **Arguments:**

    - `cv`: the control variate; its network's last layer is replaced.
    - `phi_train`: training configurations `(N, L0, L1)`.
    - `delta`: the L2 regularisation of Eq. 13.
    - `chunk_size`: configurations per vectorised feature evaluation.

    **Returns:** the updated `ControlVariate`.
    """
    import lineax as lx

    phi_train = jnp.asarray(phi_train, dtype=jnp.float64)
    net = cv.network

    def last(n):
        return (n.weights[-1], None if n.biases is None else n.biases[-1])

    def set_last(n, v):
        w, b = v
        n = eqx.tree_at(lambda m: m.weights[-1], n, w)
        if b is not None:
            n = eqx.tree_at(lambda m: m.biases[-1], n, b)
        return n

    v0 = last(net)
    flat0, unravel = jax.flatten_util.ravel_pytree(v0)

    @eqx.filter_jit
    def features(cv, p):
        def f_of(vflat, one):
            return eqx.tree_at(lambda c: c.network, cv, set_last(cv.network, unravel(vflat))).f(one)

        return jax.vmap(jax.grad(f_of), in_axes=(None, 0))(jnp.zeros_like(flat0), p)

    F = jnp.concatenate([features(cv, phi_train[i : i + chunk_size]) for i in range(0, phi_train.shape[0], chunk_size)])
    o = correlator_at(phi_train, cv.t)
    n = F.shape[0]
    Fm, om = jnp.mean(F, axis=0), jnp.mean(o)
    Fc, oc = F - Fm, o - om
    mat = Fc.T @ Fc / n + delta * jnp.eye(F.shape[1], dtype=F.dtype)
    rhs = Fc.T @ oc / n
    # a tiny relative shift keeps the Cholesky solve well defined when delta = 0
    mat = mat + 1e-12 * jnp.trace(mat) / F.shape[1] * jnp.eye(F.shape[1], dtype=F.dtype)
    op = lx.MatrixLinearOperator(mat, lx.positive_semidefinite_tag)
    sol = lx.linear_solve(op, rhs, solver=lx.Cholesky(), throw=False)
    v = sol.value
    net = set_last(net, unravel(v))
    return ControlVariate(cv.action, net, cv.t, mu=om - Fm @ v)


def linear_start(cv: ControlVariate, phi_train, delta: float = 0.0, *, amplitude: float = 1.0, noise: float = 0.01, key: PRNGKeyArray | None = None) -> ControlVariate:
    """Initialise a network with hidden layers at the best linear control variate.

    Fits the optimal linear `g0` (`fit_output_layer` of a network without hidden
    layer), points every first-layer neuron along it (random sign and magnitude, so
    that its pre-activation has standard deviation `~ amplitude` on the training
    set, plus the random initial weights rescaled to a pre-activation standard
    deviation `noise * amplitude`), sets later hidden layers to the identity (plus
    `noise` times their random weights) and fits the output layer exactly. For small
    `amplitude` and `noise` the network starts at (nearly) the linear optimum, in the
    mildly non-linear regime of arcsinh, and training adds the non-linear part (the
    linear optimum is the weak-coupling answer, Bedaque and Oh 2024, Fig. 1).

    **Arguments:**

    - `cv`: the control variate whose network is initialised.
    - `phi_train`: training configurations `(N, L0, L1)`.
    - `delta`: the L2 regularisation of Eq. 13 for the exact solves.
    - `amplitude`: pre-activation scale of the first hidden layer.
    - `noise`: relative size of the random (symmetry-breaking) part of the weights.
    - `key`: PRNG key.

    **Returns:** the initialised `ControlVariate`.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    net = cv.network
    lin_net = CVNetwork(net.L0, net.L1, hidden=(), odd=net.odd, activation=net.activation, reflect=net.reflect, key=key)
    lin = fit_output_layer(ControlVariate(cv.action, lin_net, cv.t), phi_train, delta)
    if len(net.weights) == 1:
        return lin
    w = lin.network.weights[0][0]
    sub = jnp.asarray(phi_train[:256])
    u = jax.vmap(lambda p: lin.network._first_layer(p)[0, :, 0])(sub)
    s = jnp.std(u) + 1e-300
    # the random part of the first layer, scaled so that its pre-activations have standard
    # deviation `noise * amplitude` (relative to the aligned part, whatever the field scale)
    ur = jax.vmap(lambda p: net._first_layer(p)[0] - net._bias(0))(sub)
    sr = jnp.std(ur) + 1e-300
    k1, k2, k3 = jax.random.split(key, 3)
    H = net.weights[0].shape[0]
    c = jax.random.choice(k1, jnp.array([-1.0, 1.0]), (H,)) * jax.random.uniform(k2, (H,), minval=0.5, maxval=1.5)
    w0 = amplitude * (c[:, None, None] * w[None] / s + noise * net.weights[0] / sr)
    net = eqx.tree_at(lambda m: m.weights[0], net, w0)
    for i in range(1, len(net.weights) - 1):
        wi = net.weights[i]
        eye = jnp.eye(wi.shape[0], wi.shape[1], dtype=wi.dtype)
        net = eqx.tree_at(lambda m: m.weights[i], net, eye + noise * wi)
    if net.biases is not None:
        net = eqx.tree_at(lambda m: m.biases, net, [noise * b for b in net.biases])
    return fit_output_layer(ControlVariate(cv.action, net, cv.t, mu=cv.mu), phi_train, delta)
