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

    def local_energy(self, log_psi, x):
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
    `exp(-S)`. `grad` is `dS/dphi` (autodiff unless a subclass overrides)."""

    @abc.abstractmethod
    def __call__(self, phi: Array) -> Scalar:
        raise NotImplementedError

    def grad(self, phi: Array) -> Array:
        return jax.grad(self.__call__)(phi)
