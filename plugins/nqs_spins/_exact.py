"""Exact diagonalisation of discrete Hamiltonians built from their rows."""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import nqs_core

from ._space import SpinHalf

#: Below this many states `ground_state_energy` uses dense `eigh`.
DENSE_LIMIT = 2000
#: `to_dense` refuses spaces larger than this (the matrix alone would need > 2 GiB).
DENSE_MAX_STATES = 16384
_CHUNK = 1 << 16
_CHUNK_ELEMENTS = 1 << 24


class _Basis(eqx.Module):
    """Integer codes of the configurations of a discrete space: digit `i`
    (site 0 most significant) is the index of `x_i` among the sorted local
    states. For spin 1/2 this is the code of `SpinHalf.all_codes`."""

    local: jax.Array
    thresholds: jax.Array
    weights: jax.Array

    def __init__(self, space: nqs_core.AbstractDiscreteSpace):
        local = np.sort(np.asarray(space.local_states, dtype=np.float64))
        base = len(local)
        n = space.size
        if n * np.log2(base) > 52:
            raise ValueError(f"a space of {n} sites with {base} local states is too large to enumerate")
        self.local = jnp.asarray(local).astype(space.dtype)
        self.thresholds = jnp.asarray(0.5 * (local[1:] + local[:-1])).astype(space.dtype)
        self.weights = jnp.asarray(base ** np.arange(n - 1, -1, -1, dtype=np.int64))

    def encode(self, x):
        """Codes (int64) of configurations flattened to `(..., n_sites)`."""
        digits = jnp.zeros(x.shape, dtype=x.dtype)
        for k in range(self.thresholds.shape[0]):
            digits = digits + (x > self.thresholds[k]).astype(x.dtype)
        # exact in float64 (codes < 2^52), and a matrix product is fast
        return jnp.rint(digits @ self.weights.astype(x.dtype)).astype(jnp.int64)

    def decode(self, codes, shape):
        """Configurations of shape `(*codes.shape, *shape)`."""
        base = self.local.shape[0]
        digits = (codes[..., None] // self.weights) % base
        return self.local[digits].reshape(*codes.shape, *shape)


def _basis_codes(space, basis: _Basis) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes of `space.all_states()` sorted ascending, and the permutation that
    maps sorted positions back to `all_states` order (`None` when already sorted)."""
    if isinstance(space, SpinHalf):  # enumerates its codes without building the states
        codes = np.asarray(space.all_codes(), dtype=np.int64)
    else:
        states = np.asarray(space.all_states())
        codes = np.asarray(
            eqx.filter_jit(_Basis.encode)(basis, jnp.asarray(states.reshape(len(states), -1))), dtype=np.int64
        )
    if np.all(codes[1:] > codes[:-1]):
        return codes, None
    order = np.argsort(codes, kind="stable")
    return codes[order], order


@eqx.filter_jit
def _rows(system, basis: _Basis, codes):
    shape = system.space.shape
    xs = basis.decode(codes, shape)
    xps, mels = jax.vmap(system.connected)(xs)
    return basis.encode(xps.reshape(*xps.shape[:2], -1)), mels


def memory_estimate(system: nqs_core.AbstractDiscreteHamiltonian) -> float:
    """Peak bytes of `ground_state_energy(system)`: the sparse matrix (at most
    `max_conn_size` elements per row, 16 bytes each, twice while the chunks are
    stacked), the basis codes and about 20 Lanczos vectors of 8 bytes per state.
    An upper bound: the 24-site chain above (estimate 2.7 GB) peaked at 1.8 GB."""
    n = float(system.space.n_states)
    width = float(system.max_conn_size)
    return n * (32.0 + 32.0 * width + 20 * 8.0)


def check_size(system: nqs_core.AbstractDiscreteHamiltonian) -> None:
    """Refuse (`nqs_core.MemoryLimitError`) a system whose exact diagonalisation
    needs more than the memory limit (`nqs_core.check_memory`), before anything is enumerated."""
    n = int(system.space.n_states)
    nqs_core.check_memory(memory_estimate(system), f"exact diagonalisation of {n} states ({system.space.size} sites)")


def to_sparse(system: nqs_core.AbstractDiscreteHamiltonian) -> sp.csr_matrix:
    """The Hamiltonian as a `scipy.sparse.csr_matrix` in the basis
    `system.space.all_states()` (same order).

    Built from `system.connected`, evaluated (jitted, vmapped) on all states in
    chunks; zero elements are dropped and repeated `(x, x')` pairs summed.
    Memory is dominated by the result (about 12 bytes per non-zero element)
    and its copy when the chunks are stacked: the Sz = 0 sector of a
    24-site Heisenberg chain (2.7M states, 36M non-zeros) peaks at 1.8 GB.

    **Arguments:**

    - `system`: a discrete Hamiltonian on an enumerable space.

    **Returns:** a square CSR matrix of size `space.n_states`.
    """
    space = system.space
    check_size(system)
    basis = _Basis(space)
    codes, order = _basis_codes(space, basis)
    n = len(codes)
    width = system.max_conn_size
    chunk = int(max(256, min(_CHUNK, _CHUNK_ELEMENTS // max(1, width * space.size), n)))
    blocks = []
    codes_dev = codes if order is None else codes[np.argsort(order)]  # all_states order
    for start in range(0, n, chunk):
        part = codes_dev[start : start + chunk]
        m = len(part)
        if m < chunk:  # pad the last chunk: one compiled shape
            part = np.concatenate([part, np.full(chunk - m, part[0], dtype=np.int64)])
        pc, mels = _rows(system, basis, jnp.asarray(part))
        pc = np.asarray(pc)[:m]
        mels = np.asarray(mels)[:m]
        keep = mels != 0
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(keep, axis=1), out=indptr[1:])
        targets = pc[keep]
        cols = np.minimum(np.searchsorted(codes, targets), n - 1)
        if not np.array_equal(codes[cols], targets):
            raise ValueError(
                "connected() returned configurations outside the space "
                "(does the Hamiltonian conserve the space's constraint?)"
            )
        if order is not None:
            cols = order[cols]
        blocks.append(sp.csr_matrix((mels[keep], cols, indptr), shape=(m, n)))
    out = sp.vstack(blocks, format="csr")
    out.sum_duplicates()
    return out


def _single_threaded_blas():
    """Run BLAS single-threaded inside the block (threadpoolctl).

    ARPACK's many small BLAS calls gain nothing from threads, and once XLA's
    thread pool is alive, OpenBLAS threads compete with it: Lanczos then runs
    about 3x slower and a dense `eigh` of a 1024 x 1024 matrix about 10x
    slower (measured on 2 cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def to_dense(system: nqs_core.AbstractDiscreteHamiltonian) -> np.ndarray:
    """The Hamiltonian as a dense NumPy matrix in the basis
    `system.space.all_states()`. Refuses spaces of more than
    `DENSE_MAX_STATES` states."""
    n = system.space.n_states
    if n > DENSE_MAX_STATES:
        raise ValueError(
            f"to_dense: {n} states is too many for a dense matrix (limit {DENSE_MAX_STATES}); "
            "use to_sparse"
        )
    return to_sparse(system).toarray()


def ground_state_energy(system: nqs_core.AbstractDiscreteHamiltonian, k: int = 1) -> np.ndarray:
    """The `k` lowest eigenvalues of a Hermitian discrete Hamiltonian, ascending.

    Dense `eigh` for fewer than `DENSE_LIMIT` states, otherwise Lanczos
    (`scipy.sparse.linalg.eigsh(which="SA")`) on `to_sparse(system)`.

    **Arguments:**

    - `system`: a discrete Hamiltonian on an enumerable space.
    - `k`: how many eigenvalues.

    **Returns:** a float64 NumPy array of shape `(k,)`.
    """
    n = system.space.n_states
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of states {n}, got {k}")
    if n < DENSE_LIMIT or k >= n - 1:
        h = to_dense(system)
        if not np.allclose(h, h.conj().T, rtol=0.0, atol=1e-12 * max(1.0, np.abs(h).max())):
            raise ValueError("the Hamiltonian is not Hermitian")
        with _single_threaded_blas():
            return np.linalg.eigvalsh(h)[:k].astype(np.float64)
    h = to_sparse(system)
    v0 = np.random.default_rng(0).standard_normal(n).astype(h.dtype)
    with _single_threaded_blas():
        vals = spla.eigsh(h, k=k, which="SA", v0=v0, return_eigenvectors=False)
    return np.sort(np.real(vals)).astype(np.float64)


def ground_state(system: nqs_core.AbstractDiscreteHamiltonian) -> tuple[float, np.ndarray]:
    """Ground-state energy and normalised eigenvector (in the basis
    `system.space.all_states()`); dense or Lanczos as `ground_state_energy`."""
    n = system.space.n_states
    if n < DENSE_LIMIT:
        h = to_dense(system)
        with _single_threaded_blas():
            vals, vecs = np.linalg.eigh(h)
    else:
        h = to_sparse(system)
        v0 = np.random.default_rng(0).standard_normal(n).astype(h.dtype)
        with _single_threaded_blas():
            vals, vecs = spla.eigsh(h, k=1, which="SA", v0=v0)
    i = int(np.argmin(vals))
    v = vecs[:, i]
    return float(np.real(vals[i])), v / np.linalg.norm(v)


def exact_energy(system: nqs_core.AbstractDiscreteHamiltonian) -> float:
    """The ground-state energy as a Python float."""
    return float(ground_state_energy(system, 1)[0])


def exact_solver(system, max_states: int | None = None) -> float | None:
    """Exact ground-state energy for the core's automatic reference (registry
    kind `exact`): `None` unless `system` is a discrete Hamiltonian whose space
    can be enumerated and has at most `max_states` states."""
    if not isinstance(system, nqs_core.AbstractDiscreteHamiltonian):
        return None
    try:
        n = int(system.space.n_states)
    except (AttributeError, NotImplementedError, OverflowError, ValueError):
        return None
    if max_states is not None and n > max_states:
        return None
    check_size(system)
    return exact_energy(system)
