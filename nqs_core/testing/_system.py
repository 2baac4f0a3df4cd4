"""The system contract suite (`check_system`, `dense_matrix`)."""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._sampler import BoltzmannDistribution
from .._system import (
    AbstractAction,
    AbstractDiscreteHamiltonian,
    AbstractHamiltonian,
    AbstractSystem,
)
from ._common import (
    MAX_STATES,
    TableAnsatz,
    _check,
    _Enumeration,
    _name,
)

# -- systems ---------------------------------------------------------------------


@eqx.filter_jit
def _connected(system, xs):
    return jax.vmap(system.connected)(xs)


def dense_matrix(system: AbstractDiscreteHamiltonian, max_states: int = MAX_STATES) -> np.ndarray:
    """The Hamiltonian as a dense matrix over `system.space.all_states()`, from
    `connected`. Asserts that every connected configuration with a non-zero
    element is a configuration of the space."""
    space = system.space
    n = int(space.n_states)
    if n > max_states:
        raise ValueError(f"dense_matrix: the space has {n} states, more than max_states = {max_states}; use a smaller lattice")
    enumeration = _Enumeration(space)
    xps, mels = _connected(system, jnp.asarray(enumeration.states))
    k = system.max_conn_size
    _check(xps.shape == (n, k) + tuple(space.shape) and mels.shape == (n, k), system,
           f"connected gives {xps.shape} and {mels.shape}, expected (max_conn_size, *shape) and (max_conn_size,) per row, "
           f"max_conn_size = {k}")
    column, found = enumeration.index(np.asarray(xps).reshape((n * k,) + tuple(space.shape)))
    column = column.reshape(n, k)
    mels = np.asarray(mels)
    outside = (mels != 0) & ~found.reshape(n, k)
    _check(not outside.any(), system,
           f"{int(outside.sum())} non-zero matrix elements lead out of the space (a constraint is not conserved)")
    h = np.zeros((n, n), dtype=np.result_type(mels.dtype, np.float64))
    np.add.at(h, (np.repeat(np.arange(n), k), column.reshape(-1)), np.where(mels != 0, mels, 0).reshape(-1))
    return h


@eqx.filter_jit
def _local_energies(system, log_psi, xs):
    """Local energies three ways: compacted / batched, with `log_psi_xs`, padded one at a time."""
    return (
        system.local_energies(log_psi, xs),
        system.local_energies(log_psi, xs, jax.vmap(log_psi)(xs)),
        jax.vmap(lambda x: system.local_energy(log_psi, x))(xs),
    )


def check_system(
    system: AbstractSystem,
    key: PRNGKeyArray | None = None,
    *,
    eigenstate: tuple[Callable[[Array], Any], float] | None = None,
    n: int = 4,
    atol: float = 1e-10,
    max_states: int = MAX_STATES,
) -> None:
    """Check a system against its protocol.

    **Arguments:**

    - `system`: a Hamiltonian or an action.
    - `key`: PRNG key for random configurations (continuum, actions).
    - `eigenstate`: `(log_psi, energy)`, a known eigenstate, for Hamiltonians that
      cannot be diagonalised here; for a discrete one it replaces the exact ground state.
    - `n`: number of random configurations.
    - `atol`: tolerance on local energies, relative to `max(1, |E|)`.
    - `max_states`: largest discrete space that is diagonalised.

    **Checks:**

    - `AbstractDiscreteHamiltonian` on an enumerable space: `connected` has the
      padded shapes, never leaves the space; the dense matrix is Hermitian;
      its exact ground state (by dense diagonalisation), wrapped as a
      `TableAnsatz`, has the local energy `E0` on every configuration where
      it does not vanish, through `local_energies` (compacted, with and without
      `log_psi_xs`) and `local_energy` (padded), to `atol * max(1, |E0|)`.
    - `AbstractContinuumHamiltonian` (or any other Hamiltonian): needs a known
      `eigenstate = (log_psi, energy)`; the local energy equals `energy` on `n`
      random configurations.
    - `AbstractAction`: `S[phi]` is a finite real scalar, `grad` equals
      `jax.grad` of the action, and `jit` does not change either.

    **Raises:** `AssertionError` naming the broken rule; `ValueError` when the
    system cannot be checked as given (space too large, no eigenstate).
    """
    key = jax.random.PRNGKey(0) if key is None else key
    if isinstance(system, AbstractAction):
        _check_action(system, key, n)
        return
    if not isinstance(system, AbstractHamiltonian):
        raise TypeError(f"check_system checks a Hamiltonian or an action, got {_name(system)}")
    if isinstance(system, AbstractDiscreteHamiltonian) and eigenstate is None:
        h = dense_matrix(system, max_states)
        scale = max(1.0, float(np.max(np.abs(h))))
        asym = float(np.max(np.abs(h - h.conj().T)))
        _check(asym <= 1e-12 * scale, system, f"the matrix is not Hermitian: max |H - H^dagger| = {asym:.3g}")
        energies, vectors = np.linalg.eigh(h)
        e0, v0 = float(energies[0]), vectors[:, 0]
        v0 = v0 / v0[np.argmax(np.abs(v0))]  # largest entry real and positive
        with np.errstate(divide="ignore"):
            log_v = np.log(np.abs(v0)) + (1j * np.angle(v0) if np.iscomplexobj(v0) or np.any(v0 < 0) else 0.0)
        table = TableAnsatz(system.space, jnp.asarray(log_v))
        states = jnp.asarray(system.space.all_states())
        support = np.abs(v0) >= 1e-4
        local = dict(zip(("local_energies", "local_energies(log_psi_xs=...)", "local_energy"),
                         _local_energies(system, table, states)))
        for label, values in local.items():
            err = float(np.max(np.abs(np.asarray(values)[support] - e0)))
            _check(err <= atol * max(1.0, abs(e0)), system,
                   f"{label} of the exact ground state (E0 = {e0:.12g}) are not constant: max |E_loc - E0| = {err:.3g}")
        return
    if eigenstate is None:
        raise ValueError(
            f"check_system: {_name(system)} is not a discrete Hamiltonian on an enumerable space; pass a known "
            "eigenstate=(log_psi, energy)"
        )
    log_psi, energy = eigenstate
    x = system.space.random_state(key, n)
    values, _, single = _local_energies(system, log_psi, x)
    for label, v in (("local_energies", np.asarray(values)), ("local_energy", np.asarray(single))):
        _check(v.shape == (n,), system, f"{label} of {n} configurations has shape {v.shape}")
        err = float(np.max(np.abs(v - energy)))
        _check(err <= atol * max(1.0, abs(energy)), system,
               f"{label} of the eigenstate (energy {energy}) are not constant: max |E_loc - E| = {err:.3g}")


def _check_action(action: AbstractAction, key, n):
    phi = action.space.random_state(key, n)
    for i in range(n):
        s = action(phi[i])
        _check(jnp.shape(s) == () and jnp.isrealobj(s), action, f"S[phi] must be a real scalar, got {jnp.asarray(s).dtype} {jnp.shape(s)}")
        _check(bool(jnp.isfinite(s)), action, "S[phi] is not finite on a random configuration")
        g = action.grad(phi[i])
        auto = jax.grad(lambda f: action(f))(phi[i])
        _check(g.shape == phi[i].shape, action, f"grad has shape {g.shape}, a configuration {phi[i].shape}")
        err = float(jnp.max(jnp.abs(g - auto)))
        _check(err <= 1e-10 * (1.0 + float(jnp.max(jnp.abs(auto)))), action, f"grad differs from jax.grad of the action by {err:.3g}")
        sj, gj = eqx.filter_jit(lambda a, f: (a(f), a.grad(f)))(action, phi[i])
        _check(abs(float(sj) - float(s)) <= 1e-10 * (1.0 + abs(float(s))), action, "S[phi] changes under jit")
        _check(float(jnp.max(jnp.abs(gj - g))) <= 1e-10 * (1.0 + float(jnp.max(jnp.abs(g)))), action, "grad changes under jit")
    d = BoltzmannDistribution(action)
    _check(abs(float(d.log_prob(phi[0])) + float(action(phi[0]))) <= 1e-12 * (1 + abs(float(action(phi[0])))), action,
           "BoltzmannDistribution(action).log_prob != -S")
