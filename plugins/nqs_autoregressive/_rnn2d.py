"""Two-dimensional autoregressive LSTM wave function (Roth 2020, Eqs. 6, 9-11, Fig. 2)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from nqs_core import AbstractAutoregressiveAnsatz, AbstractBravaisLattice, AbstractLattice, AbstractSpace

from ._common import FeedForward, LSTMCell, Readout, check_positive_int, log_psi_from, one_hot, spin_of, spin_space_info, u1_mask


class _Layer(eqx.Module):
    """One layer of Fig. 2b: a downward LSTM shared by the two processors, a
    rightward and a leftward LSTM, and the feed-forward merge of Eq. (11)."""

    down: LSTMCell
    right: LSTMCell
    left: LSTMCell
    merge: FeedForward

    def __init__(self, n_in: int, hidden: int, *, key):
        kd, kr, kl, km = jax.random.split(key, 4)
        self.down = LSTMCell(n_in, hidden, key=kd)
        self.right = LSTMCell(hidden, hidden, key=kr)
        self.left = LSTMCell(hidden, hidden, key=kl)
        self.merge = FeedForward(2 * hidden, hidden, hidden, key=km)


def _scan_lstm(cell, xs, reverse=False):
    """Run `cell` along the leading axis of `xs` (batch on the middle axes), zero initial state."""
    zeros = jnp.zeros(xs.shape[1:-1] + (cell.weight.shape[0] // 4,), jnp.float64)

    def step(state, x):
        state = cell(state, x)
        return state, state[0]

    _, hs = jax.lax.scan(step, (zeros, zeros), xs, reverse=reverse)
    return hs


class LSTM2D(AbstractAutoregressiveAnsatz):
    """Autoregressive two-dimensional recurrent wave function (Roth 2020, Fig. 2).

    Sites are ordered row by row (site `(i, j)` is conditioned on every site of
    the rows above and on the sites to its left, Eq. 6). Each of the `n_layers`
    layers has two "processors": a downward LSTM (Eq. 9, shared) followed by a
    rightward LSTM (top-left -> bottom-right) or a leftward LSTM (top-right ->
    bottom-left) (Eq. 10). Their outputs are shifted one site right and one row
    down to keep causality and merged by a two-layer feed-forward network with a
    residual connection (Eq. 11; the first layer, whose input is the spins
    themselves, has no residual). A two-layer feed-forward readout gives the
    conditional probability (softmax) and phase (`(sin, cos)` two-vector).

    Parameter shapes are independent of the lattice size. Evaluation of
    `log psi` runs each LSTM along one direction at a time (O(L) sequential
    steps); `sample` runs row by row, site by site (one `lax.scan` over rows with
    a `lax.scan` over columns inside), vectorised over samples. A space with
    fixed `total_sz` masks the conditionals (U(1) constraint).

    **Arguments:**

    - `space`: a spin-1/2 space, injected.
    - `lattice`: a two-dimensional lattice with an `extent` `(rows, columns)` and
      row-major site numbering (`Square`), injected.
    - `hidden`: LSTM hidden size (default 16).
    - `n_layers`: number of stacked layers (default 2; the seed uses 5).
    - `phase`: learn a conditional phase (default `True`; `false` gives a real,
      positive wave function for sign-free Hamiltonians).
    - `key`: PRNG key for the initialisation (injected).
    """

    layers: tuple[_Layer, ...]
    readout: Readout
    rows: int = eqx.field(static=True)
    cols: int = eqx.field(static=True)
    n_up: int | None = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        lattice: AbstractLattice,
        hidden: int = 16,
        n_layers: int = 2,
        phase: bool = True,
        *,
        key: PRNGKeyArray,
    ):
        n_sites, self.n_up = spin_space_info("LSTM2D", space)
        if not isinstance(lattice, AbstractBravaisLattice) or lattice.ndim != 2 or lattice.n_basis != 1:
            raise TypeError(f"LSTM2D needs a two-dimensional Bravais lattice with one site per cell (rows, columns), got {lattice!r}")
        self.rows, self.cols = (int(e) for e in lattice.extent)
        if self.rows * self.cols != n_sites:
            raise ValueError(f"inconsistent sizes: space has {n_sites} sites, lattice {self.rows}x{self.cols}")
        self.hidden = check_positive_int("hidden", hidden)
        check_positive_int("n_layers", n_layers)
        keys = jax.random.split(key, n_layers + 1)
        self.layers = tuple(_Layer(2 if n == 0 else hidden, hidden, key=keys[n]) for n in range(n_layers))
        self.readout = Readout(hidden, hidden, bool(phase), key=keys[-1])

    @property
    def n_sites(self) -> int:
        return self.rows * self.cols

    # -- evaluation (teacher forcing, all sites at once) ----------------------

    def _heads(self, x: Array):
        if x.shape != (self.n_sites,):
            raise ValueError(f"LSTM2D: configuration of shape {x.shape}, expected ({self.n_sites},)")
        inp = one_hot(x.reshape(self.rows, self.cols))  # (R, C, 2)
        h_prev = inp
        zero_col = jnp.zeros((self.rows, 1, self.hidden), jnp.float64)
        zero_row = jnp.zeros((1, self.cols, self.hidden), jnp.float64)
        for n, layer in enumerate(self.layers):
            d = _scan_lstm(layer.down, h_prev)  # along rows, (R, C, H)
            r = _scan_lstm(layer.right, jnp.swapaxes(d, 0, 1)).swapaxes(0, 1)  # along columns
            l = _scan_lstm(layer.left, jnp.swapaxes(d, 0, 1), reverse=True).swapaxes(0, 1)
            r_shift = jnp.concatenate([zero_col, r[:, :-1]], axis=1)  # (i, j) <- R(i, j-1)
            l_shift = jnp.concatenate([zero_row, l[:-1]], axis=0)  # (i, j) <- L(i-1, j)
            out = layer.merge(jnp.concatenate([r_shift, l_shift], axis=-1))
            h_prev = out if n == 0 else h_prev + out
        mask = None
        if self.n_up is not None:
            ups = (x > 0).astype(jnp.int32)
            mask = u1_mask(jnp.cumsum(ups) - ups, jnp.arange(self.n_sites), self.n_sites, self.n_up)
        return self.readout(h_prev.reshape(self.n_sites, self.hidden), mask)

    def conditionals(self, x):
        return self._heads(x)[0]

    def __call__(self, x):
        logp, phase = self._heads(x)
        return log_psi_from(logp, phase, x)

    # -- exact sampling, row by row and site by site --------------------------

    def sample(self, key, n):
        return self.sample_with_log_psi(key, n)[0]

    def sample_with_log_psi(self, key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        """`n` exact samples `(n, n_sites)` and their `log psi` (computed on the way)."""
        n = check_positive_int("n", n)
        H, C, n_lay = self.hidden, self.cols, len(self.layers)
        zeros_row = jnp.zeros((n_lay, n, C, H), jnp.float64)
        keys = jax.random.split(key, self.n_sites).reshape(self.rows, C, -1)

        def column_step(carry, inp):
            r_h, r_c, ups, lp, ph, site = carry  # r_*: (n_lay, n, H)
            k, d_h_up, d_c_up, l_up = inp  # (n_lay, n, H) from the row above
            # forward through the layers: residual stream at (i, j)
            hs = []
            h = None
            for m, layer in enumerate(self.layers):
                out = layer.merge(jnp.concatenate([r_h[m], l_up[m]], axis=-1))
                h = out if m == 0 else h + out
                hs.append(h)
            mask = u1_mask(ups, site, self.n_sites, self.n_up)
            logp, phase = self.readout(h, mask)
            idx = jax.random.categorical(k, logp, axis=-1)
            lp = lp + jnp.take_along_axis(logp, idx[:, None], axis=1)[:, 0]
            if phase is not None:
                ph = ph + jnp.take_along_axis(phase, idx[:, None], axis=1)[:, 0]
            s = spin_of(idx)
            # update the recurrent states with the new spin
            new_rh, new_rc, new_dh, new_dc = [], [], [], []
            layer_in = one_hot(s)
            for m, layer in enumerate(self.layers):
                dh, dc = layer.down((d_h_up[m], d_c_up[m]), layer_in)
                rh, rc = layer.right((r_h[m], r_c[m]), dh)
                new_dh.append(dh), new_dc.append(dc), new_rh.append(rh), new_rc.append(rc)
                layer_in = hs[m]
            carry = (jnp.stack(new_rh), jnp.stack(new_rc), ups + idx.astype(jnp.int32), lp, ph, site + 1)
            return carry, (jnp.stack(new_dh), jnp.stack(new_dc), s)

        def row_step(carry, row_keys):
            d_h, d_c, l_h, ups, lp, ph, site = carry  # d_*, l_h: (n_lay, n, C, H)
            zero = jnp.zeros((n_lay, n, H), jnp.float64)
            col_inputs = (row_keys, jnp.moveaxis(d_h, 2, 0), jnp.moveaxis(d_c, 2, 0), jnp.moveaxis(l_h, 2, 0))
            (_, _, ups, lp, ph, site), (dh, dc, s) = jax.lax.scan(
                column_step, (zero, zero, ups, lp, ph, site), col_inputs
            )
            # dh, dc: (C, n_lay, n, H); leftward LSTM over the finished row for every layer
            new_l = jnp.stack([_scan_lstm(layer.left, dh[:, m], reverse=True) for m, layer in enumerate(self.layers)])
            carry = (jnp.moveaxis(dh, 0, 2), jnp.moveaxis(dc, 0, 2), jnp.moveaxis(new_l, 1, 2), ups, lp, ph, site)
            return carry, s  # s: (C, n)

        init = (
            zeros_row,
            zeros_row,
            zeros_row,
            jnp.zeros((n,), jnp.int32),
            jnp.zeros((n,), jnp.float64),
            jnp.zeros((n,), jnp.float64),
            jnp.asarray(0, jnp.int32),
        )
        (_, _, _, _, lp, ph, _), s = jax.lax.scan(row_step, init, keys)
        xs = jnp.moveaxis(s, 2, 0).reshape(n, self.n_sites)
        log_psi = jax.lax.complex(0.5 * lp, ph) if self.readout.phase else 0.5 * lp
        return xs, log_psi
