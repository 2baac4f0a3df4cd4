"""Neural control variates for lattice phi^4 (seed 001, Eqs. 5-13, 16).

`f(phi) = sum_x [dg_x/dphi_x - g_x dS/dphi_x]` has `<f> = 0` for any smooth `g`
(integration by parts, Eq. 6). `g` is translation covariant, `g_x(phi) = g0(T_x phi)`
with `(T_x phi)_y = phi_{x+y}` (Eq. 9), and `g0` is one fully connected network.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import equinox as eqx
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
    """The network `g0: R^V -> R` of seed 001 (Eq. 9), fully connected, and the
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
    - `key`: PRNG key for the initial weights (uniform, `+-1/sqrt(fan_in)`).
    """

    weights: list
    biases: list | None
    L0: int = eqx.field(static=True)
    L1: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, L0: int, L1: int, hidden: Sequence[int] = (16,), odd: bool = True, activation: str = "arcsinh", *, key: PRNGKeyArray):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if odd and activation not in _ODD:
            raise ValueError(f"odd=True needs an odd activation {_ODD}, got {activation!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {hidden}")
        self.L0, self.L1, self.activation = int(L0), int(L1), activation
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

    def g0(self, psi: Array) -> Array:
        """`g0(psi)` on one field `(L0, L1)` (direct evaluation; reference implementation)."""
        h = jnp.tensordot(self.weights[0], psi, axes=((1, 2), (0, 1))) + self._bias(0)
        return self._rest(h)

    def _first_layer(self, phi: Array) -> Array:
        """`h[x, k] = sum_y W_k[y] phi[x + y] + b_k` for all sites `x`, shape `(V, H1)`."""
        s = (self.L0, self.L1)
        fw = jnp.fft.rfft2(self.weights[0], s=s)
        fp = jnp.fft.rfft2(phi, s=s)
        h = jnp.fft.irfft2(jnp.conj(fw) * fp[None], s=s)
        return h.reshape(h.shape[0], -1).T + self._bias(0)

    def g(self, phi: Array) -> Array:
        """The covariant field `g_x(phi) = g0(T_x phi)`, shape `(L0, L1)`."""
        return self._rest(self._first_layer(phi)).reshape(self.L0, self.L1)

    def g_and_divergence(self, phi: Array) -> tuple[Array, Array]:
        """`(g (L0, L1), sum_x dg_x/dphi_x)`, exact."""
        h = self._first_layer(phi)
        out, vjp = jax.vjp(self._rest, h)
        (dh,) = vjp(jnp.ones_like(out))  # per-site d g0 / d h (sites are independent)
        div = jnp.sum(dh @ self.weights[0][:, 0, 0])
        return out.reshape(self.L0, self.L1), div

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
    callback: Callable[[dict], None] | None = None,
):
    """Train a control variate on `phi_train` by Adam on the loss of Eq. 13.

    One epoch is one pass over the shuffled training set in batches of `batch_size`
    (the paper uses `batch_size = 1`: one gradient step per configuration).

    **Arguments:**

    - `cv`: the `ControlVariate` to train (its network and `mu` are trained).
    - `phi_train`: training configurations `(N, L0, L1)`.
    - `n_epochs`: passes over the training set.
    - `batch_size`: configurations per gradient step.
    - `delta`: L2 regularisation strength.
    - `learning_rate`: a float, an optax schedule, or `None` for Eq. 16 (`paper_schedule()`).
    - `key`: PRNG key for the shuffling.
    - `phi_eval`: optional held-out configurations; every `eval_every` epochs the ratio
      `sigma_raw / sigma_CV` on them is recorded (as Fig. 1).
    - `callback`: called with each history record.

    **Returns:** `(trained cv, history)`, `history` a list of dicts
    (`epoch`, `loss`, `time_s`, and `ratio` where evaluated).
    """
    phi_train = jnp.asarray(phi_train, dtype=jnp.float64)
    if phi_train.ndim != 3 or phi_train.shape[1:] != cv.action.shape:
        raise ValueError(f"phi_train must have shape (N, {cv.action.shape[0]}, {cv.action.shape[1]}), got {phi_train.shape}")
    if not 1 <= batch_size <= phi_train.shape[0]:
        raise ValueError(f"batch_size must be in [1, {phi_train.shape[0]}], got {batch_size}")
    if learning_rate is None:
        learning_rate = paper_schedule()
    key = jax.random.PRNGKey(0) if key is None else key
    optimizer = optax.adam(learning_rate)
    params, static = _split(cv)
    opt_state = optimizer.init(params)
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        key, sub = jax.random.split(key)
        params, opt_state, loss = _epoch(params, static, opt_state, optimizer, phi_train, sub, float(delta), batch_size)
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
    n_epochs_first: int = 100,
    n_epochs: int = 20,
    key: PRNGKeyArray | None = None,
    callback: Callable[[int, ControlVariate, list], None] | None = None,
    **train_kwargs,
) -> list[ControlVariate]:
    """One control variate per time slice, each initialised from the previous one
    (transfer training, seed 001 Sec. III).

    **Arguments:**

    - `action`, `phi_train`: as for `train_control_variate`.
    - `ts`: time separations in training order (e.g. `range(L0 // 2, -1, -1)`).
    - `hidden`, `odd`, `activation`: the `CVNetwork` of the first slice.
    - `n_epochs_first`: epochs for the first slice; `n_epochs`: for every later one.
    - `key`: PRNG key (initial weights and shuffling).
    - `callback(t, cv, history)`: called after each slice.
    - `train_kwargs`: passed to `train_control_variate` (`delta`, `batch_size`, `learning_rate`, ...).

    **Returns:** the trained control variates, in the order of `ts`.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    key, sub = jax.random.split(key)
    net = CVNetwork(*action.shape, hidden=hidden, odd=odd, activation=activation, key=sub)
    out = []
    prev = None
    for i, t in enumerate(ts):
        mu0 = float(np.mean(np.asarray(correlator_at(jnp.asarray(phi_train), int(t)))))
        cv = ControlVariate(action, net if prev is None else prev.network, int(t), mu=mu0)
        key, sub = jax.random.split(key)
        cv, hist = train_control_variate(cv, phi_train, n_epochs=n_epochs_first if i == 0 else n_epochs, key=sub, **train_kwargs)
        out.append(cv)
        prev = cv
        if callback is not None:
            callback(int(t), cv, hist)
    return out
