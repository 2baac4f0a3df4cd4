"""Neural control variates for lattice phi^4 (Bedaque and Oh 2024, Eqs. 5-9, 15): the
network `g0` and the control variate it defines (training: `_train.py`, transfer
training over time slices: `_transfer.py`).

`f(phi) = sum_x [dg_x/dphi_x - g_x dS/dphi_x]` has `<f> = 0` for any smooth `g`
(integration by parts, Eq. 6). `g` is translation covariant, `g_x(phi) = g0(T_x phi)`
with `(T_x phi)_y = phi_{x+y}` (Eq. 9), and `g0` is one fully connected network.
"""

from __future__ import annotations

import math
from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ._system import Phi4Action
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


def variance_ratio(cv: ControlVariate, phi) -> float:
    """`sigma_raw / sigma_CV = std(O) / std(O - f)` on configurations `phi`."""
    phi = jnp.asarray(phi)
    o = np.asarray(cv.observable(phi))
    imp = np.asarray(cv.improved(phi))
    return float(np.std(o) / np.std(imp))
