"""Physical systems: quantum Hamiltonians and classical actions."""

from __future__ import annotations

import abc
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Scalar

from ._ansatz import AbstractConnectedAnsatz
from ._space import AbstractContinuousSpace, AbstractDiscreteSpace, AbstractSpace
from ._tree import batch_apply

#: Without a `chunk_size`, the compacted local energies evaluate the ansatz in
#: blocks of `ceil(n_samples * max_conn_size / _N_BLOCKS)` connected
#: configurations: at most one block (1/16 of the padded work) is spent on
#: entries that are not needed.
_N_BLOCKS = 16


class AbstractSystem(eqx.Module):
    """A physical system on a configuration space.

    Quantum systems (`AbstractHamiltonian`) give local energies of a wave
    function; classical field theories (`AbstractAction`) give `S[phi]`.
    """

    space: eqx.AbstractVar[AbstractSpace]


class AbstractHamiltonian(AbstractSystem):
    """A quantum Hamiltonian: provides the local energy of a wave function.

    `E_loc(x) = <x|H|psi> / <x|psi>`.
    """

    @abc.abstractmethod
    def local_energy(self, log_psi: Callable[[Array], Scalar], x: Array) -> Scalar:
        """Local energy of `log_psi` (a callable on one configuration, usually
        an ansatz) at configuration `x`."""
        raise NotImplementedError

    def local_energies(
        self,
        log_psi: Callable[[Array], Scalar],
        xs: Array,
        log_psi_xs: Array | None = None,
        chunk_size: int | None = None,
    ) -> Array:
        """Local energies of a batch of configurations.

        The default maps `local_energy` over the batch; discrete Hamiltonians
        override it with the compacted evaluation (only non-zero off-diagonal
        elements, see `AbstractDiscreteHamiltonian.local_energies`).

        **Arguments:**

        - `log_psi`: the wave function (a callable on one configuration).
        - `xs`: configurations, shape `(n, *space.shape)`.
        - `log_psi_xs`: `log_psi` of `xs` if the caller has it (shape `(n,)`);
          implementations may reuse it instead of evaluating it again.
        - `chunk_size`: memory bound, as in `EnergyEstimator`.

        **Returns:** shape `(n,)`.
        """
        del log_psi_xs
        return batch_apply(lambda x: self.local_energy(log_psi, x), xs, chunk_size)


class AbstractDiscreteHamiltonian(AbstractHamiltonian):
    """A Hamiltonian on a discrete space, given row by row.

    `connected(x)` returns the configurations `x'` with `<x|H|x'> != 0` and the
    matrix elements, padded to the fixed width `max_conn_size` so that it jits:
    padding rows repeat `x` with matrix element 0.
    """

    space: eqx.AbstractVar[AbstractDiscreteSpace]

    @property
    @abc.abstractmethod
    def max_conn_size(self) -> int:
        """Fixed number of connected elements returned per row."""

    @abc.abstractmethod
    def connected(self, x: Array) -> tuple[Array, Array]:
        """`(xps, mels)`: shape `(max_conn_size, *x.shape)` and `(max_conn_size,)`
        with `mels[k] = <x|H|xps[k]>`."""
        raise NotImplementedError

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        """The sites on which this Hamiltonian's basis is rotated by the local
        clock operator `Z = diag(w^j)` (`w = exp(2 pi i / d)`; for spin 1/2 the
        Marshall sign, `S^x`, `S^y` change sign there): the network of a state
        of this system represents `U psi` with `U = prod_{i in sites} Z_i`.
        `in_basis`, the observables and `nqs_core.VariationalState` (its
        physical-basis `to_array`, `log_value` and `expect`) use it. Default:
        `()` (the physical basis)."""
        return ()

    def in_basis(self, operator) -> "AbstractDiscreteHamiltonian":
        """`operator` (an `nqs_core.Operator`, written in the physical basis)
        bound to this system's space in the basis this Hamiltonian is written
        in, so that its expectation value in a state of this system is the
        physical one: `operator.rotate_z(self.marshall_sites).on(self.space)`."""
        sites = tuple(self.marshall_sites)
        return (operator.rotate_z(sites) if sites else operator).on(self.space)

    def local_energy(self, log_psi, x):
        """Padded evaluation of one row: `log_psi` on all `max_conn_size`
        connected configurations (the reference that `local_energies` equals)."""
        xps, mels = self.connected(x)
        if isinstance(log_psi, AbstractConnectedAnsatz):
            lx, lxp = log_psi.log_psi_connected(x, xps)
        else:
            lx = log_psi(x)
            lxp = jax.vmap(log_psi)(xps)
        ratio = jnp.exp(lxp - lx)
        dtype = np.promote_types(mels.dtype, ratio.dtype)
        terms = mels.astype(dtype) * ratio.astype(dtype)
        # padded / vanishing elements contribute exactly zero, even if psi(x') = 0
        return jnp.sum(jnp.where(mels != 0, terms, jnp.zeros((), dtype)))

    def local_energies(self, log_psi, xs, log_psi_xs=None, chunk_size=None):
        """Compacted local energies of a batch: `log_psi` is evaluated only on the
        connected configurations with a non-zero matrix element that differ
        from their sample, over the whole batch at once.

        The `n * max_conn_size` entries are partitioned needed-first (static
        shapes), then evaluated in fixed-size blocks by a `lax.while_loop` that
        stops after the last block holding a needed entry. Diagonal entries
        (`x' = x`) reuse `log_psi(x)` (`log_psi_xs` if given, else one batched
        evaluation), so the ansatz runs `n + n_nonzero` times instead of
        `n (1 + max_conn_size)`. Equal to the padded `local_energy` up to
        rounding. An `AbstractConnectedAnsatz` keeps its own per-row
        `log_psi_connected` (the padded path).
        """
        if isinstance(log_psi, AbstractConnectedAnsatz):
            return super().local_energies(log_psi, xs, chunk_size=chunk_size)
        return compacted_local_energies(self, log_psi, xs, log_psi_xs, chunk_size)


def compacted_local_energies(
    system: AbstractDiscreteHamiltonian,
    log_psi: Callable[[Array], Scalar],
    xs: Array,
    log_psi_xs: Array | None = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
) -> Array:
    """`E_loc` of every row of `xs` (shape `(n, *shape)`) evaluating `log_psi`
    only where it is needed; see `AbstractDiscreteHamiltonian.local_energies`.

    `block_size` (connected configurations per evaluation) defaults to
    `ceil(n * max_conn_size / 16)`, and to at most `chunk_size * max_conn_size`
    when `chunk_size` is set (the memory the padded path uses per chunk).

    **Returns:** shape `(n,)`, real or complex as the padded path.
    """
    n = xs.shape[0]
    shape = xs.shape[1:]
    xps, mels = batch_apply(system.connected, xs, chunk_size)
    k = mels.shape[1]
    total = n * k
    lx = batch_apply(log_psi, xs, chunk_size) if log_psi_xs is None else log_psi_xs
    same = jnp.all((xps == xs[:, None]).reshape(n, k, -1), axis=-1)
    need = (mels != 0) & ~same
    if block_size is None:
        block_size = -(-total // _N_BLOCKS)
        if chunk_size is not None:
            block_size = min(block_size, chunk_size * k)
    width = max(1, min(int(block_size), total))
    n_slots = -(-total // width) * width
    flat_need = need.reshape(-1)
    pos = jnp.cumsum(flat_need.astype(jnp.int32)) - 1  # slot of every needed entry
    count = jnp.sum(flat_need, dtype=jnp.int32)
    # slot -> flat entry (free slots point at entry 0, a valid configuration)
    entry = jnp.zeros(n_slots, jnp.int32).at[jnp.where(flat_need, pos, n_slots)].set(
        jnp.arange(total, dtype=jnp.int32), mode="drop"
    )
    flat_x = xps.reshape((total,) + shape)
    out = jax.eval_shape(log_psi, xs[0])

    def cond(carry):
        return carry[0] * width < count

    def body(carry):
        i, buf = carry
        start = i * width
        block = flat_x[jax.lax.dynamic_slice(entry, (start,), (width,))]
        return i + 1, jax.lax.dynamic_update_slice(buf, jax.vmap(log_psi)(block).astype(out.dtype), (start,))

    _, buf = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), jnp.zeros(n_slots, out.dtype)))
    lxp = buf[jnp.where(flat_need, pos, 0)].reshape(n, k)
    ratio = jnp.exp(lxp - lx[:, None])
    dtype = np.promote_types(mels.dtype, ratio.dtype)
    zero = jnp.zeros((), dtype)
    mels = mels.astype(dtype)
    # the diagonal has ratio 1; vanishing elements contribute exactly zero
    terms = jnp.where(need, mels * ratio.astype(dtype), jnp.where(same, mels, zero))
    return jnp.sum(terms, axis=1)


class AbstractContinuumHamiltonian(AbstractHamiltonian):
    """`H = -hbar^2/(2m) sum_i d^2/dx_i^2 + V(x)` on real coordinates.

    Subclasses give the potential and the kinetic prefactor `hbar^2/(2m)`;
    the local energy uses the exact Laplacian of `log psi`:
    `E_loc = -c [lap log psi + (grad log psi)^2] + V`.
    """

    space: eqx.AbstractVar[AbstractContinuousSpace]
    kinetic_prefactor: eqx.AbstractVar[float]

    @abc.abstractmethod
    def potential(self, x: Array) -> Scalar:
        raise NotImplementedError

    def local_energy(self, log_psi, x):
        """`-c [lap log psi + (grad log psi)^2] + V` at `x`. For a complex
        `log psi` (a signed or complex wave function) the real potential is added
        to the complex kinetic term under standard dtype promotion."""
        if jnp.iscomplexobj(jax.eval_shape(log_psi, x)):
            with jax.numpy_dtype_promotion("standard"):
                return self._laplacian_local_energy(log_psi, x)
        return self._laplacian_local_energy(log_psi, x)

    def _laplacian_local_energy(self, log_psi, x):
        shape = x.shape
        flat = x.reshape(-1)

        def f(v):
            return log_psi(v.reshape(shape))

        def f_re(v):
            return jnp.real(f(v))

        def f_im(v):
            return jnp.imag(f(v))

        def lap_and_grad(g):
            grad = jax.grad(g)
            eye = jnp.eye(flat.size, dtype=flat.dtype)
            # diagonal of the Hessian, one forward-over-reverse pass per coordinate
            diag = jax.vmap(lambda e: jax.jvp(grad, (flat,), (e,))[1] @ e)(eye)
            return jnp.sum(diag), grad(flat)

        lap_r, g_r = lap_and_grad(f_re)
        if jnp.iscomplexobj(jax.eval_shape(f, flat)):
            lap_i, g_i = lap_and_grad(f_im)
            lap = jax.lax.complex(lap_r, lap_i)
            g = jax.lax.complex(g_r, g_i)
        else:
            lap, g = lap_r, g_r
        kinetic = -self.kinetic_prefactor * (lap + jnp.sum(g * g))
        # the potential is real; cast explicitly (complex log psi gives a complex kinetic term)
        return kinetic + self.potential(x).astype(kinetic.dtype)


class AbstractAction(AbstractSystem):
    """A classical (Euclidean) action `S[phi]`; configurations are sampled from
    `exp(-S)`. `grad` is the force `dS/dphi` (`autodiff_grad` gives it by
    automatic differentiation for an action without a closed form)."""

    @abc.abstractmethod
    def __call__(self, phi: Array) -> Scalar:
        raise NotImplementedError

    @abc.abstractmethod
    def grad(self, phi: Array) -> Array:
        """`dS/dphi` of one configuration, same shape as `phi`."""
        raise NotImplementedError


def autodiff_grad(action: AbstractAction, phi: Array) -> Array:
    """`dS/dphi` of `action` at `phi` by reverse-mode autodiff (an
    `AbstractAction.grad` for actions without a closed-form force)."""
    return jax.grad(action.__call__)(phi)
