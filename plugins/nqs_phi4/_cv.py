"""Neural control variates for lattice phi^4 (Bedaque and Oh 2024, Eqs. 5-13, 16).

`f(phi) = sum_x [dg_x/dphi_x - g_x dS/dphi_x]` has `<f> = 0` for any smooth `g`
(integration by parts, Eq. 6). `g` is translation covariant, `g_x(phi) = g0(T_x phi)`
with `(T_x phi)_y = phi_{x+y}` (Eq. 9), and `g0` is one fully connected network.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import equinox as eqx
import jax.flatten_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from ._action import Phi4Action
from ._observables import correlator_at

_ACTIVATIONS = {"arcsinh": jnp.arcsinh, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "softplus": jax.nn.softplus}
_ODD = ("arcsinh", "tanh")


class CVNetwork(eqx.Module):
    """The network `g0: R^V -> R` of Bedaque and Oh 2024 (Eq. 9), fully connected, and the
    translation-covariant field `g_x = g0(T_x phi)` it defines.

    All `V` shifted evaluations share one first-layer computation: the first layer at
    every shift is a circular cross-correlation of `phi` with each first-layer weight
    row, done by FFT (`O(H V log V)` instead of `O(H V^2)`); later layers act site by
    site. The divergence `sum_x dg_x/dphi_x = sum_x dg0/dpsi_0 (T_x phi)` is exact:
    the per-site gradient with respect to the first-layer pre-activations (one
    reverse pass for all sites) contracted with the first-layer weights of input 0.

    **Arguments:**

    - `L0`, `L1`: lattice size.
    - `hidden`: hidden-layer widths, e.g. `(16,)` (Fig. 3), `(4, 4, 4, 4, 4)` (Fig. 1),
      `()` for a linear `g0` (no hidden layer).
    - `odd`: no biases and an odd activation, so that `g0(-phi) = -g0(phi)` (for
      parity-symmetric theories; default `True`).
    - `activation`: `"arcsinh"` (default), `"tanh"`, `"gelu"`, `"softplus"` (the last two
      only with `odd=False`).
    - `reflect`: if `True`, `g0` is averaged over the four lattice reflections
      `psi_y -> psi_{R y}` (time, space, both), which leave `O(t)` and `S` invariant;
      fewer effective parameters, less overfitting (an extension, not in Bedaque and Oh 2024).
    - `key`: PRNG key for the initial weights (uniform, `+-1/sqrt(fan_in)`).
    """

    weights: list
    biases: list | None
    L0: int = eqx.field(static=True)
    L1: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    reflect: bool = eqx.field(static=True)

    def __init__(self, L0: int, L1: int, hidden: Sequence[int] = (16,), odd: bool = True, activation: str = "arcsinh", reflect: bool = False, *, key: PRNGKeyArray):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if odd and activation not in _ODD:
            raise ValueError(f"odd=True needs an odd activation {_ODD}, got {activation!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {hidden}")
        self.L0, self.L1, self.activation, self.reflect = int(L0), int(L1), activation, bool(reflect)
        sizes = hidden + (1,)
        fan_in = [L0 * L1] + list(hidden)
        keys = jax.random.split(key, 2 * len(sizes))
        ws, bs = [], []
        for i, (n_out, n_in) in enumerate(zip(sizes, fan_in)):
            lim = 1.0 / math.sqrt(n_in)
            shape = (n_out, L0, L1) if i == 0 else (n_out, n_in)
            ws.append(jax.random.uniform(keys[2 * i], shape, minval=-lim, maxval=lim, dtype=jnp.float64))
            bs.append(jax.random.uniform(keys[2 * i + 1], (n_out,), minval=-lim, maxval=lim, dtype=jnp.float64))
        self.weights = ws
        self.biases = None if odd else bs

    @property
    def odd(self) -> bool:
        return self.biases is None

    def _bias(self, i):
        return 0.0 if self.biases is None else self.biases[i]

    def _rest(self, h: Array) -> Array:
        """Layers after the first linear map, on pre-activations `h (..., H1)` -> `(...)`."""
        act = _ACTIVATIONS[self.activation]
        for i in range(1, len(self.weights)):
            h = act(h) @ self.weights[i].T + self._bias(i)
        return h[..., 0]

    def _first_weights(self) -> Array:
        """First-layer weights, `(R, H1, L0, L1)` over the reflections `R` used."""
        w = self.weights[0]
        if not self.reflect:
            return w[None]

        def rev(a, axis):  # y -> -y (mod L) along axis
            return jnp.roll(jnp.flip(a, axis=axis), 1, axis=axis)

        return jnp.stack([w, rev(w, 1), rev(w, 2), rev(rev(w, 1), 2)])

    def g0(self, psi: Array) -> Array:
        """`g0(psi)` on one field `(L0, L1)` (direct evaluation; reference implementation)."""
        outs = [self._rest(jnp.tensordot(w, psi, axes=((1, 2), (0, 1))) + self._bias(0)) for w in self._first_weights()]
        return sum(outs) / len(outs)

    def _first_layer(self, phi: Array) -> Array:
        """`h[r, x, k] = sum_y W^r_k[y] phi[x + y] + b_k` for all sites `x` and reflections `r`,
        shape `(R, V, H1)`."""
        s = (self.L0, self.L1)
        fw = jnp.fft.rfft2(self._first_weights(), s=s)
        fp = jnp.fft.rfft2(phi, s=s)
        h = jnp.fft.irfft2(jnp.conj(fw) * fp[None, None], s=s)
        return jnp.swapaxes(h.reshape(h.shape[0], h.shape[1], -1), 1, 2) + self._bias(0)

    def g(self, phi: Array) -> Array:
        """The covariant field `g_x(phi) = g0(T_x phi)`, shape `(L0, L1)`."""
        return jnp.mean(self._rest(self._first_layer(phi)), axis=0).reshape(self.L0, self.L1)

    def g_and_divergence(self, phi: Array) -> tuple[Array, Array]:
        """`(g (L0, L1), sum_x dg_x/dphi_x)`, exact."""
        h = self._first_layer(phi)
        out, vjp = jax.vjp(self._rest, h)
        (dh,) = vjp(jnp.ones_like(out))  # per-site d g0 / d h (sites are independent)
        # reflections fix the origin: the weight of input 0 is W[:, 0, 0] for every r
        div = jnp.sum(dh @ self.weights[0][:, 0, 0]) / h.shape[0]
        return jnp.mean(out, axis=0).reshape(self.L0, self.L1), div

    def divergence(self, phi: Array) -> Array:
        return self.g_and_divergence(phi)[1]


class ControlVariate(eqx.Module):
    """A neural control variate for the correlator `O(t)` of Eq. 15.

    `f(phi) = sum_x [dg_x/dphi_x - g_x dS/dphi_x]` (Eq. 5) with `g` from a `CVNetwork`;
    `<f> = 0` exactly, so `O - f` is an unbiased estimator of `<O>` with (after
    training) a smaller variance. `mu` is the trainable shift of the loss (Eq. 13); it
    is not part of the estimator (footnote 1).

    **Arguments:**

    - `action`: the `Phi4Action` whose `exp(-S)` the configurations follow.
    - `network`: the `CVNetwork` `g0`.
    - `t`: the time separation of the observable `O(t)`.
    - `mu`: initial shift (default 0).
    """

    action: Phi4Action
    network: CVNetwork
    mu: Array
    t: int = eqx.field(static=True)

    def __init__(self, action: Phi4Action, network: CVNetwork, t: int, mu=0.0):
        if not isinstance(action, Phi4Action):
            raise TypeError(f"action must be a Phi4Action, got {type(action).__name__}")
        if (network.L0, network.L1) != action.shape:
            raise ValueError(f"network lattice {(network.L0, network.L1)} does not match the action's {action.shape}")
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < action.shape[0]:
            raise ValueError(f"t must be an integer in [0, L0), got {t!r}")
        self.action = action
        self.network = network
        self.t = int(t)
        self.mu = jnp.asarray(mu, dtype=jnp.float64)

    def f(self, phi: Array) -> Array:
        """The control variate of one configuration `(L0, L1)`."""
        g, div = self.network.g_and_divergence(phi)
        return div - jnp.sum(g * self.action.grad(phi))

    def observable(self, phi: Array) -> Array:
        """`O(t)` of one configuration (or a batch)."""
        return correlator_at(phi, self.t)

    def improved(self, phi: Array, chunk_size: int = 512) -> Array:
        """`O(t) - f` of each configuration of a batch `(N, L0, L1)`."""
        return _batched(lambda cv, p: cv.observable(p) - cv.f(p), self, phi, chunk_size)

    def f_batch(self, phi: Array, chunk_size: int = 512) -> Array:
        """`f` of each configuration of a batch `(N, L0, L1)`."""
        return _batched(lambda cv, p: cv.f(p), self, phi, chunk_size)


@eqx.filter_jit
def _chunk_apply(fn, cv, phi):
    return jax.vmap(lambda p: fn(cv, p))(phi)


def _batched(fn, cv, phi, chunk_size):
    phi = jnp.asarray(phi)
    outs = [_chunk_apply(fn, cv, phi[i : i + chunk_size]) for i in range(0, phi.shape[0], chunk_size)]
    return jnp.concatenate(outs)


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


def variance_ratio(cv: ControlVariate, phi) -> float:
    """`sigma_raw / sigma_CV = std(O) / std(O - f)` on configurations `phi`."""
    phi = jnp.asarray(phi)
    o = np.asarray(cv.observable(phi))
    imp = np.asarray(cv.improved(phi))
    return float(np.std(o) / np.std(imp))


def transfer_train(
    action: Phi4Action,
    phi_train,
    ts: Sequence[int],
    *,
    hidden: Sequence[int] = (16,),
    odd: bool = True,
    activation: str = "arcsinh",
    reflect: bool = False,
    network: CVNetwork | None = None,
    start: str = "random",
    n_epochs_first: int = 100,
    n_epochs: int = 20,
    key: PRNGKeyArray | None = None,
    callback: Callable[[int, ControlVariate, list], None] | None = None,
    **train_kwargs,
) -> list[ControlVariate]:
    """One control variate per time slice, each initialised from the previous one
    (transfer training, Bedaque and Oh 2024, Sec. III).

    **Arguments:**

    - `action`, `phi_train`: as for `train_control_variate`.
    - `ts`: time separations in training order (e.g. `range(L0 // 2, -1, -1)`).
    - `hidden`, `odd`, `activation`, `reflect`: the `CVNetwork` of the first slice.
    - `network`: start the first slice from this network instead (e.g. a trained one).
    - `start`: `"random"` (Bedaque and Oh 2024) or `"linear"` (`linear_start` for the first slice).
    - `n_epochs_first`: epochs for the first slice; `n_epochs`: for every later one.
    - `key`: PRNG key (initial weights and shuffling).
    - `callback(t, cv, history)`: called after each slice.
    - `train_kwargs`: passed to `train_control_variate` (`delta`, `batch_size`,
      `learning_rate`, `refit_every`, ...).

    **Returns:** the trained control variates, in the order of `ts`.
    """
    if start not in ("random", "linear"):
        raise ValueError(f"start must be 'random' or 'linear', got {start!r}")
    key = jax.random.PRNGKey(0) if key is None else key
    key, sub = jax.random.split(key)
    net = network if network is not None else CVNetwork(*action.shape, hidden=hidden, odd=odd, activation=activation, reflect=reflect, key=sub)
    phi_train = jnp.asarray(phi_train, dtype=jnp.float64)
    out = []
    prev = None
    for i, t in enumerate(ts):
        mu0 = float(np.mean(np.asarray(correlator_at(phi_train, int(t)))))
        cv = ControlVariate(action, net if prev is None else prev.network, int(t), mu=mu0)
        key, sub = jax.random.split(key)
        if i == 0 and start == "linear" and network is None:
            cv = linear_start(cv, phi_train, float(train_kwargs.get("delta", 0.0)), key=sub)
        cv, hist = train_control_variate(cv, phi_train, n_epochs=n_epochs_first if i == 0 else n_epochs, key=sub, **train_kwargs)
        out.append(cv)
        prev = cv
        if callback is not None:
            callback(int(t), cv, hist)
    return out


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
