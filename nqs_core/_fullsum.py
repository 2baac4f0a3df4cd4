"""Exact sums over every configuration of a small discrete space (the full-sum state).

Instead of drawing samples from `|psi|^2`, a full sum evaluates the ansatz on
every configuration `x` of the space and weighs each with
`p(x) = |psi(x)|^2 / sum_y |psi(y)|^2`. Energies, gradients, the quantum
geometric tensor and observables are then exact (no Monte Carlo noise): the
energy is `<psi|H|psi> / <psi|psi>` to rounding.

Three pieces, one convention:

- `FullSumState(space)`: the enumerated configurations (this MPI rank's share),
  for `nqs_core.expect`.
- `FullSumSampler` (config `[sampler] name = "full_sum"`): returns every
  configuration once, as one "chain".
- `FullSumEstimator` (config `[estimator] name = "full_sum"`, the default with
  that sampler): exact energy, gradient and natural-gradient data weighted by
  `p(x)`.

Under MPI the configurations are split into equal blocks over the ranks (the
last block padded with copies of the last configuration, which get weight 0),
and every sum is reduced over ranks.

Two guards refuse a full sum that cannot fit, with one line naming the
numbers: `max_states` (configurations) and the memory limit of
`nqs_core.check_memory` (bytes, estimated by `full_sum_memory` before anything
is enumerated or evaluated).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ._ansatz import AbstractAnsatz
from ._distributed import gather_over_ranks, n_ranks, rank, sum_over_ranks
from ._estimator import AbstractEstimator, Estimate, _flat, _sum_over_chunks, log_derivatives, mean_log_derivative
from ._sampler import AbstractDistribution, AbstractSampler, DirectState, legacy_key
from ._samples import AbstractEnumeration, Samples, exact_statistics, is_weighted
from ._space import AbstractDiscreteSpace, AbstractSpace
from ._system import AbstractDiscreteHamiltonian, AbstractSystem
from ._tree import batch_apply, n_real_parameters, parameters, real_ravel
from ._validate import _MEMORY_LIMIT, check_int, check_memory

#: Default largest number of configurations a full sum enumerates.
DEFAULT_MAX_STATES = 1 << 20


def _block(n_states: int) -> tuple[int, int]:
    """`(start, size)` of this rank's block of the enumeration (equal sizes on
    every rank; rows past `n_states` are padding)."""
    size = -(-n_states // n_ranks())
    return rank() * size, size


def _real_rows(n_local: int, n_states: int) -> np.ndarray:
    """`True` for the rows of this rank's block that are configurations of the
    space, `False` for the padding of the last block."""
    start, _ = _block(n_states)
    return (start + np.arange(n_local)) < n_states


def check_enumerable(space: AbstractSpace, max_states: int, what: str) -> int:
    """The number of configurations of `space`, or a one-line error when it is
    not a discrete space or has more than `max_states` configurations."""
    check_int("max_states", max_states, minimum=1)
    if not isinstance(space, AbstractDiscreteSpace):
        raise TypeError(f"{what} needs a discrete space that can list its states; got {type(space).__name__}")
    n = int(space.n_states)
    if n > max_states:
        raise ValueError(
            f"{what}: the space has {n} states, more than max_states = {max_states}; "
            "use a Monte Carlo sampler (or raise max_states if the memory allows)"
        )
    return n


def full_sum_memory(
    space: AbstractDiscreteSpace,
    system: AbstractSystem | None = None,
    ansatz: AbstractAnsatz | None = None,
    listing: bool = True,
    log_derivatives: bool = False,
) -> float:
    """Estimated peak bytes of a full sum over every configuration of `space`
    on this MPI rank (its block of `ceil(n_states / n_ranks)` rows).

    It counts what the full sum materialises; the network's own activations
    (one block of connected configurations at a time) are not counted:

    - this rank's rows, their `log psi`, weights and local energies (the rows
      in `space.dtype`, six numbers of 16 bytes a row);
    - `listing`: the enumeration `space.all_states()` of every configuration
      on the host (three arrays of `n_states x size` numbers of 8 bytes while
      it is listed);
    - for a discrete Hamiltonian `system`, the compacted local energies: all
      `max_conn_size` connected configurations of every row, twice (as
      returned and gathered into blocks), one byte a site for their
      comparison with the row, and per connected entry five numbers of 16
      bytes (element, log psi, block buffer, ratio, term) and 12 bytes of
      indices and masks;
    - `log_derivatives`: three `rows x P` matrices (the log-derivatives as
      computed, as one matrix, and centred), the natural-gradient data of SR,
      SRt and MinSR (`P` real parameters of `ansatz`; 16 bytes a number for a
      complex `log psi`, else 8).

    Against XLA's compiled memory (arguments, outputs, temporaries; CPU) of
    the full-sum estimator: the 4096 states of a 12-site TFIM chain with a
    complex RBM of alpha = 1 and 8 take 9.3 and 14.6 MB for the local
    energies (estimate 16.5 MB), and 64 and 428 MB with the natural-gradient
    data (estimate, counting both, 83 and 512 MB); J1-J2 4x4 at S^z = 0
    (12870 states, alpha = 2) 268 and 731 MB (estimates 307 and 999 MB).

    **Arguments:**

    - `space`: the enumerated space.
    - `system`: the Hamiltonian whose local energies are summed (`None`: not
      counted).
    - `ansatz`: needed with `log_derivatives`.
    - `listing`: count the enumeration (`False` once the states exist).
    - `log_derivatives`: count the log-derivative matrices.

    **Returns:** the estimate in bytes.
    """
    n_bytes, _ = _full_sum_bytes(**_counts(space, system, ansatz, log_derivatives), listing=listing)
    return n_bytes


def _counts(space, system=None, ansatz=None, log_derivatives=False) -> dict:
    """The numbers `_full_sum_bytes` needs, from the objects."""
    n_states = int(space.n_states)
    k = int(system.max_conn_size) if isinstance(system, AbstractDiscreteHamiltonian) else 0
    return dict(
        n_states=n_states,
        rows=_block(n_states)[1],
        size=int(space.size),
        item=np.dtype(space.dtype).itemsize,
        max_conn=k,
        n_params=n_real_parameters(ansatz) if log_derivatives else 0,
        value_bytes=_value_bytes(ansatz) if log_derivatives else 0,
    )


def _full_sum_bytes(n_states, rows, size, item, max_conn=0, n_params=0, value_bytes=0, listing=False):
    """`(bytes, what)` of `full_sum_memory` from the numbers: `rows` of `size`
    entries of `item` bytes on this rank, `max_conn` connected entries a row
    (0: local energies not counted), `n_params` real parameters (0: no
    log-derivative matrix) of `value_bytes` each; `what` names what is counted."""
    n_bytes = float(rows) * (size * item + 6 * 16)
    what = f"the full sum over {n_states} states"
    if n_ranks() > 1:
        what += f" ({rows} on each of {n_ranks()} ranks)"
    if listing:
        n_bytes += float(n_states) * 3 * size * 8
    if max_conn:
        n_bytes += float(rows) * max_conn * (size * (2 * item + 1) + 5 * 16 + 12)
        what += f" with {max_conn} connected entries each"
    if n_params:
        n_bytes += 3.0 * rows * n_params * value_bytes
        what += f" and its {rows} x {n_params} log-derivative matrix"
    return n_bytes, what


def _value_bytes(ansatz: AbstractAnsatz, x: Array | None = None) -> int:
    """Bytes of one log-derivative: 16 when `log psi` is complex, else 8
    (`x`: one configuration, for the output type; else `ansatz.space`, else 16)."""
    if x is None:
        space = getattr(ansatz, "space", None)
        if space is None:
            return 16
        x = jax.ShapeDtypeStruct(tuple(space.shape), space.dtype)
    return 16 if jnp.iscomplexobj(jax.eval_shape(ansatz, x)) else 8


def check_full_sum_memory(
    space: AbstractDiscreteSpace,
    system: AbstractSystem | None = None,
    ansatz: AbstractAnsatz | None = None,
    listing: bool = True,
    log_derivatives: bool = False,
    limit: float | None = None,
) -> float:
    """`nqs_core.check_memory` of `full_sum_memory(...)` (same arguments),
    with a message naming the states, the connected entries and the
    log-derivative matrix counted; `limit` (bytes) as in `check_memory`.

    **Returns:** the estimate in bytes. **Raises:** `MemoryLimitError`, one line.
    """
    n_bytes, what = _full_sum_bytes(**_counts(space, system, ansatz, log_derivatives), listing=listing)
    return check_memory(n_bytes, what, limit=limit)


# -- local values by look-up in the enumeration ---------------------------------------
#
# In a full sum every connected configuration x' of a row is itself a row of the
# enumeration (for an operator that keeps the space), so `log psi(x')` is already
# known: the local value `sum_x' <x|O|x'> exp(log psi(x') - log psi(x))` needs a
# look-up of x' among the rows (integer keys, one sorted search), not an
# evaluation of the network on `n_states x max_conn_size` configurations.


def _key_digits(space: AbstractSpace) -> np.ndarray | None:
    """The local states of `space` (the digits of a configuration's key), or
    `None` when keys do not fit in 62 bits (or the space is not discrete)."""
    if not isinstance(space, AbstractDiscreteSpace):
        return None
    try:
        values = np.asarray(space.local_states, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    d, size = len(values), int(space.size)
    if d < 2 or size * np.log2(d) > 62:
        return None
    return values


def state_keys(space: AbstractDiscreteSpace, x: Array) -> Array:
    """Integer keys (int64) of configurations `x` (shape `(..., *space.shape)`):
    the base-`d` number of the local-state indices, site 0 most significant
    (`d = len(space.local_states)`); `-1` where an entry is not a local state.
    Requires `_key_digits(space)` (keys below 2^62)."""
    values = _key_digits(space)
    shape = tuple(space.shape)
    flat = x.reshape(x.shape[: x.ndim - len(shape)] + (-1,))
    d, size = len(values), flat.shape[-1]
    hit = [flat == jnp.asarray(v, flat.dtype) for v in values]
    digit = sum(j * h.astype(jnp.int64) for j, h in enumerate(hit) if j)
    valid = jnp.all(jnp.any(jnp.stack(hit), axis=0), axis=-1)
    weights = jnp.asarray(np.asarray([d**k for k in range(size - 1, -1, -1)], dtype=np.int64))
    return jnp.where(valid, jnp.sum(digit * weights, axis=-1), -1)


def _lookup_possible(op, xs) -> bool:
    """Whether look-ups can replace evaluations for `op` on the rows `xs` (one
    MPI rank: every row of the space is local; a discrete operator; keys fit)."""
    return (
        n_ranks() == 1
        and isinstance(op, AbstractDiscreteHamiltonian)
        and _key_digits(op.space) is not None
        and tuple(xs.shape[1:]) == tuple(op.space.shape)
    )


def _row_index(space, xs):
    """`(own keys, rows sorted by key, sorted keys)` of the rows `xs`."""
    own = state_keys(space, xs)
    order = jnp.argsort(own)
    return own, order.astype(jnp.int32), own[order]


def lookup_table(op, xs: Array, index=None, chunk_size: int | None = None):
    """Where the connected configurations of every row of `xs` are among the rows.

    **Arguments:**

    - `op`: a discrete operator (`AbstractDiscreteHamiltonian`) on the space of `xs`.
    - `xs`: the rows, `(n, *shape)` (every configuration of the space once).
    - `index`: `_row_index(space, xs)` if the caller has it.
    - `chunk_size`: compute `connected` on at most this many rows at once.

    **Returns:** `(rows, mels, ok)`: `rows[i, k]` (int32, `(n, max_conn_size)`)
    is the row holding the `k`-th connected configuration of row `i`, `mels`
    its matrix element (0 where padded), and `ok` (a traced bool) says that
    every connected configuration with a non-zero element is a row of `xs`
    (else the table must not be used: use `op.local_energies`).
    """
    own, order, sorted_keys = _row_index(op.space, xs) if index is None else index
    n = xs.shape[0]

    def row(x):
        xps, mels = op.connected(x)
        return state_keys(op.space, xps), mels

    keys, mels = batch_apply(row, xs, chunk_size)
    pos = jnp.clip(jnp.searchsorted(sorted_keys, keys), 0, n - 1)
    found = (sorted_keys[pos] == keys) & (keys >= 0)
    ok = jnp.all(found | (mels == 0))
    rows = jnp.where(found, order[pos], jnp.arange(n, dtype=jnp.int32)[:, None])
    return rows, jnp.where(found, mels, jnp.zeros((), mels.dtype)), ok


def table_local_values(rows: Array, mels: Array, log_psi_xs: Array) -> Array:
    """`O_loc(x_i) = sum_k mels[i, k] psi(x_rows[i, k]) / psi(x_i)` from a
    `lookup_table` and `log psi` of the rows; entries with a zero element
    contribute exactly 0 (even where `psi = 0`), the diagonal exactly `mels`."""
    n = log_psi_xs.shape[0]
    ratio = jnp.exp(log_psi_xs[rows] - log_psi_xs[:, None])
    dtype = np.promote_types(mels.dtype, ratio.dtype)
    mels = mels.astype(dtype)
    diagonal = rows == jnp.arange(n, dtype=rows.dtype)[:, None]
    terms = jnp.where(mels != 0, jnp.where(diagonal, mels, mels * ratio.astype(dtype)), jnp.zeros((), dtype))
    return jnp.sum(terms, axis=1)


def _same_pytree(a, b):
    """A traced bool: `a` and `b` have equal leaves; `None` when their
    structure (static fields included), shapes or dtypes differ."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return None
    out = jnp.asarray(True)
    for x, y in zip(la, lb):
        x, y = jnp.asarray(x), jnp.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return None
        out = out & jnp.all(x == y)
    return out


def full_sum_local_energies(op, log_psi, xs: Array, log_psi_xs: Array, chunk_size: int | None = None) -> Array:
    """`op.local_energies(log_psi, xs, log_psi_xs, chunk_size)` for rows `xs`
    that enumerate the space, by look-up (`lookup_table`) where every needed
    connected configuration is a row (checked at run time; otherwise the
    operator's own compacted evaluation runs instead). Jit-able."""
    if not _lookup_possible(op, xs):
        return op.local_energies(log_psi, xs, log_psi_xs=log_psi_xs, chunk_size=chunk_size)
    rows, mels, ok = lookup_table(op, xs, chunk_size=chunk_size)
    fast = table_local_values(rows, mels, log_psi_xs)
    return jax.lax.cond(
        ok,
        lambda: fast,
        lambda: op.local_energies(log_psi, xs, log_psi_xs=log_psi_xs, chunk_size=chunk_size).astype(fast.dtype),
    )


#: Rows of the enumeration per call when the look-up tables are built.
_TABLE_CHUNK = 8192
#: Largest total size (bytes) of the look-up tables one `FullSumState` keeps;
#: operators beyond it are evaluated as before (by the network).
_TABLE_BUDGET = 1 << 30


class _TableCache:
    """Look-up tables of a `FullSumState` (host side, not a pytree): the sorted
    keys of its rows, and `(rows, mels)` per operator (`None`: not usable), kept
    with the operator so that its `id` stays unique."""

    def __init__(self, system=None):
        self.system = system
        self.index = None
        self.tables: dict[int, tuple] = {}
        self.n_bytes = 0
        #: the `FullSumState` these tables belong to (set by it)
        self.owner = None

    def lookup_tables(self, operators) -> list:
        """`FullSumState.lookup_tables` of the owner (what `Samples.lookup` promises)."""
        return self.owner.lookup_tables(operators)


#: Largest key range (`d^size`) indexed by a dense array (int32, 4 bytes a key);
#: larger ranges use a sorted search.
_DENSE_KEYS = 1 << 25


def _key_range(space) -> int:
    return len(space.local_states) ** int(space.size)


def _row_lookup(index, keys):
    """`(found, row)` of integer keys: a gather in the dense index, or a sorted
    search (`index = ("dense", row_of_key)` or `("sorted", sorted_keys, order)`)."""
    if index[0] == "dense":
        row_of_key = index[1]
        row = row_of_key[jnp.clip(keys, 0, row_of_key.shape[0] - 1)]
        return (keys >= 0) & (row >= 0), row
    _, sorted_keys, order = index
    n = sorted_keys.shape[0]
    pos = jnp.clip(jnp.searchsorted(sorted_keys, keys), 0, n - 1)
    return (sorted_keys[pos] == keys) & (keys >= 0), order[pos]


@eqx.filter_jit
def _table_chunk(ops, xs, start, index):
    """`[(rows, mels, bad)]` of every operator for the rows `xs` (which start at
    row `start` of the enumeration); see `lookup_table`."""
    own = start + jnp.arange(xs.shape[0], dtype=jnp.int32)[:, None]
    out = []
    for op in ops:

        def row(x, op=op):
            xps, m = op.connected(x)
            return state_keys(op.space, xps), m

        keys, mels = jax.vmap(row)(xs)
        found, rows = _row_lookup(index, keys)
        out.append((jnp.where(found, rows, own), jnp.where(found, mels, jnp.zeros((), mels.dtype)), jnp.any(~found & (mels != 0))))
    return out


def _content_key(op):
    """A hashable key equal for operators with equal structure and arrays (two
    observables made of the same operators share their tables)."""
    leaves, treedef = jax.tree.flatten(op)
    try:
        hash(treedef)
    except TypeError:
        return ("id", id(op))
    parts = []
    for leaf in leaves:
        a = np.asarray(leaf)
        parts.append((a.shape, a.dtype.str, a.tobytes()))
    return (treedef, tuple(parts))


class FullSumState(AbstractEnumeration):
    """Every configuration of a small discrete space, for exact expectation values.

    Pass it to `nqs_core.expect` instead of samples: the expectation value is
    then the exact sum `sum_x p(x) O_loc(x)` with `p(x) = |psi(x)|^2 / Z`.

    **Arguments:**

    - `space`: a discrete space that can enumerate its configurations.
    - `max_states`: refuse spaces with more configurations than this (default
      2^20), with a one-line error naming both numbers.
    - `system`: the Hamiltonian that will be summed, if known: its local
      energies count in the memory estimate (`full_sum_memory`), which is
      checked against the memory limit (`nqs_core.check_memory`) before the
      space is enumerated.

    **Fields:** `states` (this rank's configurations, `(n_local, *shape)`),
    `n_states` (configurations of the whole space), `space`.
    """

    space: AbstractDiscreteSpace
    states: Array
    n_states: int = eqx.field(static=True)
    _tables: _TableCache = eqx.field(static=True)

    def __init__(self, space: AbstractSpace, max_states: int = DEFAULT_MAX_STATES, system: AbstractSystem | None = None):
        n = check_enumerable(space, max_states, "full sum")
        check_full_sum_memory(space, system)
        states = np.asarray(space.all_states())
        start, size = _block(n)
        block = states[start : start + size]
        if len(block) < size:  # padding rows: copies of the last state, weight 0
            block = np.concatenate([block, np.repeat(states[-1:], size - len(block), axis=0)])
        self.space = space
        self.states = jnp.asarray(block)
        self.n_states = n
        self._tables = _TableCache(system)
        self._tables.owner = self

    def samples(self, ansatz: AbstractAnsatz, chunk_size: int | None = None) -> Samples:
        """These configurations as one chain with their weights `p(x)` for
        `ansatz` (exact; local values by look-up where possible)."""
        return Samples(self.states[None], self.probabilities(ansatz, chunk_size)[None], exact=True, lookup=self._tables)

    def lookup_tables(self, operators) -> list:
        """Look-up tables of `operators` on these rows (eager; built once per
        operator, kept, and shared by equal operators): for each,
        `(rows, mels)` as in `lookup_table`, or `None` where look-ups cannot
        replace the network (another space, keys too long, a connected
        configuration outside the space with a non-zero element, under MPI,
        or past a 1 GB budget of tables)."""
        cache = self._tables
        xs = self.states
        keys = [_content_key(op) for op in operators]
        todo = {}
        for key, op in zip(keys, operators):
            if key in cache.tables or key in todo:
                continue
            if _lookup_possible(op, xs):
                todo[key] = op
            else:
                cache.tables[key] = (op, None)
        if todo:
            if cache.index is None:
                own = np.asarray(eqx.filter_jit(state_keys)(self.space, xs))
                if _key_range(self.space) <= _DENSE_KEYS:
                    row_of_key = np.full(_key_range(self.space), -1, dtype=np.int32)
                    row_of_key[own[::-1]] = np.arange(len(own), dtype=np.int32)[::-1]  # first row of a key
                    cache.index = ("dense", jnp.asarray(row_of_key))
                else:
                    order = np.argsort(own, kind="stable").astype(np.int32)
                    cache.index = ("sorted", jnp.asarray(own[order]), jnp.asarray(order))
            n = xs.shape[0]
            width = min(_TABLE_CHUNK, n)
            usable = tuple(todo.values())
            parts = []
            for start in range(0, n, width):
                chunk = xs[start : start + width]
                if chunk.shape[0] < width:  # the same compiled function for the last chunk
                    chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], width - chunk.shape[0], axis=0)])
                parts.append(jax.device_get(_table_chunk(usable, chunk, jnp.int32(start), cache.index)))
            for k, (key, op) in enumerate(todo.items()):
                rows = np.concatenate([p[k][0] for p in parts])[:n]
                mels = np.concatenate([p[k][1] for p in parts])[:n]
                bad = any(bool(p[k][2]) for p in parts)
                n_bytes = rows.nbytes + mels.nbytes
                if bad or cache.n_bytes + n_bytes > _TABLE_BUDGET:
                    cache.tables[key] = (op, None)
                else:
                    cache.n_bytes += n_bytes
                    cache.tables[key] = (op, (jnp.asarray(rows), jnp.asarray(mels)))
        return [cache.tables[key][1] for key in keys]

    def probabilities(self, ansatz: AbstractAnsatz, chunk_size: int | None = None) -> Array:
        """`p(x) = |psi(x)|^2 / Z` of this rank's configurations (`Z` over all
        ranks; padding rows 0)."""
        return born_weights(batch_apply(ansatz, self.states, chunk_size), _real_rows(self.states.shape[0], self.n_states))


def born_weights(log_psi: Array, real_rows) -> Array:
    """Normalised `|psi|^2` from `log psi` of this rank's rows (padding rows get
    0), stable for large `|log psi|`; `Z` is summed over ranks."""
    log_w = jnp.where(jnp.asarray(real_rows), 2.0 * jnp.real(log_psi), -jnp.inf)
    top = jnp.max(gather_over_ranks(jnp.max(log_w)))
    w = jnp.exp(log_w - top)
    return w / sum_over_ranks(jnp.sum(w))


class FullSumSampler(AbstractSampler):
    """Every configuration of a small discrete space, once, weighted by its
    probability (no randomness): the sampler of exact, full-sum calculations.

    `sample` returns `nqs_core.Samples`: the enumeration as one chain, shape
    `(1, n_states, *shape)` (this rank's block under MPI), with the weights
    `p(x) = exp(log_prob(x)) / Z` of the distribution (`|psi|^2 / Z` for a
    wave function; padding rows of the last MPI block weigh 0) and
    `exact=True`. Every estimator and `nqs_core.expect` honour the weights;
    the `full_sum` estimator (the default with this sampler) also looks the
    local energies up among the rows instead of evaluating the network.

    **Arguments:**

    - `space`: a discrete space that can enumerate its configurations.
    - `max_states`: refuse larger spaces (default 2^20) with a one-line error
      naming the number of states and the limit.
    - `system`: the Hamiltonian (taken from the `[system]` table): the
      memory of the enumeration and of its local energies is estimated and
      checked against the memory limit (`[run] max_memory_gb`) before the
      space is enumerated, see `FullSumState`.
    - `chunk_size`: evaluate the distribution on at most this many
      configurations at once (`None`: all together).
    """

    space: AbstractDiscreteSpace
    full_sum: FullSumState
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    default_estimator: ClassVar[str] = "full_sum"

    def __init__(
        self,
        space: AbstractSpace,
        max_states: int = DEFAULT_MAX_STATES,
        system: AbstractSystem | None = None,
        chunk_size: int | None = None,
    ):
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        self.full_sum = FullSumState(space, max_states=max_states, system=system)
        self.space = space
        self.n_samples = int(self.full_sum.states.shape[0])
        self.n_chains = 1
        self.chunk_size = chunk_size

    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> DirectState:
        return DirectState(key=legacy_key(key))

    def sample(self, distribution: AbstractDistribution, state: DirectState):
        full = self.full_sum
        states = full.states
        # log p = 2 Re log psi for a wave function: born_weights(log_p / 2) is p (halving and doubling are exact)
        log_p = batch_apply(distribution.log_prob, states, self.chunk_size)
        p = born_weights(0.5 * log_p, _real_rows(states.shape[0], full.n_states))
        samples = Samples(states[None], p[None], exact=True, lookup=full._tables)
        return samples, state, {"acceptance": jnp.ones((), dtype=jnp.result_type(float))}


class FullSumEstimator(AbstractEstimator):
    """Exact energy, energy gradient and natural-gradient data from a sum over
    every configuration (the samples of the `full_sum` sampler).

    With `p(x) = |psi(x)|^2 / Z`: the energy is `E = sum_x p(x) E_loc(x)`
    (equal to `<psi|H|psi> / <psi|psi>`; real, as `H` is Hermitian), its `Stats` have error 0, tau 0,
    R-hat 1 and the exact variance `<H^2> - <H>^2`; the gradient is
    `2 Re sum_x p(x) (E_loc(x) - E)^* O(x)`; `natural_gradient_data` returns
    `Y = sqrt(p) (O - <O>)` and `eps = -2 sqrt(p) (E_loc - E)^*`, so that
    SR, SRt and MinSR solve with the exact quantum geometric tensor
    `S = Re[Y^H Y]`.

    **Arguments:**

    - `chunk_size`: evaluate at most this many configurations at once
      (`None`: all together).
    - `sampler`: the `FullSumSampler` whose samples this estimator receives
      (injected from the `[sampler]` table; needed under MPI, where it tells
      the padding rows of the last block; any other sampler is refused).

    The local energies are looked up, not evaluated: with its sampler's
    system known (the config builder injects it), the estimator builds once
    the table of the rows each connected configuration is (`lookup_tables`)
    and a step gathers `log psi` of those rows (a few ms for 2^16 states
    instead of the network on `2^16 x max_conn_size` configurations). The
    table is used only when the `system` and the rows passed are those it was
    built for (checked in the step); otherwise look-ups are built in the
    step, and operators that leave the space are evaluated by the network
    (`full_sum_local_energies`).

    Before the sum is evaluated (when a step is traced) its memory is checked
    (`full_sum_memory`: the rows, their local energies and, in
    `natural_gradient_data`, the `n_states x P` log-derivative matrix) against
    the memory limit in effect when the estimator was built (`[run]
    max_memory_gb` in a config; else the one in effect at the check).
    """

    chunk_size: int | None = eqx.field(static=True)
    n_states: int | None = eqx.field(static=True)
    memory_limit_bytes: float | None = eqx.field(static=True)
    table: tuple | None

    def __init__(self, chunk_size: int | None = None, sampler: AbstractSampler | None = None):
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, minimum=1)
        if sampler is not None and not isinstance(sampler, FullSumSampler):
            raise ValueError(
                f"the full_sum estimator sums over every state and needs the full_sum sampler "
                f"([sampler] name = \"full_sum\"), not {type(sampler).__name__}"
            )
        self.chunk_size = chunk_size
        # the padding rows of the last MPI block are known from the number of states
        self.n_states = None if sampler is None else sampler.full_sum.n_states
        self.memory_limit_bytes = _MEMORY_LIMIT.get()
        # the look-up table of the sampler's system, built once: (system, states, rows, mels)
        self.table = None
        system = None if sampler is None else sampler.full_sum._tables.system
        if system is not None:
            (found,) = sampler.full_sum.lookup_tables([system])
            if found is not None:
                self.table = (system, sampler.full_sum.states) + found

    def _local_energies(self, ansatz, system, flat, lx):
        """`E_loc` of every row: from the cached table when `system` and the rows
        are those it was built for (checked at run time), else by look-up
        tables built in the step, else by the network (`full_sum_local_energies`)."""
        computed = lambda: full_sum_local_energies(system, ansatz, flat, lx, self.chunk_size)  # noqa: E731
        if self.table is None:
            return computed()
        cached_system, states, rows, mels = self.table
        same = _same_pytree(system, cached_system)
        if same is None or states.shape != flat.shape:
            return computed()
        same = same & jnp.all(states == flat)
        fast = table_local_values(rows, mels, lx)
        return jax.lax.cond(same, lambda: fast, lambda: computed().astype(fast.dtype))

    def _weights(self, ansatz, flat, samples=None):
        """`(log psi of the rows, p)`: `p` from the samples' weights when they
        carry them (the `full_sum` sampler's), else `|psi|^2 / Z` of the rows."""
        n_states = self.n_states if self.n_states is not None else flat.shape[0] * n_ranks()
        lx = batch_apply(ansatz, flat, self.chunk_size)
        if samples is not None and is_weighted(samples):
            return lx, samples.weights.reshape(-1)
        return lx, born_weights(lx, _real_rows(flat.shape[0], n_states))

    def __call__(self, ansatz, system, samples):
        ndim = len(system.space.shape)
        x = samples.x if isinstance(samples, Samples) else samples
        flat = _flat(x, ndim)
        n_states = int(system.space.n_states)
        if x.ndim != ndim + 2 or x.shape[0] != 1 or flat.shape[0] != _block(n_states)[1]:
            raise ValueError(
                f"the full_sum estimator needs every state of the space once (the full_sum sampler), "
                f"got samples of shape {x.shape} for a space of {n_states} states"
            )
        if self.n_states is None and n_ranks() > 1:
            raise ValueError("under MPI the full_sum estimator needs its sampler: FullSumEstimator(sampler=FullSumSampler(space))")
        check_full_sum_memory(system.space, system, listing=False, limit=self.memory_limit_bytes)
        lx, p = self._weights(ansatz, flat, samples)
        eloc = self._local_energies(ansatz, system, flat, lx)
        stats = exact_statistics(p, eloc)
        # <H> of a Hermitian H is real: drop the rounding-level imaginary part
        stats = eqx.tree_at(lambda s: s.mean, stats, jnp.real(stats.mean))
        return Estimate(stats=stats, local_values=eloc.reshape(x.shape[:2]))

    def _centred(self, ansatz, samples, estimate):
        """`(flat samples, p, (E_loc - E) with 0 where p = 0)`."""
        eloc = estimate.local_values.reshape(-1)
        x = samples.x if isinstance(samples, Samples) else samples
        flat = _flat(x, x.ndim - estimate.local_values.ndim)
        _, p = self._weights(ansatz, flat, samples)
        return flat, p, jnp.where(p > 0, eloc - estimate.stats.mean.astype(eloc.dtype), jnp.zeros((), eloc.dtype))

    def gradient(self, ansatz, samples, estimate):
        flat, p, d = self._centred(ansatz, samples, estimate)
        coeff = 2.0 * p.astype(d.dtype) * jnp.conj(d)
        params, static = parameters(ansatz)
        vec, unravel = real_ravel(params)

        def chunk_grad(batch):
            xs, c = batch

            def loss(v):
                model = eqx.combine(unravel(v), static)
                return jnp.sum(jnp.real(c * jax.vmap(model)(xs)))

            return jax.grad(loss)(vec)

        return unravel(sum_over_ranks(_sum_over_chunks(chunk_grad, (flat, coeff), self.chunk_size)))

    def natural_gradient_data(self, ansatz, samples, estimate):
        flat, p, d = self._centred(ansatz, samples, estimate)
        rows = flat.shape[0]
        n_bytes, what = _full_sum_bytes(
            n_states=self.n_states if self.n_states is not None else rows * n_ranks(),
            rows=rows,
            size=int(np.prod(flat.shape[1:])),
            item=flat.dtype.itemsize,
            n_params=n_real_parameters(ansatz),
            value_bytes=_value_bytes(ansatz, jax.ShapeDtypeStruct(flat.shape[1:], flat.dtype)),
        )
        check_memory(n_bytes, what, limit=self.memory_limit_bytes)
        # Y = sqrt(p) O - sqrt(p) <O>: the rows scaled where the derivatives are
        # made and <O> from one reverse pass, so that the n_states x P matrix is
        # written once and never read back before the solve (each pass over it
        # costs as much as the derivatives themselves)
        sqrt_p = jnp.sqrt(p)
        o_mean = sum_over_ranks(mean_log_derivative(ansatz, flat, p, self.chunk_size))
        jac = log_derivatives(ansatz, flat, self.chunk_size, scale=sqrt_p)
        y = jac - sqrt_p[:, None].astype(jac.dtype) * o_mean
        eps = -2.0 * sqrt_p.astype(d.dtype) * jnp.conj(d)
        return y, eps
