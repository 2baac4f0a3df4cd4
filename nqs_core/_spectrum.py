"""The exact answer of a small discrete system (`nqs exact`): the lowest
eigenvalues, the spectrum per conserved sector, the exact ground state and its
observables, saved as a reference (`nqs exact --save`, `load_exact`).

The Hamiltonian matrix is built with the machinery of the full sum
(`nqs_core._fullsum`): every configuration of the space is enumerated, the
connected configurations of each row are looked up among the rows (integer
keys), and the rows, columns and matrix elements form a sparse matrix in the
basis `space.all_states()` (same order). Observables are measured on the
eigenvector with the same look-up tables: `<psi0|O|psi0>` exactly, no sampling.

Sectors come from the space's quantum numbers (`AbstractDiscreteSpace.quantum_numbers`,
e.g. the total `S^z` of a spin space, the particle number of occupation
numbers): the matrix is checked to have no element between configurations of
different values (the Hamiltonian conserves the quantum number), and is then
diagonalised block by block. A space restricted to one sector (`total_sz`) has
one block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pathlib
from typing import Any, Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from ._config import BuildContext, ConfigError, _build_observables, build, run_memory_limit
from ._fullsum import _DENSE_KEYS, _content_key, _key_digits, _key_range, _table_chunk, state_keys
from ._io import CONFIG_FILE, atomic_write, check_run_files, strict_json, write_text
from ._lock import LOCK_FILE, RunLock, lock_note
from ._observable import (
    AbstractObservable, AbstractOperatorObservable, AbstractSampleObservable, OperatorObservable, as_observable, stats_dict,
)
from ._operator import Operator
from ._operator_bind import LocalOperator, PauliOperator
from ._registry import get_registry
from ._run import physics
from ._space import AbstractDiscreteSpace
from ._stats import Stats
from ._system import AbstractDiscreteHamiltonian
from ._toml import load_config, resolved_toml
from ._tree import batch_apply
from ._validate import check_memory, memory_limit

#: The exact state of a directory written by `nqs exact --save`.
EXACT_FILE = "exact.npz"
#: The summary (`nqs exact --json`) next to it.
EXACT_JSON = "exact.json"
#: What `--save` writes into a directory (and may replace there).
EXACT_FILES = (EXACT_FILE, EXACT_JSON, CONFIG_FILE)
#: Sectors of fewer states than this are diagonalised densely (`numpy.linalg.eigh`).
DENSE_LIMIT = 2000
#: Rows whose connected elements are looked up per compiled call.
_CHUNK = 8192
#: Eigenvalues closer than this (relative to max(1, |E|)) are one degenerate level.
DEGENERACY_RTOL = 1e-8
#: The config tables whose resolved fields are the physics of an exact state.
PHYSICS_TABLES = ("lattice", "space", "system")


# -- enumeration and matrices ------------------------------------------------------------


def spectrum_memory(system: AbstractDiscreteHamiltonian, n_states: int = 1) -> float:
    """Estimated peak bytes of `exact_state(system, n_states)`: the listed
    configurations (8 bytes a site, twice: listed and on the device), their keys
    and the look-up index, the sparse matrix (at most `max_conn_size` elements
    a row of 12 bytes, three times: the blocks, the stacked matrix and a sector
    block) and about `20 + 2 n_states` Lanczos vectors of 16 bytes a state."""
    space = system.space
    n = float(space.n_states)
    return n * (16.0 * float(space.size) + 24 + 36.0 * float(system.max_conn_size) + (20 + 2 * n_states) * 16)


def _check_space(system) -> int:
    if not isinstance(system, AbstractDiscreteHamiltonian):
        raise ConfigError(
            f"nqs exact diagonalises a discrete Hamiltonian (a system on a discrete space); "
            f"{type(system).__name__} is not one"
        )
    space = system.space
    if not isinstance(space, AbstractDiscreteSpace) or _key_digits(space) is None:
        raise ConfigError(f"the space {type(space).__name__} cannot be enumerated for exact diagonalisation")
    try:
        return int(space.n_states)
    except (OverflowError, ValueError, NotImplementedError) as exc:
        raise ConfigError(f"the space cannot be enumerated: {exc}") from None


def _row_index(space, states: np.ndarray):
    """The look-up index of the rows (as `FullSumState.lookup_tables` builds it)."""
    keys = eqx.filter_jit(state_keys)
    own = np.concatenate([np.asarray(keys(space, jnp.asarray(states[i : i + _CHUNK * 8])))
                          for i in range(0, len(states), _CHUNK * 8)])
    if _key_range(space) <= _DENSE_KEYS:
        row_of_key = np.full(_key_range(space), -1, dtype=np.int32)
        row_of_key[own[::-1]] = np.arange(len(own), dtype=np.int32)[::-1]
        return ("dense", jnp.asarray(row_of_key))
    order = np.argsort(own, kind="stable").astype(np.int32)
    return ("sorted", jnp.asarray(own[order]), jnp.asarray(order))


def _matrix(system, states: np.ndarray, index, progress: Callable[[str], None] | None = None) -> sp.csr_matrix:
    """The matrix `H[i, j] = <x_i|H|x_j>` in the order of `states` (CSR, zeros
    dropped, repeated pairs summed), built chunk by chunk from the look-up of
    the connected configurations among the rows.

    **Raises:** `ConfigError` when a non-zero element leaves the space.
    """
    return _matrices((system,), states, index, progress)[0]


def _matrices(ops, states: np.ndarray, index, progress: Callable[[str], None] | None = None,
              strict: bool = True) -> list[sp.csr_matrix]:
    """The matrices of several operators at once (`_matrix` of each; one
    compiled look-up per chunk of rows for all of them). `strict=False` drops
    the elements that lead out of the space instead of raising (what `<v|O|v>`
    of a vector inside the space needs).

    **Raises:** `ConfigError` (with `strict`) when a non-zero element leaves the space.
    """
    n = states.shape[0]
    width = min(_CHUNK, n)
    blocks: list[list[sp.csr_matrix]] = [[] for _ in ops]
    for start in range(0, n, width):
        chunk = states[start : start + width]
        m = chunk.shape[0]
        if m < width:  # the same compiled function for the last chunk
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], width - m, axis=0)])
        parts = jax.device_get(_table_chunk(tuple(ops), jnp.asarray(chunk), jnp.int32(start), index))
        for k, (rows, mels, bad) in enumerate(parts):
            if bad and strict:
                raise ConfigError(
                    "the Hamiltonian connects configurations outside the space (does it conserve the space's "
                    "constraint, e.g. total_sz?); diagonalise it in the unconstrained space"
                )
            rows, mels = rows[:m], mels[:m]
            keep = mels != 0
            indptr = np.zeros(m + 1, dtype=np.int64)
            np.cumsum(np.count_nonzero(keep, axis=1), out=indptr[1:])
            blocks[k].append(sp.csr_matrix((mels[keep], rows[keep].astype(np.int64), indptr), shape=(m, n)))
        if progress is not None and n > width:
            progress(f"building the Hamiltonian: {min(start + width, n)} of {n} rows")
    out = []
    for b in blocks:
        matrix = sp.vstack(b, format="csr")
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        out.append(matrix)
    return out


# -- sectors -----------------------------------------------------------------------------


def _conserved(matrix: sp.csr_matrix, labels: np.ndarray, scale: float) -> tuple[bool, tuple | None]:
    """Whether `matrix` has no element (above rounding) between rows of
    different `labels`, and one offending pair of labels otherwise."""
    coo = matrix.tocoo()
    big = np.abs(coo.data) > 1e-12 * max(scale, 1e-300)
    cross = big & (labels[coo.row] != labels[coo.col])
    if not cross.any():
        return True, None
    k = int(np.flatnonzero(cross)[0])
    return False, (float(labels[coo.row[k]]), float(labels[coo.col[k]]))


def _lowest(block: sp.csr_matrix, k: int, vectors: bool):
    """The `k` lowest eigenvalues (ascending) of a Hermitian block, and the
    eigenvector of the lowest (or `None`): dense below `DENSE_LIMIT`, else Lanczos."""
    n = block.shape[0]
    k = min(k, n)
    with threadpool_limits(limits=1, user_api="blas"):  # see nqs_spins._exact._single_threaded_blas
        if n < DENSE_LIMIT or k >= n - 1:
            vals, vecs = np.linalg.eigh(block.toarray())
            return vals[:k], (vecs[:, 0] if vectors else None)
        v0 = np.random.default_rng(0).standard_normal(n).astype(block.dtype)
        vals, vecs = spla.eigsh(block, k=k, which="SA", v0=v0, tol=0)
    order = np.argsort(vals)
    return np.real(vals[order]), (vecs[:, order[0]] if vectors else None)


class Sector:
    """One block of the Hamiltonian: the configurations with the same values
    of the conserved quantum numbers.

    **Attributes:** `label` (quantum-number name -> value; `{}` for the whole
    space), `n_states`, `energies` (its lowest eigenvalues, ascending).
    """

    def __init__(self, label: dict[str, float], n_states: int, energies: np.ndarray):
        self.label = dict(label)
        self.n_states = int(n_states)
        self.energies = np.asarray(energies, dtype=np.float64)

    def name(self) -> str:
        """`Sz=0` style text, `all states` for the whole space."""
        return ", ".join(f"{k}={_num(v)}" for k, v in self.label.items()) or "all states"

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "n_states": self.n_states, "energies": self.energies.tolist()}


def _num(v: float) -> str:
    return f"{v:g}"


def _levels(energies: np.ndarray) -> float:
    return DEGENERACY_RTOL * max(1.0, float(np.max(np.abs(energies)))) if len(energies) else 0.0


# -- the exact state ---------------------------------------------------------------------


class ExactState:
    """The exact ground state of a small discrete system and its low-lying
    spectrum: what `nqs exact` computes and `--save` writes, and what
    `nqs_core.load_exact(DIR)` reads back.

    **Attributes:**

    - `energies`: the lowest eigenvalues, ascending, each as often as it is
      degenerate (`float64`, shape `(n_states,)`).
    - `vector`: the normalised ground state in the basis `configurations`
      (same order), in the basis the Hamiltonian is written in (for a
      Marshall-rotated spin model, the rotated basis; `expect` rotates
      operators for you).
    - `configurations`: every configuration of the space, `(n, *shape)`.
    - `sectors`: a list of `Sector` (one per value of the conserved quantum
      numbers; one for the whole space when none is conserved).
    - `conserved`, `not_conserved`: names of the space's quantum numbers the
      Hamiltonian conserves and those it does not.
    - `ground_sector`: the `Sector` the ground state was taken from.
    - `system`: the Hamiltonian (`None` when loaded without one).
    - `observables`: the config's `[observables]` (name -> observable).
    - `description`: a dict naming the lattice, space and system.
    """

    def __init__(self, system, configurations, vector, energies, sectors, conserved, not_conserved, ground_sector,
                 observables=None, description=None, physics_hash=None):
        self.system = system
        self.configurations = np.asarray(configurations)
        self.vector = np.asarray(vector)
        self.energies = np.asarray(energies, dtype=np.float64)
        self.sectors = list(sectors)
        self.conserved = tuple(conserved)
        self.not_conserved = tuple(not_conserved)
        self.ground_sector = ground_sector
        self.observables = dict(observables or {})
        self.description = dict(description or {})
        self.physics_hash = physics_hash
        #: the resolved config (TOML) written by `save`, when known
        self.config_toml: str | None = None
        self._index = None

    # -- numbers ------------------------------------------------------------
    @property
    def ground_energy(self) -> float:
        """`E0`."""
        return float(self.energies[0])

    @property
    def degeneracy(self) -> int:
        """How many of the computed eigenvalues equal `E0` (to `DEGENERACY_RTOL`):
        the multiplicity of the ground level, at least (all levels of every
        sector are counted up to the number computed)."""
        tol = _levels(self.energies)
        found = [e for s in self.sectors for e in s.energies]
        return int(np.sum(np.abs(np.asarray(found) - self.energies[0]) <= tol))

    @property
    def gap(self) -> float | None:
        """`E1 - E0` of the two lowest eigenvalues (0 for a degenerate ground
        state; every sector computes at least two, so it is known whatever
        `n_states`); `None` for a space of one state."""
        found = np.sort([e for s in self.sectors for e in s.energies])
        return float(found[1] - found[0]) if found.size > 1 else None

    @property
    def excitation_gap(self) -> float | None:
        """The distance from `E0` to the next distinct level among the
        computed eigenvalues of every sector (`None` when there is none)."""
        tol = _levels(self.energies)
        found = np.sort([e for s in self.sectors for e in s.energies])
        above = found[found > self.energies[0] + tol]
        return float(above[0] - self.energies[0]) if above.size else None

    def to_array(self) -> np.ndarray:
        """The ground-state vector (a copy), in the order of `configurations`."""
        return np.array(self.vector)

    # -- expectation values --------------------------------------------------
    def _space(self):
        if self.system is None:
            raise ValueError("this exact state has no system to bind operators to")
        return self.system.space

    def _as_observable(self, obj) -> AbstractObservable:
        if isinstance(obj, Operator):
            obj = self.system.in_basis(obj)
        elif isinstance(obj, (PauliOperator, LocalOperator)):  # bound to the space, physical basis
            obj = self.system.in_basis(obj.operator)
        return as_observable(obj)

    def expect(self, obj) -> Stats:
        """The exact expectation value `<psi0|O|psi0>` in the ground state.

        **Arguments:**

        - `obj`: an observable built for this system (`ExactState.observables`,
          `nqs_spins.Correlation(system, lattice)`, ...: in the system's basis),
          or an operator in the physical basis, an `nqs_core.Operator` such as
          `sx(0) * sx(1)` (or one bound with `.on(space)`), which is rotated into
          the system's basis (`system.in_basis`) first.

        **Returns:** `Stats` with the exact mean, error 0, tau 0, R-hat 1, and
        the variance `<O^dagger O> - |<O>|^2` (`NaN` when `O` leaves the space).
        """
        return self.expect_many({"value": self._as_observable(obj)})["value"]

    def expect_many(self, observables: Mapping[str, Any]) -> dict[str, Stats]:
        """`expect` of several observables or operators, `{name: Stats}`: the
        operators of all of them (equal ones once) in one compiled pass over
        the configurations."""
        obs = {k: self._as_observable(o) for k, o in observables.items()}
        space = self._space()
        if self._index is None:
            self._index = _row_index(space, self.configurations)
        return expect_vector(space, self.configurations, self.vector, obs, self._index)

    def measure(self, names: Sequence[str] = ()) -> dict[str, Stats]:
        """`{"energy": ..., name: Stats}` of `observables` (only `names` if
        given), in one pass; the energy with the variance `<H^2> - E0^2` of
        the vector (rounding: the vector is an eigenvector)."""
        chosen = {k: o for k, o in self.observables.items() if not names or k in names}
        key = object()
        values = self.expect_many({key: OperatorObservable(self.system), **chosen})
        energy = values.pop(key)
        energy = eqx.tree_at(lambda s: s.mean, energy, jnp.real(energy.mean))
        return {"energy": energy, **values}

    # -- output ------------------------------------------------------------------
    def summary(self, values: Mapping[str, Stats] | None = None) -> dict[str, Any]:
        """The JSON object of `nqs exact --json`: the system, energies, gap,
        degeneracy, sectors and (given `values`) the observables."""
        n_sites = int(self.configurations[0].size) if len(self.configurations) else 0
        out = {
            "system": self.description,
            "n_states": int(len(self.vector)),
            "n_sites": n_sites,
            "energies": self.energies.tolist(),
            "ground_energy": self.ground_energy,
            "ground_energy_per_site": self.ground_energy / n_sites if n_sites else None,
            "gap": self.gap,
            "excitation_gap": self.excitation_gap,
            "ground_state_degeneracy": self.degeneracy,
            "ground_sector": self.ground_sector.label,
            "conserved": list(self.conserved),
            "not_conserved": list(self.not_conserved),
            "sectors": [s.as_dict() for s in self.sectors],
        }
        if values is not None:
            out["observables"] = {k: stats_dict(v, self.observables.get(k)) for k, v in values.items()}
        return strict_json(out)

    def save(self, directory) -> pathlib.Path:
        """Write the state into `directory` (new, empty, or holding an exact
        state written before, which is replaced; under the directory's lock):
        `exact.npz` (configurations, vector, energies, sectors, the physics
        fingerprint), `exact.json` (`summary()`) and `config.toml` (the
        resolved config, when the state was made from one: `exact_from_config`).

        **Raises:** `ConfigError` for a directory holding other files, or one
        in use by another nqs process.
        """
        with save_dir(directory, EXACT_FILES, EXACT_FILE, "nqs exact --save", "exact state") as directory:
            arrays = {
                "configurations": self.configurations,
                "vector": self.vector,
                "energies": self.energies,
                "sectors": np.asarray(json.dumps([s.as_dict() for s in self.sectors])),
                "ground_sector": np.asarray(json.dumps(self.ground_sector.as_dict())),
                "conserved": np.asarray(json.dumps([list(self.conserved), list(self.not_conserved)])),
                "description": np.asarray(json.dumps(self.description)),
                "fingerprint": np.asarray(self.physics_hash or ""),
            }
            atomic_write(directory / EXACT_FILE, lambda f: np.savez(f, **arrays))
            write_text(directory / EXACT_JSON, json.dumps(self.summary(), indent=1) + "\n")
            if self.config_toml is not None:
                write_text(directory / CONFIG_FILE, self.config_toml)
        return directory


# -- expectation values on a vector ------------------------------------------------------


def expect_vector(space, configurations: np.ndarray, vector: np.ndarray, observables: Mapping[str, AbstractObservable],
                  index=None) -> dict[str, Stats]:
    """Exact expectation values `<v|O|v>` (`v` normalised) of observables on a
    state vector over every configuration of a discrete space: what
    `ExactState.expect_many` (the ground state) and `nqs_core._evolve` (a state
    at time t) measure.

    **Arguments:**

    - `space`: the discrete space the observables are bound to.
    - `configurations`: `space.all_states()` (the order of `vector`).
    - `vector`: the normalised state, in the basis the observables are written
      in (the system's basis: Marshall-rotated for a rotated system).
    - `observables`: `{name: AbstractObservable}`.
    - `index`: the row look-up of `configurations` (`_row_index`), if the caller has it.

    **Returns:** `{name: Stats}`, exact (error 0): operator observables (of the
    default `local_values`) in one pass over chunks of rows, with the variance
    `<O^dagger O> - |<O>|^2`; the others from their local values.
    """
    if index is None:
        index = _row_index(space, configurations)
    v = np.asarray(vector)
    out: dict[str, Stats] = {}
    table_obs = {k: o for k, o in observables.items() if isinstance(o, AbstractOperatorObservable) and _default_local_values(o)}
    if table_obs:
        out.update(_expect_operators(configurations, v, index, table_obs))
    for name, o in observables.items():
        if name in out:
            continue
        if isinstance(o, AbstractSampleObservable):
            values = np.asarray(batch_apply(o.function, jnp.asarray(configurations)))
            p = np.abs(v) ** 2
            flat = values.reshape(len(v), -1)
            mean = p @ flat
            var = p @ (np.abs(flat) ** 2) - np.abs(mean) ** 2
            out[name] = _stats(mean.reshape(values.shape[1:]), var.reshape(values.shape[1:]))
        else:
            out[name] = _expect_by_local_values(space, configurations, v, index, o)
    return {k: out[k] for k in observables}


def _expect_operators(states, v, index, observables: Mapping[str, AbstractOperatorObservable]) -> dict[str, Stats]:
    """Operator observables: `A_j = sum_k T_jk O_k`, `<A_j> = <v|A_j v>` and
    `||A_j v||^2`, accumulated over chunks of rows (memory: the chunk's
    connected elements, not a table of the whole space)."""
    unique, keys, where = [], {}, {}
    for name, o in observables.items():
        idx = []
        for op in o.operators:
            key = _content_key(op)
            if key not in keys:
                keys[key] = len(unique)
                unique.append(op)
            idx.append(keys[key])
        where[name] = np.asarray(idx)
    n = states.shape[0]
    width = min(_CHUNK, n)
    means = {k: 0.0 for k in observables}
    norms = {k: 0.0 for k in observables}
    leaves = np.zeros(len(unique), dtype=bool)
    for start in range(0, n, width):
        chunk = states[start : start + width]
        m = chunk.shape[0]
        if m < width:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], width - m, axis=0)])
        parts = jax.device_get(_table_chunk(tuple(unique), jnp.asarray(chunk), jnp.int32(start), index))
        w = np.stack([np.einsum("ik,ik->i", mels[:m], v[rows[:m]]) for rows, mels, _ in parts])
        leaves |= np.asarray([bool(bad) for _, _, bad in parts])
        vc = np.conj(v[start : start + m])
        for name, o in observables.items():
            a = w[where[name]]
            if o.transform is not None:
                a = np.asarray(o.transform) @ a
            means[name] = means[name] + a @ vc
            norms[name] = norms[name] + np.sum(np.abs(a) ** 2, axis=1)
    out = {}
    for name, o in observables.items():
        mean, var = np.asarray(means[name]), np.asarray(norms[name] - np.abs(means[name]) ** 2)
        if leaves[where[name]].any():
            var = np.full(var.shape, np.nan)
        if o.transform is None and len(o.operators) == 1:
            mean, var = mean[0], var[0]
        out[name] = _stats(mean, var)
    return out


def _expect_by_local_values(space, states, v, index, obs) -> Stats:
    """An observable with its own `local_values`: evaluated with `log psi`
    of the exact vector (looked up), on the configurations where it is not
    zero. The variance is that of the local values (as a full sum gives
    it), not `<O^dagger O> - |<O>|^2`."""
    live = np.abs(v) > 0
    log_v = jnp.asarray(np.where(live, np.log(np.where(live, v, 1).astype(np.complex128)), -np.inf + 0j))

    def log_psi(x):
        key = state_keys(space, x[None])
        found, row = _lookup_rows(index, key)
        return jnp.where(found[0], log_v[row[0]], -jnp.inf + 0j)

    xs = jnp.asarray(states[live])
    values = np.asarray(obs.local_values(log_psi, xs, log_psi_xs=log_v[np.flatnonzero(live)]))
    p = np.abs(v[live]) ** 2
    flat = values.reshape(len(p), -1)
    mean = p @ flat
    var = p @ (np.abs(flat) ** 2) - np.abs(mean) ** 2
    return _stats(mean.reshape(values.shape[1:]), var.reshape(values.shape[1:]))


def _lookup_rows(index, keys):
    if index[0] == "dense":
        row_of_key = index[1]
        row = row_of_key[jnp.clip(keys, 0, row_of_key.shape[0] - 1)]
        return (keys >= 0) & (row >= 0), row
    _, sorted_keys, order = index
    pos = jnp.clip(jnp.searchsorted(sorted_keys, keys), 0, sorted_keys.shape[0] - 1)
    return (sorted_keys[pos] == keys) & (keys >= 0), order[pos]


def _default_local_values(obs) -> bool:
    return type(obs).local_values is AbstractOperatorObservable.local_values


def _stats(mean, variance) -> Stats:
    mean = np.asarray(mean)
    variance = np.asarray(variance, dtype=np.float64)
    zero = np.zeros(variance.shape)
    return Stats(mean=jnp.asarray(mean), error_of_mean=jnp.asarray(zero), variance=jnp.asarray(variance),
                 tau_corr=jnp.asarray(zero), R_hat=jnp.asarray(zero + 1.0))


@contextlib.contextmanager
def save_dir(directory, files: tuple[str, ...], marker: str, command: str, what: str):
    """The directory a `--save` writes, made if needed and locked while the
    block runs: refused (`ConfigError`) when it holds files other than the
    command's own (`check_save_dir`, before and again under the lock) or a
    symbolic link, or is in use by another nqs process.

    **Yields:** the directory as a `pathlib.Path`."""
    directory = pathlib.Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the directory {directory}: {exc.strerror or exc}; choose another --save") from None
    check_run_files(directory)
    check_save_dir(directory, files, marker, command, what)
    with RunLock(directory, command) as lock:
        lock_note(lock)
        check_save_dir(directory, files, marker, command, what)  # again under the lock
        yield directory


def check_save_dir(directory: pathlib.Path, files: tuple[str, ...], marker: str, command: str, what: str) -> None:
    """Refuse (`ConfigError`) a directory that `command` may not write: one
    holding files other than its own `files` (and the lock), or a
    `config.toml` without the `marker` file that says `command` wrote it.

    **Arguments:** `directory`, `files` (what the command writes), `marker`
    (the file that identifies its output), `command` and `what` (for the message)."""
    others = sorted(p.name for p in directory.iterdir() if p.name not in files + (LOCK_FILE,))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(
            f"{directory} holds other files ({shown}); {command} writes only into a new or empty directory "
            "(or one it wrote before): choose another directory"
        )
    if (directory / CONFIG_FILE).exists() and not (directory / marker).exists():
        raise ConfigError(f"{directory} holds a config.toml but no {what}; choose another directory")


# -- solving -----------------------------------------------------------------------------


def exact_state(
    system: AbstractDiscreteHamiltonian,
    n_states: int = 1,
    observables: Mapping[str, AbstractObservable] | None = None,
    progress: Callable[[str], None] | None = None,
    description: dict | None = None,
) -> ExactState:
    """Diagonalise `system` exactly: the `n_states` lowest eigenvalues, the
    spectrum per sector of the conserved quantum numbers, the ground state.

    The matrix is built from `system.connected` on every configuration
    (look-ups among the enumerated rows, as the full sum does). For every
    quantum number of the space (`space.quantum_numbers`) the matrix is
    checked for elements between configurations of different values; the
    conserved ones split the space into sectors, each diagonalised on its own
    (dense below `DENSE_LIMIT` states, else Lanczos, `scipy.sparse.linalg.eigsh`),
    and the `n_states` lowest of all sectors are the spectrum. The ground state
    is the lowest vector of the sector with the lowest energy; when several
    sectors share it (a degenerate ground state), the one with the smallest
    `|value|` (then the smallest value) is taken.

    **Arguments:**

    - `system`: a discrete Hamiltonian on an enumerable space.
    - `n_states`: how many of the lowest eigenvalues (each sector gives at
      least 2, so that a degenerate ground state is seen).
    - `observables`: kept on the result for `ExactState.measure`.
    - `progress`: called with a short line at each stage (for a spinner).
    - `description`: what the result's `summary()` says the system is.

    **Returns:** an `ExactState`.

    **Raises:** `MemoryLimitError` (before anything is enumerated) when the
    estimate (`spectrum_memory`) passes the memory limit; `ConfigError` for a
    system that cannot be diagonalised.
    """
    say = progress or (lambda line: None)
    n = _check_space(system)
    if isinstance(n_states, bool) or not isinstance(n_states, (int, np.integer)) or n_states < 1:
        raise ConfigError(f"--n-states must be a positive integer, got {n_states!r}")
    n_states = int(min(n_states, n))
    space = system.space
    check_memory(spectrum_memory(system, n_states), f"exact diagonalisation of {n} states ({space.size} sites)")
    say(f"listing {n} states")
    states = np.asarray(space.all_states())
    index = _row_index(space, states)
    say(f"building the Hamiltonian on {n} states")
    matrix = _matrix(system, states, index, say)
    scale = float(np.max(np.abs(matrix.data))) if matrix.nnz else 1.0
    if matrix.nnz and abs(matrix - matrix.conj().T).max() > 1e-12 * scale:
        raise ConfigError("the Hamiltonian is not Hermitian; nqs exact diagonalises Hermitian matrices")
    # sectors of the conserved quantum numbers
    conserved, not_conserved, labels = [], [], []
    for qn in space.quantum_numbers:
        values = qn.values(states)
        ok, _ = _conserved(matrix, values, scale)
        if ok:
            conserved.append(qn.name)
            labels.append(values)
        else:
            not_conserved.append(qn.name)
    if labels:
        keys = np.stack(labels, axis=1)
        uniq, which = np.unique(keys, axis=0, return_inverse=True)
        which = which.reshape(-1)
    else:
        uniq, which = np.zeros((1, 0)), np.zeros(n, dtype=np.int64)
    per_sector = max(n_states, 2)
    sectors, vectors = [], []
    for s, values in enumerate(uniq):
        idx = np.flatnonzero(which == s)
        say(f"diagonalising sector {s + 1} of {len(uniq)} ({len(idx)} states)")
        block = matrix[idx][:, idx] if len(uniq) > 1 else matrix
        vals, vec = _lowest(block, per_sector, vectors=True)
        sectors.append(Sector(dict(zip(conserved, map(float, values))), len(idx), vals))
        vectors.append((idx, vec))
    energies = np.sort(np.concatenate([s.energies for s in sectors]))[:n_states]
    tol = _levels(energies)
    ground = [k for k, s in enumerate(sectors) if s.energies[0] <= energies[0] + tol]
    best = min(ground, key=lambda k: (float(np.sum(np.abs(uniq[k]))), tuple(uniq[k])))
    idx, vec = vectors[best]
    vector = np.zeros(n, dtype=np.result_type(vec.dtype, np.float64))
    vector[idx] = vec / np.linalg.norm(vec)
    # a fixed sign: the largest component positive (real vectors) / real (complex)
    big = int(np.argmax(np.abs(vector)))
    vector = vector * (np.abs(vector[big]) / vector[big])
    if not np.iscomplexobj(matrix.data):
        vector = np.real(vector)
    state = ExactState(system, states, vector, energies, sectors, conserved, not_conserved, sectors[best],
                       observables=observables, description=description)
    state._index = index
    return state


# -- configs and directories -------------------------------------------------------------


def physics_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the physics of a resolved config's `[lattice]`, `[space]`
    and `[system]` tables (what an exact state depends on)."""
    flat = physics({k: config[k] for k in PHYSICS_TABLES if k in config})
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()


def _describe(config: dict[str, Any], system) -> dict[str, Any]:
    out = {k: dict(config[k]) for k in PHYSICS_TABLES if k in config}
    out["n_sites"] = int(system.space.size)
    return strict_json(json.loads(json.dumps(out, default=str)))


def build_exact(config: dict[str, Any], registry=None):
    """Build the `[lattice]`, `[space]`, `[system]` and `[observables]` tables
    of a config (nothing else).

    **Returns:** `(calc, observables)`; `calc.config` holds the resolved tables.
    """
    registry = registry or get_registry()
    calc = build(config, registry=registry, exact=False, stop_after="system")
    if "system" not in calc.components:
        raise ConfigError("the config has no [system] table; nqs exact diagonalises a config's [system]")
    ctx = BuildContext(registry, calc.run)
    observables, resolved = _build_observables(config, ctx, calc.components, jax.random.PRNGKey(calc.run["seed"]))
    if resolved:
        calc.config["observables"] = resolved
    calc.observables = observables
    return calc, observables


def exact_from_config(config: dict[str, Any], n_states: int = 1, registry=None, progress=None) -> ExactState:
    """`exact_state` of a config's `[system]` (only `[lattice]`, `[space]`,
    `[system]` and `[observables]` are built), under the config's memory
    limit (`[run] max_memory_gb`), with its `[observables]`; the resolved
    config is kept for `ExactState.save`.

    **Arguments:**

    - `config`: a config dict (`nqs_core.load_config`).
    - `n_states`, `progress`: as in `exact_state`.

    **Returns:** an `ExactState`.
    """
    calc, observables = build_exact(config, registry)
    system = calc["system"]
    with memory_limit(run_memory_limit(calc.run)):
        state = exact_state(system, n_states, observables=observables, progress=progress,
                            description=_describe(calc.config, system))
    state.physics_hash = physics_hash(calc.config)
    state.config_toml = resolved_toml(calc)
    return state


def is_exact_dir(directory) -> bool:
    """Whether `directory` holds an exact state written by `nqs exact --save`."""
    return (pathlib.Path(directory) / EXACT_FILE).is_file()


def load_exact(directory, registry=None) -> ExactState:
    """The exact state written by `nqs exact --save DIR` (or `ExactState.save`).

    The system and the `[observables]` are rebuilt from `DIR/config.toml`; a
    config whose physics (`[lattice]`, `[space]`, `[system]`) differs from the
    fingerprint stored with the state is refused.

    **Arguments:**

    - `directory`: the directory.

    **Returns:** an `ExactState` with `energies`, `vector`, `configurations`,
    `sectors`, `system`, `observables`, `expect(op_or_observable)`, `to_array()`.

    **Raises:** `ConfigError` naming the problem (no exact state, an edited
    config, a damaged file).
    """
    directory = pathlib.Path(directory)
    if not is_exact_dir(directory):
        raise ConfigError(f"no exact state in {directory} (no {EXACT_FILE}); write one with `nqs exact CONFIG --save {directory}`")
    check_run_files(directory)
    if (directory / EXACT_FILE).is_symlink():
        raise ConfigError(f"{directory / EXACT_FILE} is a symbolic link; nqs does not follow links")
    config = load_config(directory / CONFIG_FILE)
    calc, observables = build_exact(config, registry)
    try:
        with np.load(directory / EXACT_FILE, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {directory / EXACT_FILE}: {exc}") from None
    stored = str(arrays["fingerprint"])
    if stored and stored != physics_hash(calc.config):
        raise ConfigError(
            f"{directory / CONFIG_FILE} was edited after the exact state was saved (its lattice, space or system "
            "differ); undo the edit, or run `nqs exact` again"
        )
    system = calc["system"]
    states = arrays["configurations"]
    if states.shape[0] != int(system.space.n_states) or states.shape[1:] != tuple(system.space.shape):
        raise ConfigError(f"{directory / EXACT_FILE} does not fit the space of {directory / CONFIG_FILE}")
    sectors = [Sector(s["label"], s["n_states"], s["energies"]) for s in json.loads(str(arrays["sectors"]))]
    g = json.loads(str(arrays["ground_sector"]))
    ground = next((s for s in sectors if s.label == g["label"]), Sector(g["label"], g["n_states"], g["energies"]))
    conserved, not_conserved = json.loads(str(arrays["conserved"]))
    return ExactState(system, states, arrays["vector"], arrays["energies"], sectors, conserved, not_conserved, ground,
                      observables=observables, description=json.loads(str(arrays["description"])), physics_hash=stored)


def measure_exact(directory, names: Sequence[str] = ()):
    """`nqs measure DIR` of an exact-state directory: the energy and the
    `[observables]` (or only `names`: configured ones, or registered
    observables with their default fields) on the saved ground state.

    **Returns:** `({name: Stats}` with `"energy"`, `{name: observable}`, `True)`.
    """
    directory = pathlib.Path(directory)
    config = load_config(directory / CONFIG_FILE)
    tables = config.setdefault("observables", {})
    registry = get_registry()
    for name in names:
        if name not in tables:
            if name not in registry.names("observable"):
                valid = sorted(set(tables) | set(registry.names("observable")))
                raise ConfigError(f"unknown observable {name!r}; valid: {', '.join(valid)}")
            tables[name] = {"name": name}
    if names:
        config["observables"] = {k: v for k, v in tables.items() if k in names}
    state = load_exact(directory, registry)
    calc, observables = build_exact(config, registry)
    state.observables = observables
    if not observables:
        raise ConfigError(
            f"the exact state in {directory} configures no [observables]; name one with --observable "
            f"(registered: {', '.join(registry.names('observable'))})"
        )
    return state.measure(), observables, True
