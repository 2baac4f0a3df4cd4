"""Restricted Boltzmann machine."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAnsatz, AbstractSpace

from ._common import encode, input_encoding, log_cosh, normal, resolve_dtype, sum_log_cosh


class RBM(AbstractAnsatz):
    """Restricted Boltzmann machine (Carleo & Troyer 2017).

    `log psi(s) = a . s + sum_j log cosh(b_j + W_j . s)` with `alpha * N` hidden units.

    **Arguments:**

    - `space`: the configuration space (gives `N`, injected from `[space]`).
    - `alpha`: hidden-unit density (`n_hidden = alpha * N`).
    - `param_dtype`: `"float64"` (real, positive wave functions) or `"complex128"`
      (sign and phase structure).
    - `use_visible_bias`, `use_hidden_bias`: include `a` and `b`.
    - `init_std`: standard deviation of the normal initialisation.
    - `encoding`: the input encoding: `"value"` (default: the configuration
      values, `s`) or `"one_hot"` (per site one input per local state, `d N`
      visible units; for d-level sites such as spin S).
    - `key`: PRNG key for the initialisation (injected from the run seed).
    """

    weights: Array
    hidden_bias: Array | None
    visible_bias: Array | None
    local_states: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        alpha: int = 1,
        param_dtype: str = "float64",
        use_visible_bias: bool = True,
        use_hidden_bias: bool = True,
        init_std: float = 0.01,
        encoding: str = "value",
        *,
        key: PRNGKeyArray,
    ):
        if alpha < 1:
            raise ValueError(f"alpha must be a positive integer, got {alpha}")
        dtype = resolve_dtype(param_dtype)
        n = space.size
        n_in, self.local_states = input_encoding(space, encoding)
        kw, kb, ka = jax.random.split(key, 3)
        self.weights = normal(kw, (alpha * n, n_in), dtype, init_std)
        self.hidden_bias = normal(kb, (alpha * n,), dtype, init_std) if use_hidden_bias else None
        self.visible_bias = normal(ka, (n_in,), dtype, init_std) if use_visible_bias else None

    def __call__(self, x):
        x = encode(x, self.local_states).astype(self.weights.dtype)
        theta = self.weights @ x
        if self.hidden_bias is not None:
            theta = theta + self.hidden_bias
        # real parameters: one logarithm per 64 hidden units (sum_log_cosh)
        out = jnp.sum(log_cosh(theta)) if jnp.iscomplexobj(theta) else sum_log_cosh(theta)
        if self.visible_bias is not None:
            out = out + jnp.sum(self.visible_bias * x)  # fuses with the rest (a dot is its own kernel)
        return out

    @property
    def holomorphic(self) -> bool:
        """`True` with complex parameters (`log psi` is a sum of `log cosh` of
        linear functions of them, and `a . s`)."""
        return bool(jnp.iscomplexobj(self.weights))

    def product_state(self, space, amplitudes):
        """The RBM of an exact product state (the TDVP driver's `initial_state`).

        Hidden unit `j` is connected to site `j mod N` only (its weights to
        the other sites are set to 0, its weights to that site and its bias
        are kept), so each site's factor is the visible bias term times the
        `log cosh` of its own hidden units, and the visible bias is solved so
        that the factor equals `amplitudes` (exact for spin 1/2 with the
        `"value"` encoding and for any `d` with `"one_hot"`). The derivatives
        with respect to the zeroed weights do not vanish, so a time evolution
        can leave the product manifold.

        **Raises:** `ValueError` without a visible bias, with `"value"`
        encoding on more than two local states, or for amplitudes with a sign
        or phase on real parameters."""
        import numpy as np

        amps = np.asarray(amplitudes, dtype=complex).reshape(-1)
        values = tuple(float(v) for v in space.local_values)
        n, d = space.size, len(values)
        if amps.shape != (d,) or np.any(amps == 0):
            raise ValueError(f"a product state needs {d} non-zero local amplitudes (one per local state), got {amplitudes!r}")
        if self.visible_bias is None:
            raise ValueError("the RBM needs use_visible_bias = true to represent a product state")
        log_amp = np.log(amps)
        real = not jnp.iscomplexobj(self.weights)
        if real and (np.any(amps.real <= 0) or np.any(np.abs(amps.imag) > 0)):
            raise ValueError("amplitudes with a sign or phase need a complex RBM (param_dtype = \"complex128\")")
        if self.local_states is None and d != 2:
            raise ValueError(f"a product state of {d} local states needs encoding = \"one_hot\"")
        n_hidden = self.weights.shape[0]
        site_of_hidden = np.arange(n_hidden) % n
        w = np.asarray(self.weights)
        b = np.asarray(self.hidden_bias) if self.hidden_bias is not None else np.zeros(n_hidden, w.dtype)
        per_site = w.shape[1] // n  # inputs per site: 1 (value) or d (one_hot)
        mask = np.zeros_like(w, dtype=bool)
        for j in range(n_hidden):
            i = site_of_hidden[j]
            mask[j, i * per_site:(i + 1) * per_site] = True
        # on-site weights of order one (their phases kept): a hidden unit whose
        # tanh(b + W x) is small would make the correlated directions of the
        # tangent space tiny, and an evolution would need huge velocities
        mag = np.abs(w)
        spread = 0.5 + 0.5 * (np.arange(n_hidden) // n + 1) / (n_hidden // n + 1)
        w = np.where(mask, np.where(mag > 0, w / np.where(mag > 0, mag, 1), 1.0) * spread[:, None], 0)
        a = np.array(self.visible_bias).astype(complex)
        for i in range(n):
            hidden = site_of_hidden == i
            cols = slice(i * per_site, (i + 1) * per_site)

            def lc(v):  # sum of log cosh of site i's hidden units for local value index v
                x = np.zeros(per_site)
                if per_site > 1:
                    x[self.local_states.index(values[v])] = 1.0
                else:
                    x[0] = values[v]
                z = b[hidden] + w[hidden][:, cols] @ x
                return np.sum(np.log(np.cosh(z.astype(complex))))

            if per_site > 1:  # one_hot: one bias per (site, local state) in local_states order
                order = [values.index(s) for s in self.local_states]
                a[cols] = [log_amp[v] - lc(v) for v in order]
            else:
                # a (v0 - v1) = log amp(v0) - log amp(v1) - (lc(v0) - lc(v1))
                a[i] = (log_amp[0] - log_amp[1] - (lc(0) - lc(1))) / (values[0] - values[1])
        if real:
            a = a.real
        model = eqx.tree_at(lambda m: m.weights, self, jnp.asarray(w, dtype=self.weights.dtype))
        return eqx.tree_at(lambda m: m.visible_bias, model, jnp.asarray(a, dtype=self.visible_bias.dtype))
