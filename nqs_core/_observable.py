"""Observables: the protocol, `expect` (samples or full sum -> Stats) and the
measurements a run makes (at the end into result.json, every k steps into the log)."""

from __future__ import annotations

import abc
from typing import Any, Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Scalar

from ._callbacks import AbstractCallback
from ._distributed import concat_over_ranks
from ._estimator import measure_chunk_size
from ._ansatz import AbstractConnectedAnsatz
from ._fullsum import table_local_values
from ._local_values import PauliUnion, pauli_operator, union_local_values
from ._sampler import BornDistribution
from ._samples import AbstractEnumeration, Samples, is_exact, weighted_statistics
from ._stats import Stats, statistics
from ._system import AbstractHamiltonian
from ._tree import batch_apply


class AbstractObservable(eqx.Module):
    """A quantity measured on a wave function: the `|psi|^2` average of local
    values `O_loc(x)`, with the error bars of `nqs_core.statistics`.

    Scalar observables have `shape == ()`; array-valued ones (a correlation
    function `C(r)`, a structure factor `S(q)`) have `shape == (n,)` and
    describe their entries with `coordinates()`. Two kinds implement this
    protocol: `AbstractOperatorObservable` (operators, local values from their
    connected elements) and `AbstractSampleObservable` (functions of the
    configuration alone).
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of one measurement: `()` or `(n,)`."""

    @abc.abstractmethod
    def local_values(
        self, log_psi: Callable[[Array], Scalar], xs: Array, log_psi_xs: Array | None = None, chunk_size: int | None = None
    ) -> Array:
        """`O_loc` of a batch of configurations `xs` (shape `(n, *space.shape)`),
        shape `(n, *self.shape)`; `log_psi_xs` is `log_psi(xs)` when the caller
        has it, `chunk_size` a memory bound."""

    def coordinates(self) -> dict[str, np.ndarray]:
        """What each entry of an array-valued observable is, e.g.
        `{"r": (n, ndim), "distance": (n,)}` (leading axis `n`). Default: `{}`."""
        return {}


class AbstractOperatorObservable(AbstractObservable):
    """Observables made of quantum operators: the local value of each operator,
    `O_loc(x) = sum_x' <x|O|x'> psi(x') / psi(x)` (from its connected elements,
    compacted as for the energy), followed by an optional real linear map.

    `operators` are Hamiltonian-like objects (`AbstractHamiltonian`, usually
    discrete operators from the spins operator language); `transform`, of
    shape `(n_out, n_operators)`, turns their local values into the entries
    (averages over pairs, Fourier sums); `None` keeps them as they are. A single
    operator without transform is a scalar observable.
    """

    operators: eqx.AbstractVar[tuple[AbstractHamiltonian, ...]]
    transform: eqx.AbstractVar[Array | None]

    @property
    def shape(self):
        if self.transform is not None:
            return (int(self.transform.shape[0]),)
        return () if len(self.operators) == 1 else (len(self.operators),)

    def local_values(self, log_psi, xs, log_psi_xs=None, chunk_size=None):
        if log_psi_xs is None:
            log_psi_xs = batch_apply(log_psi, xs, chunk_size)
        values = jnp.stack(
            [op.local_energies(log_psi, xs, log_psi_xs=log_psi_xs, chunk_size=chunk_size) for op in self.operators], axis=-1
        )
        if self.transform is not None:
            return values @ self.transform.T.astype(values.dtype)
        return values[:, 0] if len(self.operators) == 1 else values


class AbstractSampleObservable(AbstractObservable):
    """Observables that are functions of the configuration alone (diagonal in
    the computational basis): `O_loc(x) = f(x)`; the wave function is not
    evaluated."""

    @abc.abstractmethod
    def function(self, x: Array) -> Array:
        """`f(x)` of one configuration, shape `self.shape`."""

    def local_values(self, log_psi, xs, log_psi_xs=None, chunk_size=None):
        return batch_apply(self.function, xs, chunk_size)


class OperatorObservable(AbstractOperatorObservable):
    """Expectation value of one operator (a scalar) or of several (a vector).

    **Arguments:**

    - `operator`: an `AbstractHamiltonian` (any discrete operator, e.g. from
      `nqs_spins.operators`, bound to a space) or a sequence of them.
    """

    operators: tuple[AbstractHamiltonian, ...]
    transform: Array | None

    def __init__(self, operator: AbstractHamiltonian | Sequence[AbstractHamiltonian]):
        ops = (operator,) if isinstance(operator, AbstractHamiltonian) else tuple(operator)
        if not ops or not all(isinstance(o, AbstractHamiltonian) for o in ops):
            raise TypeError(f"OperatorObservable needs operators (AbstractHamiltonian), got {operator!r}")
        self.operators = ops
        self.transform = None


def as_observable(obj) -> AbstractObservable:
    """`obj` itself if it is an observable; an operator becomes an `OperatorObservable`."""
    if isinstance(obj, AbstractObservable):
        return obj
    if isinstance(obj, AbstractHamiltonian):
        return OperatorObservable(obj)
    raise TypeError(f"expected an observable or an operator, got {type(obj).__name__}")


def sample_statistics(values: Array) -> Stats:
    """`nqs_core.statistics` of Monte Carlo values shaped
    `(n_chains, n_per_chain, *value_shape)`, over every rank's chains, entry by
    entry: the fields of the result have shape `value_shape`."""
    values = concat_over_ranks(values)
    vshape = values.shape[2:]
    flat = values.reshape(values.shape[:2] + (-1,))
    stats = jax.vmap(statistics, in_axes=2)(flat)
    return jax.tree.map(lambda a: a.reshape(vshape), stats)


def _union_key(obs, ansatz):
    """The key `(n_sites, fixed_sz)` under which `obs`'s operators join one
    `PauliUnion` pass, or `None` when it computes its own local values (not an
    operator observable with the protocol's `local_values`, an operator that is
    not spin-1/2 Pauli strings, an ansatz with its own connected evaluation)."""
    if not _uses_tables(obs) or isinstance(ansatz, AbstractConnectedAnsatz):
        return None
    paulis = [pauli_operator(op) for op in obs.operators]
    if any(p is None for p in paulis):
        return None
    keys = {(int(p.space.size), bool(p.fixed_sz)) for p in paulis}
    return keys.pop() if len(keys) == 1 else None


def local_values_many(ansatz, observables, xs, log_psi_xs=None, chunk_size=None) -> list[Array]:
    """The local values of several observables on the configurations `xs`
    (`(n, *space.shape)`), one array `(n, *obs.shape)` per observable.

    Operator observables of spin-1/2 operators (every built-in spin
    observable) are computed together: equal operators once, and the
    connected configurations of all operators in one compacted pass
    (`nqs_core._local_values.union_local_values`: `log psi` once per distinct
    flip of a sample, chunked over samples). The others use their own
    `local_values`."""
    if log_psi_xs is None and not all(isinstance(o, AbstractSampleObservable) for o in observables):
        log_psi_xs = batch_apply(ansatz, xs, chunk_size)
    keys = [_union_key(o, ansatz) for o in observables]
    columns: dict = {}  # (key, Operator) -> (group, column)
    groups: dict = {}  # key -> [PauliOperator, ...]
    for obs, key in zip(observables, keys):
        if key is None:
            continue
        for op in obs.operators:
            pauli = pauli_operator(op)
            if (key, pauli.operator) not in columns:
                ops = groups.setdefault(key, [])
                columns[(key, pauli.operator)] = len(ops)
                ops.append(pauli)
    values = {key: union_local_values(PauliUnion(ops), ansatz, xs, log_psi_xs, chunk_size) for key, ops in groups.items()}
    out = []
    for obs, key in zip(observables, keys):
        if key is None:
            out.append(obs.local_values(ansatz, xs, log_psi_xs=log_psi_xs, chunk_size=chunk_size))
            continue
        cols = np.array([columns[(key, pauli_operator(op).operator)] for op in obs.operators])
        v = values[key][:, cols]
        if obs.transform is not None:
            v = v @ obs.transform.T.astype(v.dtype)
        elif len(obs.operators) == 1:
            v = v[:, 0]
        out.append(v)
    return out


@eqx.filter_jit
def _expect_samples(ansatz, observables, samples, chunk_size):
    """One compiled pass over Monte Carlo samples for every observable
    (`local_values_many`), then `sample_statistics` of each."""
    lead = samples.shape[:2]
    xs = samples.reshape((-1,) + samples.shape[2:])
    values = local_values_many(ansatz, observables, xs, chunk_size=chunk_size)
    return [sample_statistics(v.reshape(lead + v.shape[1:])) for v in values]


def _uses_tables(obs) -> bool:
    """Whether an exact sum may compute `obs`'s local values from look-up tables
    (an operator observable that keeps the protocol's `local_values`)."""
    return isinstance(obs, AbstractOperatorObservable) and type(obs).local_values is AbstractOperatorObservable.local_values


def _lookup_tables(observables, samples: Samples):
    """Per observable: a tuple of look-up tables of its operators (`None` for
    an operator the network must evaluate), or `None` (its own `local_values`),
    from `samples.lookup` (exact enumerations only; else all `None`). Eager;
    the enumeration builds each operator's table once and keeps it."""
    if samples.lookup is None or not samples.exact:
        return [None] * len(observables)
    ops = [op for obs in observables if _uses_tables(obs) for op in obs.operators]
    tables = iter(samples.lookup.lookup_tables(ops))
    return [tuple(next(tables) for _ in obs.operators) if _uses_tables(obs) else None for obs in observables]


@eqx.filter_jit
def _expect_weighted(ansatz, observables, samples, tables, chunk_size):
    """One compiled pass over weighted samples for every observable: `log psi`
    of the rows once, then the local values of each operator from its look-up
    table (a gather, no network evaluation) or, without one, together with
    the other observables without tables (`local_values_many`);
    `weighted_statistics` with the samples' weights."""
    xs = samples.x.reshape((-1,) + samples.x.shape[2:])
    w = samples.weights.reshape(-1)
    lx = None if all(isinstance(o, AbstractSampleObservable) for o in observables) else batch_apply(ansatz, xs, chunk_size)
    out = []
    own = [k for k, tabs in enumerate(tables) if tabs is None]
    computed = dict(zip(own, local_values_many(ansatz, [observables[k] for k in own], xs, lx, chunk_size)))
    for k, (obs, tabs) in enumerate(zip(observables, tables)):
        if tabs is None:
            values = computed[k]
        else:
            cols = [
                table_local_values(t[0], t[1], lx) if t is not None
                else op.local_energies(ansatz, xs, log_psi_xs=lx, chunk_size=chunk_size)
                for op, t in zip(obs.operators, tabs)
            ]
            dtype = jnp.result_type(*cols)
            values = jnp.stack([c.astype(dtype) for c in cols], axis=-1)
            if obs.transform is not None:
                values = values @ obs.transform.T.astype(values.dtype)
            elif len(obs.operators) == 1:
                values = values[:, 0]
        out.append(weighted_statistics(w, values, exact=samples.exact))
    return out


def expect_many(ansatz, observables: Mapping[str, Any], samples, chunk_size: int | None = None) -> dict[str, Stats]:
    """`expect` of several observables on the same samples (or exact sum), with
    `log psi` evaluated once. **Returns:** `{name: Stats}`."""
    names = list(observables)
    obs = [as_observable(observables[n]) for n in names]
    if isinstance(samples, AbstractEnumeration):
        samples = samples.samples(ansatz, chunk_size)
    if isinstance(samples, Samples) and samples.weights is None:
        samples = samples.x
    if isinstance(samples, Samples):
        stats = _expect_weighted(ansatz, obs, samples, _lookup_tables(obs, samples), chunk_size)
    else:
        samples = jnp.asarray(samples)
        if samples.ndim < 3:
            raise ValueError(
                f"samples must be shaped (n_chains, n_per_chain, *configuration_shape), got {samples.shape}"
            )
        stats = _expect_samples(ansatz, obs, samples, chunk_size)
    return dict(zip(names, stats))


def expect(ansatz, observable, samples, chunk_size: int | None = None) -> Stats:
    """The expectation value of an observable or operator in the state `ansatz`.

    **Arguments:**

    - `ansatz`: the wave function (`log psi` of one configuration).
    - `observable`: an `AbstractObservable` or an operator (`AbstractHamiltonian`:
      a spin operator from `nqs_spins.operators` bound to a space, a system).
    - `samples`: a sampler's output: Monte Carlo samples from `|psi|^2`,
      shaped `(n_chains, n_per_chain, *space.shape)` (under MPI this rank's
      chains), or `nqs_core.Samples` with weights (an exact sum, importance
      sampling); or an enumeration (`nqs_core.FullSumState`) for the exact
      sum over every configuration.
    - `chunk_size`: evaluate at most this many configurations at once.

    **Returns:** `Stats`. From samples: mean, error (autocorrelation-corrected),
    variance, tau and R-hat of the local values over every rank's chains, as
    for the energy. From a full sum: the exact mean and variance, error 0,
    tau 0, R-hat 1. For array-valued observables every field is an array of
    the observable's shape (one statistic per entry).
    """
    return expect_many(ansatz, {"value": observable}, samples, chunk_size)["value"]


# -- measurements of a run -------------------------------------------------


def _plain(a: Array):
    """A float or nested list of floats; non-finite values become `None` (strict JSON)."""
    a = np.asarray(a, dtype=float)
    out = np.where(np.isfinite(a), a, np.nan).astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist() if a.ndim else out.item()


def stats_dict(stats: Stats, observable: AbstractObservable | None = None) -> dict[str, Any]:
    """A JSON-ready dict of `Stats` (scalar or array fields): `mean` (real
    part), `error`, `variance`, `tau_corr`, `R_hat`, `mean_imag` when the mean
    has an imaginary part, and the observable's `coordinates()` as lists."""
    mean = np.asarray(stats.mean)
    out = {
        "mean": _plain(np.real(mean)),
        "error": _plain(stats.error_of_mean),
        "variance": _plain(stats.variance),
        "tau_corr": _plain(stats.tau_corr),
        "R_hat": _plain(stats.R_hat),
    }
    if np.iscomplexobj(mean) and np.any(np.imag(mean) != 0):
        out["mean_imag"] = _plain(np.imag(mean))
    if observable is not None:
        for k, v in observable.coordinates().items():
            out[k] = np.asarray(v).tolist()
    return out


@eqx.filter_jit
def _draw(sampler, model, sampler_state):
    return sampler.sample(BornDistribution(model), sampler_state)


@eqx.filter_jit
def _energy(estimator, system, model, samples, weighted: bool):
    """The energy statistics of `measure`, compiled once (run eagerly, its few
    hundred small operations each compiled on first use took seconds)."""
    estimate = estimator(model, system, samples)
    if weighted:  # the estimator's weighted statistics
        return estimate.stats
    return sample_statistics(estimate.local_values)  # as VMC.evaluate: every local energy of every rank


def draws_exact(driver, state) -> bool:
    """Whether `driver`'s sampler returns an exact weighted sum for `state`
    (`nqs_core.Samples` with `exact=True`), found from the output's type
    without drawing (`equinox.filter_eval_shape`)."""
    out = eqx.filter_eval_shape(_draw, driver.sampler, driver.model(state), state.sampler_state)
    return is_exact(out[0])


def measure(driver, state, observables: Mapping[str, AbstractObservable], n_batches: int = 10):
    """The energy and the observables of a sampling driver's state
    (`AbstractSamplingDriver`: its `system`, `sampler`, `estimator` and
    `model(state)`), on the same samples: `n_batches` sampler calls, chains
    continued between calls (as `VMC.evaluate`), or one call when the sampler
    returns an exact weighted sum (the `full_sum` sampler). The observables
    are evaluated with the estimator's `chunk_size`.

    **Returns:** `(energy Stats, {name: Stats}, state with the advanced sampler)`.
    """
    model = driver.model(state)
    chunk_size = measure_chunk_size(driver.estimator)
    sampler_state = state.sampler_state
    samples, sampler_state, _ = _draw(driver.sampler, model, sampler_state)
    if isinstance(samples, Samples) and samples.weights is not None:
        if samples.exact:
            # the energy as one more operator of the same weighted pass (as the
            # full_sum estimator: <H> of a Hermitian H is real)
            key = object()
            values = expect_many(model, {key: driver.system, **observables}, samples, chunk_size)
            energy = values.pop(key)
            energy = eqx.tree_at(lambda s: s.mean, energy, jnp.real(energy.mean))
        else:
            energy = _energy(driver.estimator, driver.system, model, samples, True)
            values = expect_many(model, observables, samples, chunk_size) if observables else {}
        return energy, values, eqx.tree_at(lambda s: s.sampler_state, state, sampler_state)
    batches = [samples]
    for _ in range(max(1, int(n_batches)) - 1):
        samples, sampler_state, _ = _draw(driver.sampler, model, sampler_state)
        batches.append(samples)
    samples = jnp.concatenate(batches, axis=1)
    energy = _energy(driver.estimator, driver.system, model, samples, False)
    values = expect_many(model, observables, samples, chunk_size) if observables else {}
    return energy, values, eqx.tree_at(lambda s: s.sampler_state, state, sampler_state)


class ObservableLog(AbstractCallback):
    """Driver callback: every `every` steps, measure `observables` on the
    parameters after the step's update (one sampler call from the current
    chains, which are not advanced; weighted samples with their weights) and add them to the
    step's log record under `"observables"`. Place it before `JsonlLog`; it is
    collective under MPI (run it on every rank)."""

    def __init__(self, observables: Mapping[str, AbstractObservable], every: int):
        self.observables = dict(observables)
        self.every = int(every)

    def __call__(self, driver, state, record):
        if not self.observables or self.every < 1 or int(state.step) % self.every != 0:
            return None
        model = driver.model(state)
        samples, _, _ = _draw(driver.sampler, model, state.sampler_state)
        values = expect_many(model, self.observables, samples, measure_chunk_size(driver.estimator))
        record["observables"] = {k: stats_dict(v) for k, v in values.items()}
        record["observables_step"] = int(state.step)
        return None
