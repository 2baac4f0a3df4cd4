"""One-dimensional autoregressive GRU wave function (Roth 2020, Eqs. 4-8, Fig. 1)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


from nqs_core import AbstractAutoregressiveAnsatz, AbstractSpace

from ._common import GRUCell, Readout, check_positive_int, log_psi_from, one_hot, spin_of, spin_space_info, u1_mask


class GRU1D(AbstractAutoregressiveAnsatz):
    """Autoregressive recurrent wave function of a spin-1/2 chain (Roth 2020, Fig. 1).

    `psi(s) = prod_i psi(s_i | s_<i)`: a single-layer GRU (Eqs. 19-21) reads the
    spins one by one; the conditional of site `i` is read out from the hidden
    state *before* site `i` by a two-layer feed-forward network (Eq. 8): a softmax
    gives the conditional probability and a `(sin phi, cos phi)` two-vector the
    conditional phase. Every conditional is normalised, so `sum |psi|^2 = 1` and
    `sample` draws exact independent configurations (no Markov chain). The
    parameter shapes do not depend on the number of sites, so a model trained on
    `L` sites runs unchanged on `L + dL` (iterative retraining, `nqs grow`).

    With a space of fixed `total_sz` the conditionals are masked so that only
    configurations of that magnetisation have weight (U(1) constraint).

    **Arguments:**

    - `space`: a spin-1/2 space (`SpinHalf`), injected from `[space]`.
    - `hidden`: GRU hidden size (default 32).
    - `readout_hidden`: width of the feed-forward readout (default: `hidden`).
    - `phase`: learn a conditional phase (complex `log psi`; default `True`). Use
      `phase = false` with a sign-free Hamiltonian (e.g. Heisenberg with
      `marshall_sign = true`) for a real, positive wave function.
    - `key`: PRNG key for the initialisation (injected from the run seed).
    """

    cell: GRUCell
    readout: Readout
    n_sites: int = eqx.field(static=True)
    n_up: int | None = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        hidden: int = 32,
        readout_hidden: int | None = None,
        phase: bool = True,
        *,
        key: PRNGKeyArray,
    ):
        self.n_sites, self.n_up = spin_space_info("GRU1D", space)
        self.hidden = check_positive_int("hidden", hidden)
        readout_hidden = hidden if readout_hidden is None else check_positive_int("readout_hidden", readout_hidden)
        k1, k2 = jax.random.split(key)
        self.cell = GRUCell(2, hidden, key=k1)
        self.readout = Readout(hidden, readout_hidden, bool(phase), key=k2)

    def _check(self, x):
        if x.shape != (self.n_sites,):
            raise ValueError(f"GRU1D: configuration of shape {x.shape}, expected ({self.n_sites},)")

    def _heads(self, x: Array):
        """Per-site `(log p, phase)` for one configuration (teacher forcing)."""
        self._check(x)
        inputs = one_hot(jnp.concatenate([jnp.zeros((1,), x.dtype), x[:-1]]))

        def step(h, inp):
            h = self.cell(h, inp)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((self.hidden,), jnp.float64), inputs)
        mask = None
        if self.n_up is not None:
            ups = (x > 0).astype(jnp.int32)
            before = jnp.cumsum(ups) - ups
            mask = u1_mask(before, jnp.arange(self.n_sites), self.n_sites, self.n_up)
        return self.readout(hs, mask)

    def conditionals(self, x):
        return self._heads(x)[0]

    def __call__(self, x):
        logp, phase = self._heads(x)
        return log_psi_from(logp, phase, x)

    def sample(self, key, n):
        return self.sample_with_log_psi(key, n)[0]

    def sample_with_log_psi(self, key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        """`n` exact samples `(n, n_sites)` and their `log psi` (computed on the way)."""
        n = check_positive_int("n", n)
        keys = jax.random.split(key, self.n_sites)
        init = (
            jnp.zeros((n, self.hidden), jnp.float64),
            jnp.zeros((n,), jnp.float64),  # previous spin (0: none)
            jnp.zeros((n,), jnp.int32),  # up spins so far
            jnp.zeros((n,), jnp.float64),  # log |psi|^2 so far
            jnp.zeros((n,), jnp.float64),  # phase so far
        )

        def step(carry, inp):
            h, prev, ups, lp, ph = carry
            k, site = inp
            h = self.cell(h, one_hot(prev))
            mask = u1_mask(ups, site, self.n_sites, self.n_up)
            logp, phase = self.readout(h, mask)
            idx = jax.random.categorical(k, logp, axis=-1)
            lp = lp + jnp.take_along_axis(logp, idx[:, None], axis=1)[:, 0]
            if phase is not None:
                ph = ph + jnp.take_along_axis(phase, idx[:, None], axis=1)[:, 0]
            s = spin_of(idx)
            return (h, s, ups + idx.astype(jnp.int32), lp, ph), s

        (_, _, _, lp, ph), xs = jax.lax.scan(step, init, (keys, jnp.arange(self.n_sites)))
        log_psi = jax.lax.complex(0.5 * lp, ph) if self.readout.phase else 0.5 * lp
        return xs.T, log_psi


