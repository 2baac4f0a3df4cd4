"""The variational state: a wave function with its sampler, measured from Python.

`VariationalState` bundles what a measurement needs (the ansatz and its
parameters, a sampler with its chains, the system whose basis the amplitudes
live in) behind the calls a NetKet user knows from `MCState`: `sample`,
`log_value`, `expect`, `expect_exact`, `to_array`, `save`. `load_state`
rebuilds one from a run directory, as `nqs measure` does.

Basis. A system may store its amplitudes in a rotated basis: the spin
Hamiltonians with `marshall_sign = true` declare the rotated sites
(`AbstractDiscreteHamiltonian.marshall_sites`), and the network then represents `psi_rot = U psi` with
`U = prod_{i in sites} Z_i` (`Operator.rotate_z`: `H_rot = U H U^dagger`).
Everything a `VariationalState` returns is in the *physical* basis: operators
written by the user are rotated into the system's basis before they are
measured, `to_array()` and `log_value(x)` undo `U` (`psi(x) = conj(u(x))
psi_rot(x)`, `u(x) = prod_i w^{j_i}` the diagonal of `U`; a sign
`prod_i x_i` for spin 1/2). The samples are the same in both bases (`U` is
diagonal, `|psi|^2` does not change).
"""

from __future__ import annotations

import copy
import json
import math
import pathlib
import types
import typing
from typing import Any, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, build
from ._distributed import fold_rank, is_root
from ._driver_protocol import AbstractSamplingDriver
from ._estimator import AbstractEstimator, EnergyEstimator, measure_chunk_size
from ._fullsum import DEFAULT_MAX_STATES, FullSumState, check_enumerable
from ._io import (
    CHECKPOINT_FILE, CHECKPOINT_META, CONFIG_FILE, LOG_FILE, RESULT_FILE, check_run_files,
    save_checkpoint, write_text,
)
from ._measure import read_run_parameters
from ._local_space import local_values_of, values_to_indices
from ._lock import LOCK_FILE, RunLock
from ._observable import AbstractObservable, OperatorObservable, _draw, expect_many
from ._operator import Operator
from ._operator_bind import bind_operator
from ._run import check_physics, fingerprint
from ._sampler import AbstractSampler, BornDistribution
from ._samples import Samples, is_exact
from ._space import AbstractDiscreteSpace
from ._stats import Stats
from ._system import AbstractDiscreteHamiltonian, AbstractHamiltonian
from ._toml import load_config, resolved_toml
from ._tree import batch_apply, n_real_parameters, parameters
from ._validate import check_memory

#: `checkpoint.json` "kind" of a directory written by `VariationalState.save`
#: (not a run: `nqs resume` cannot continue it; `load_state` and `nqs measure` read it).
STATE_KIND = "variational_state"

#: The bases `to_array` and `log_value` can return.
BASES = ("physical", "rotated")


def rotated_sites(system) -> tuple[int, ...]:
    """The sites on which `system` rotates its basis by `Z` (the Marshall
    sign: `marshall_sites` of the spin Hamiltonians); empty for a system
    without a rotation (or no system)."""
    if not isinstance(system, AbstractDiscreteHamiltonian):
        return ()
    return tuple(int(s) for s in system.marshall_sites)


def _unrotate(op: Operator, sites) -> Operator:
    """`U^dagger O U` for `U = prod_{i in sites} Z_i` (the inverse of
    `Operator.rotate_z`: `rotate_z` applied `d - 1` times, as `Z^d = 1`)."""
    for _ in range(op.local_dim - 1):
        op = op.rotate_z(sites)
    return op


@typing.final
class VariationalState:
    """A variational wave function with its sampler: NetKet's `MCState` (and,
    with a `FullSumSampler`, its `FullSumState`) for nqs.

    **Arguments:**

    - `ansatz`: the network (`nqs_core.AbstractAnsatz`); its inexact arrays are
      the parameters.
    - `sampler`: draws configurations from `|psi|^2` (`None`: no sampling;
      `expect_exact` and `to_array` still work). A `FullSumSampler` gives exact
      expectation values from `expect`, with weighted samples.
    - `parameters`: the parameters to use instead of the ansatz's own (a pytree
      shaped like `nqs_core.parameters(ansatz)[0]`, e.g. from
      `nqs_core.load_parameters`).
    - `system`: the Hamiltonian whose basis the amplitudes are in (its
      `marshall_sites`, see the module notes) and whose space is enumerated;
      `expect(state.system)` is the energy.
    - `seed`: seed of the sampler's chains (`PRNGKey(seed)`).
    - `chunk_size`: evaluate at most this many configurations at once.
    - `observables`: named observables that `expect("name")` measures (a run's
      `[observables]` tables, for `load_state`).
    - `estimator`: what `expect_and_grad` estimates with (default
      `EnergyEstimator(chunk_size)`; `load_state`: the run's).

    A plain, mutable Python object (not an `equinox.Module`): like NetKet's
    `MCState` it keeps its Markov chains and last samples between calls, so
    `sample()` continues the chains and `expect` reuses the samples until the
    parameters change. The pytree to transform with jax is `state.model` (the
    ansatz with the parameters). Final: wrap it, do not subclass it.

    **Example:**

    ```python
    state = nqs_core.VariationalState(ansatz, sampler, system=system, seed=1)
    print(state.expect(system))                      # the energy, Stats
    print(state.expect(sz(0) * sz(1)))                # an Operator, physical basis
    psi = state.to_array()                            # small spaces only
    ```
    """

    def __init__(
        self,
        ansatz,
        sampler: AbstractSampler | None = None,
        parameters: Any = None,
        system: AbstractHamiltonian | None = None,
        seed: int = 0,
        chunk_size: int | None = None,
        observables: Mapping[str, AbstractObservable] | None = None,
        estimator: AbstractEstimator | None = None,
    ):
        if not callable(ansatz):
            raise TypeError(f"VariationalState needs an ansatz (a callable module), got {ansatz!r}")
        if sampler is not None and not isinstance(sampler, AbstractSampler):
            raise TypeError(f"VariationalState: sampler must be an nqs_core.AbstractSampler or None, got {type(sampler).__name__}")
        params, static = _split(ansatz)
        self._static = static
        self._params = params
        self.sampler = sampler
        self.system = system
        self.seed = int(seed)
        self.chunk_size = chunk_size
        self.observables: dict[str, AbstractObservable] = dict(observables or {})
        self.estimator = estimator if estimator is not None else EnergyEstimator(chunk_size=chunk_size)
        space = next((getattr(o, "space", None) for o in (system, sampler, ansatz) if getattr(o, "space", None) is not None), None)
        #: the configuration space (of the system, else the sampler, else the ansatz)
        self.space = space
        for owner in (system, sampler):
            other = getattr(owner, "space", None)
            if space is not None and other is not None and tuple(other.shape) != tuple(space.shape):
                raise ValueError(
                    f"VariationalState: inconsistent configuration shapes: {type(owner).__name__} has {tuple(other.shape)}, "
                    f"the state {tuple(space.shape)}"
                )
        #: the step of the checkpoint the parameters come from (`load_state`), else `None`
        self.step: int | None = None
        self._config: dict[str, Any] | None = None  # a resolved config (load_state): what save() writes
        self._sampler_state = None
        self._samples = None
        self._full_sum: FullSumState | None = None
        if parameters is not None:
            self.parameters = parameters

    # -- parameters ----------------------------------------------------------

    @property
    def parameters(self) -> Any:
        """The parameters (a pytree of arrays). Setting them drops the cached
        samples (the chains are kept and continue from where they are)."""
        return self._params

    @parameters.setter
    def parameters(self, value: Any) -> None:
        old = jax.tree.structure(self._params)
        new = jax.tree.structure(value)
        if old != new:
            raise ValueError(f"VariationalState.parameters: the new parameters have another structure ({new}) than the ansatz ({old})")
        for a, b in zip(jax.tree.leaves(self._params), jax.tree.leaves(value)):
            if jnp.shape(a) != jnp.shape(b) or jnp.result_type(a) != jnp.result_type(b):
                raise ValueError(
                    f"VariationalState.parameters: a leaf of shape {jnp.shape(b)} and dtype {jnp.result_type(b)} "
                    f"replaces one of shape {jnp.shape(a)} and dtype {jnp.result_type(a)}"
                )
        self._params = jax.tree.map(jnp.asarray, value)
        self._samples = None

    @property
    def model(self):
        """The ansatz with the current parameters (an `equinox.Module`: `model(x)`
        is `log psi` of one configuration *in the system's basis*, see `log_value`)."""
        return eqx.combine(self._params, self._static)

    @property
    def n_parameters(self) -> int:
        """Number of real parameters (a complex one counts twice)."""
        return n_real_parameters(self.model)

    # -- sampling ------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Forget the chains and the cached samples; the next `sample` starts
        fresh chains from `seed` (default: the state's `seed`)."""
        if seed is not None:
            self.seed = int(seed)
        self._sampler_state = None
        self._samples = None

    def _need_sampler(self, what: str) -> AbstractSampler:
        if self.sampler is None:
            raise ValueError(f"VariationalState.{what} needs a sampler; this state has none (expect_exact and to_array sum over every state)")
        return self.sampler

    @property
    def draws_exact(self) -> bool:
        """Whether the sampler returns an exact weighted sum (the `full_sum`
        sampler): `expect` is then exact, with error 0."""
        sampler = self._need_sampler("draws_exact")
        state = self._chains()
        out = eqx.filter_eval_shape(_draw, sampler, self.model, state)
        return is_exact(out[0])

    def _chains(self):
        if self._sampler_state is None:
            sampler = self._need_sampler("sample")
            # as `nqs measure`: fresh chains from PRNGKey(seed) (VMC.init folds in the MPI rank)
            self._sampler_state = sampler.init(BornDistribution(self.model), fold_rank(jax.random.PRNGKey(self.seed)))
        return self._sampler_state

    def sample(self, n_samples: int | None = None, seed: int | None = None):
        """Draw configurations from `|psi|^2`, continuing the chains.

        **Arguments:**

        - `n_samples`: at least this many samples (rounded up to a multiple of the
          number of chains; several sampler calls, chains continued); default:
          one call of the sampler (its `n_samples`).
        - `seed`: start fresh chains from `PRNGKey(seed)` first (as `reset(seed)`).

        **Returns:** the sampler's output: an array `(n_chains, n_per_chain,
        *space.shape)`, or `nqs_core.Samples` with weights for an exact sampler
        (`full_sum`: every configuration once, weights `|psi|^2 / Z`). The
        result is also kept as `state.samples`, which `expect` measures on.
        """
        sampler = self._need_sampler("sample")
        if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1):
            raise ValueError(f"VariationalState.sample: n_samples must be a positive integer, got {n_samples!r}")
        if seed is not None:
            self.reset(seed)
        model = self.model
        out, self._sampler_state, _ = _draw(sampler, model, self._chains())
        if isinstance(out, Samples) and out.weights is None:
            out = out.x
        if n_samples is not None:
            if isinstance(out, Samples) and out.weights is not None:
                raise ValueError(
                    f"VariationalState.sample: the {type(sampler).__name__} returns weighted samples "
                    f"({'every configuration once' if out.exact else 'importance sampling'}); omit n_samples"
                )
            per_chain = -(-int(n_samples) // int(out.shape[0]))
            batches = [out]
            while sum(b.shape[1] for b in batches) < per_chain:
                more, self._sampler_state, _ = _draw(sampler, model, self._sampler_state)
                more = more.x if isinstance(more, Samples) else more
                batches.append(more)
            out = jnp.concatenate(batches, axis=1)[:, :per_chain] if len(batches) > 1 or out.shape[1] > per_chain else out
        self._samples = out
        return out

    @property
    def samples(self):
        """The last samples drawn (drawn now, one sampler call, if there are none
        or the parameters changed since)."""
        if self._samples is None:
            self.sample()
        return self._samples

    # -- amplitudes ----------------------------------------------------------

    def _check_basis(self, basis: str) -> None:
        if basis not in BASES:
            raise ValueError(f"basis must be one of {', '.join(BASES)}, got {basis!r}")

    def log_value(self, x, basis: str = "physical"):
        """`log psi(x)` of one configuration or a batch (leading axes free).

        **Arguments:**

        - `x`: configurations shaped `(..., *space.shape)`.
        - `basis`: `"physical"` (default): the amplitude of the physical basis
          state, the network's value plus the phase of the system's basis
          rotation (complex, `+ i pi` per spin down on a Marshall-rotated site;
          for a system without a rotation exactly the network's value);
          `"rotated"`: the network's own output.

        **Returns:** an array shaped like the leading axes of `x`.
        """
        self._check_basis(basis)
        x = jnp.asarray(x)
        shape = tuple(self.space.shape) if self.space is not None else tuple(x.shape[-1:])
        lead = x.shape[: x.ndim - len(shape)]
        xs = x.reshape((-1,) + shape)
        sites = rotated_sites(self.system) if basis == "physical" else ()
        values = tuple(float(v) for v in local_values_of(self.space)) if sites else ()
        return _log_values(self.model, xs, sites, values, self.chunk_size).reshape(lead)

    def _enumerable(self, what: str, max_states: int) -> int:
        if self.space is None or not isinstance(self.space, AbstractDiscreteSpace):
            raise ValueError(f"VariationalState.{what} needs a discrete space that lists its states; got {type(self.space).__name__}")
        try:
            return check_enumerable(self.space, max_states, f"VariationalState.{what}")
        except ValueError as exc:
            raise ValueError(f"{exc} (the max_states argument)") from None

    def to_array(self, normalize: bool = True, basis: str = "physical", max_states: int = DEFAULT_MAX_STATES) -> np.ndarray:
        """The wave function as a vector over every configuration, in the
        order of `space.all_states()` (small spaces only).

        **Arguments:**

        - `normalize`: divide by the norm (default); else the amplitudes are
          `exp(log psi)` up to one common factor (the largest is 1).
        - `basis`: `"physical"` (default): in the physical basis (the system's
          basis rotation undone, see `log_value`), so that it is the eigenvector
          of the unrotated Hamiltonian's matrix; `"rotated"`: the network's
          amplitudes, in the system's basis.
        - `max_states`: refuse spaces with more configurations (default 2^20).

        **Returns:** a complex NumPy vector of `space.n_states` entries.

        **Raises:** `ValueError` naming the number of states and the limit, or
        `MemoryLimitError` when the vector and the listing would not fit
        (`nqs_core.check_memory`).
        """
        self._check_basis(basis)
        n = self._enumerable("to_array", max_states)
        size = int(np.prod(self.space.shape))
        check_memory(n * (3 * 8 * size + 4 * 16), f"VariationalState.to_array over {n} states of {size} sites")
        states = jnp.asarray(self.space.all_states())
        lp = np.asarray(self.log_value(states, basis=basis)).astype(np.complex128)
        top = np.max(lp.real)
        psi = np.exp(lp - top)
        if normalize:
            psi = psi / np.linalg.norm(psi)
        return psi

    # -- expectation values --------------------------------------------------

    def observable(self, op) -> AbstractObservable:
        """`op` as an observable measured in the system's basis (what `expect`
        measures).

        - a name: an observable of `state.observables` (a run's `[observables]`);
        - an `AbstractObservable` (`Correlation(system, lattice)`, ...): as it
          is; the built-in ones apply the system's rotation themselves when
          built with the state's system;
        - an `Operator` of `nqs_core.operators` (written in the physical
          basis): rotated into the system's basis and bound to its space;
        - a bound operator or a system (`PauliOperator`, `LocalOperator`,
          `SpinOperator`, `Heisenberg(...)`): in the basis it declares
          (`marshall_sites`, default none); rotated into the state's basis when
          that differs (from its `to_operator()`).
        """
        if isinstance(op, str):
            if op not in self.observables:
                known = ", ".join(sorted(self.observables)) or "none"
                raise KeyError(f"no observable named {op!r} in this state (its observables: {known})")
            return self.observables[op]
        if isinstance(op, AbstractObservable):
            return op
        sites = rotated_sites(self.system)
        if isinstance(op, Operator):
            return OperatorObservable(self._bind(op.rotate_z(sites) if sites else op))
        if isinstance(op, AbstractHamiltonian):
            own = rotated_sites(op)
            if set(own) == set(sites):
                return OperatorObservable(op)
            to_operator = getattr(op, "to_operator", None)
            if to_operator is None:
                raise TypeError(
                    f"{type(op).__name__} is written in a basis rotated on sites {list(own)}, the state's on {list(sites)}; "
                    "it has no to_operator() to rotate it: pass the Operator"
                )
            physical = _unrotate(to_operator(), own) if own else to_operator()
            return OperatorObservable(self._bind(physical.rotate_z(sites) if sites else physical))
        raise TypeError(
            f"cannot measure a {type(op).__name__}: expected an Operator (nqs_core.operators), a bound operator or "
            "system (AbstractHamiltonian), an observable (AbstractObservable) or an observable's name"
        )

    def _bind(self, op: Operator):
        if self.space is None:
            raise ValueError("VariationalState: no space to bind the operator to (give a system or a sampler)")
        return bind_operator(op, self.space)

    def expect(self, op) -> Stats:
        """The expectation value of `op` on `state.samples` (drawn if needed).

        **Arguments:**

        - `op`: an `Operator` (physical basis), a bound operator or system, an
          observable or an observable's name (see `observable`); or a mapping
          name -> such `op`, measured together (one compiled pass, `log psi`
          evaluated once), giving `{name: Stats}`.

        **Returns:** `Stats` (`mean`, `error_of_mean`, `variance`, `tau_corr`,
        `R_hat`), as for the energy: autocorrelation-corrected error bars over
        the chains; for an exact sampler the exact value (error 0, tau 0,
        R-hat 1). Array-valued observables give arrays.
        """
        return self._expect(op, self.samples)

    def expect_exact(self, op, max_states: int = DEFAULT_MAX_STATES) -> Stats:
        """The exact expectation value of `op`: a sum over every configuration
        weighted by `|psi|^2 / Z` (small spaces; no sampler needed).

        **Arguments:** `op` as for `expect` (also a mapping); `max_states`: refuse larger spaces.

        **Returns:** `Stats` with the exact mean and variance, error 0, tau 0, R-hat 1.

        **Raises:** `ValueError` naming the number of states and the limit;
        `MemoryLimitError` when the sum would not fit the memory limit.
        """
        self._enumerable("expect_exact", max_states)
        if self._full_sum is None:
            self._full_sum = FullSumState(self.space, max_states=max_states, system=self.system)
        return self._expect(op, self._full_sum)

    def _expect(self, op, samples):
        """`expect_many` of one `op` (-> Stats) or of a mapping name -> op (-> {name: Stats})."""
        if isinstance(op, Mapping):
            return expect_many(self.model, {k: self.observable(v) for k, v in op.items()}, samples, self.chunk_size)
        return expect_many(self.model, {"value": self.observable(op)}, samples, self.chunk_size)["value"]

    def expect_and_grad(self, op=None) -> tuple[Stats, Any]:
        """The expectation value of a Hermitian operator (default: the system,
        the energy) on `state.samples` and its gradient with respect to the
        parameters, from `state.estimator` (what a VMC step computes).

        **Arguments:** `op`: one operator, as for `expect` (an `Operator`, a
        bound operator or a system); `None`: `state.system`.

        **Returns:** `(Stats, gradient)`, the gradient a pytree shaped like
        `state.parameters`: `2 Re <(O_loc - <O>)^* d log psi>` (for real
        parameters `d<O>/d theta`; complex ones as the estimator defines it).
        """
        target = self.system if op is None else op
        if target is None:
            raise ValueError("VariationalState.expect_and_grad: this state has no system; pass the operator")
        obs = self.observable(target)
        if not isinstance(obs, OperatorObservable) or len(obs.operators) != 1:
            raise TypeError("VariationalState.expect_and_grad needs one operator (an Operator, a bound operator or a system)")
        return _estimate_and_gradient(self.estimator, self.model, obs.operators[0], self.samples)

    # -- saving --------------------------------------------------------------

    def save(self, path, overwrite: bool = False) -> pathlib.Path:
        """Save the parameters into the directory `path` (created if missing):
        a checksummed checkpoint (`checkpoint.eqx`, `checkpoint.json`, as runs
        write them) and, for a state with a config (from `load_state`), the
        resolved `config.toml`, so that `load_state(path)` and `nqs measure
        path` read it back. A state made in Python without a config is read
        back with `load_state(path, like=state)`.

        The directory must be new or empty, or hold a state saved before (then
        `overwrite=True` replaces it); it is never a run directory or a folder
        with other files (nothing that nqs did not write is overwritten). It is
        locked (`nqs.lock`) while it is written.

        **Returns:** the directory. **Raises:** `ConfigError` naming the problem.
        """
        path = pathlib.Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"VariationalState.save: {path} is a file, not a directory; choose another path")
        if not is_root():
            return path
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"VariationalState.save: cannot make {path}: {exc.strerror or exc}") from None
        try:
            check_run_files(path)
            with RunLock(path, "VariationalState.save"):
                _check_save_target(path, overwrite)
                meta: dict[str, Any] = {"step": int(self.step or 0), "kind": STATE_KIND}
                if self._config is not None:
                    meta.update(fingerprint(self._config))
                    write_text(path / CONFIG_FILE, resolved_toml(types.SimpleNamespace(config=self._config)))
                else:
                    (path / CONFIG_FILE).unlink(missing_ok=True)  # a config of a state saved before (checked: ours)
                save_checkpoint(path, jax.tree.map(np.asarray, self._params), meta)
        except BaseException:
            if created:
                for name in (CONFIG_FILE, CHECKPOINT_FILE, CHECKPOINT_META):
                    (path / name).unlink(missing_ok=True)
                try:
                    path.rmdir()
                except OSError:
                    pass
            raise
        return path

    def __repr__(self) -> str:
        sampler = type(self.sampler).__name__ if self.sampler is not None else None
        system = type(self.system).__name__ if self.system is not None else None
        return (
            f"VariationalState({type(self._static).__name__}, {self.n_parameters} real parameters, "
            f"sampler={sampler}, system={system}, rotated_sites={list(rotated_sites(self.system))})"
        )


def _split(ansatz):
    return parameters(ansatz)


@eqx.filter_jit
def _estimate_and_gradient(estimator, model, op, samples):
    estimate = estimator(model, op, samples)
    return estimate.stats, estimator.gradient(model, samples, estimate)


@eqx.filter_jit
def _log_values(model, xs, sites: tuple[int, ...], values: tuple[float, ...], chunk_size):
    """`log psi` of a batch `(n, *shape)`; with rotated `sites`, plus the log of
    `conj(u(x))` (see the module notes): `-2 pi i / d` times the local-state
    index summed over `sites` (exactly `i pi` per spin down for `d = 2`)."""
    lp = batch_apply(model, xs, chunk_size)
    if not sites:
        return lp
    d = len(values)
    k = _rotation_count(xs, sites, values).astype(jnp.float64)
    ctype = jnp.complex128 if lp.dtype in (jnp.float64, jnp.complex128) else jnp.complex64
    factor = math.pi if d == 2 else -2 * math.pi / d
    return lp.astype(ctype) + jax.lax.complex(jnp.zeros_like(k), factor * k).astype(ctype)


def _rotation_count(xs, sites: tuple[int, ...], values: tuple[float, ...]):
    """`sum_{i in sites} j_i mod d` of a batch of configurations (NumPy or JAX):
    `U = prod_{i in sites} Z_i` is diagonal with `u(x) = w^k`, `w = exp(2 pi i / d)`."""
    xp = jnp if isinstance(xs, jax.Array) else np
    j = values_to_indices(xs.reshape(xs.shape[0], -1)[:, np.asarray(sites)], xp.asarray(values, dtype=xs.dtype))
    return xp.sum(j, axis=-1) % len(values)


def rotation_diagonal(system, states) -> np.ndarray:
    """The diagonal `u(x)` of the system's basis rotation `U = prod_{i in sites} Z_i`
    (`rotated_sites(system)`, see the module notes) on configurations `states`
    `(n, *shape)`: a vector in the physical basis becomes `u * psi` in the
    system's basis (and back with `conj(u)`). All ones without a rotation.

    **Returns:** a complex128 NumPy array `(n,)`.
    """
    states = np.asarray(states)
    sites = rotated_sites(system)
    if not sites:
        return np.ones(states.shape[0], dtype=np.complex128)
    values = tuple(float(v) for v in local_values_of(system.space))
    k = _rotation_count(states, sites, values).astype(np.float64)
    if len(values) == 2:  # exactly +-1
        return (1.0 - 2.0 * k).astype(np.complex128)
    return np.exp(2j * np.pi * k / len(values))


def _check_save_target(path: pathlib.Path, overwrite: bool) -> None:
    """`save` writes only into an empty directory or over a state it saved before (`overwrite`)."""
    others = sorted(
        p.name for p in path.iterdir() if p.name != LOCK_FILE and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )
    if not others:
        return
    if LOG_FILE in others or RESULT_FILE in others:
        raise ConfigError(f"VariationalState.save: {path} holds a run; save the state into another directory")
    foreign = [n for n in others if n not in (CONFIG_FILE, CHECKPOINT_FILE, CHECKPOINT_META)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(
            f"VariationalState.save: {path} is not empty (it holds {shown}); save writes only into a new or empty "
            "directory, or over a state saved before: choose another path"
        )
    try:
        kind = json.loads((path / CHECKPOINT_META).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != STATE_KIND:
        raise ConfigError(f"VariationalState.save: {path} holds files that VariationalState.save did not write; choose another path")
    if not overwrite:
        raise ConfigError(f"VariationalState.save: {path} already holds a saved state; pass overwrite=True to replace it")


def load_state(
    run_dir,
    n_samples: int | None = None,
    seed: int = 0,
    like: VariationalState | None = None,
) -> VariationalState:
    """The variational state of a run directory's last checkpoint (or of a
    directory written by `VariationalState.save`), rebuilt from its
    `config.toml` as `nqs measure` rebuilds it.

    **Arguments:**

    - `run_dir`: the directory.
    - `n_samples`: samples per sampler call (replaces the run's `[sampler]
      n_samples`, as `nqs measure --n-samples`).
    - `seed`: seed of the fresh chains (as `nqs measure --seed`): with the same
      `n_samples` and `seed`, `load_state(run_dir).expect(op)` draws the
      samples that `nqs measure` draws.
    - `like`: for a directory without `config.toml` (a state saved from
      Python): a state whose ansatz, sampler and system are used, with the
      parameters read from the directory.

    **Returns:** a `VariationalState` with the run's ansatz, parameters,
    sampler, system, estimator chunk size and `[observables]`
    (`state.observables`, measured by name with `expect("name")`); `state.step`
    is the checkpoint's step.

    **Raises:** `ConfigError` naming the problem (not a run directory, no
    checkpoint, an edited config, a checkpoint that does not fit).
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"not a run directory: {run_dir}")
    check_run_files(run_dir)  # symbolic links are refused, not followed
    step = _checkpoint_step(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        if like is None:
            raise ConfigError(
                f"{run_dir} has no {CONFIG_FILE}: a state saved from Python is read back with "
                "load_state(path, like=state) (a state with the same ansatz)"
            )
        if n_samples is not None:
            raise ConfigError("load_state: n_samples needs a config.toml; change the sampler of `like` instead")
        state = VariationalState(
            eqx.combine(like.parameters, like._static), like.sampler, None, like.system, seed, like.chunk_size,
            like.observables, like.estimator,
        )
        state.parameters = read_run_parameters(run_dir, like.parameters, then="load it")
        state.step = step
        return state
    config = copy.deepcopy(load_config(run_dir / CONFIG_FILE))
    sampler_name = config["sampler"].get("name") if isinstance(config.get("sampler"), dict) else None
    if n_samples is not None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"load_state: n_samples must be a positive integer, got {n_samples!r}")
        if sampler_name in (None, "full_sum"):
            raise ConfigError(f"the run in {run_dir} draws no samples (its sampler is {sampler_name or 'missing'}); omit n_samples")
        config["sampler"] = {**config["sampler"], "n_samples": n_samples}
    calc = build(config, exact=False)
    check_physics(run_dir, calc.config, ignore=("sampler.n_samples",) if n_samples is not None else ())
    driver = calc.driver
    if not isinstance(driver, AbstractSamplingDriver) or getattr(driver, "ansatz", None) is None:
        raise ConfigError(f"the {calc.config['driver']['name']} driver does not sample a wave function; it has no variational state")
    params = read_run_parameters(run_dir, parameters(driver.ansatz)[0], then="load it")
    state = VariationalState(
        driver.ansatz, driver.sampler, params, driver.system, seed=seed,
        chunk_size=measure_chunk_size(driver.estimator), observables=calc.observables, estimator=driver.estimator,
    )
    state.step = step
    state._config = calc.config
    return state


def _checkpoint_step(run_dir: pathlib.Path) -> int | None:
    try:
        step = json.loads((run_dir / CHECKPOINT_META).read_text()).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None
