"""Sampling health: the evidence that a Monte Carlo estimate can be trusted.

Every VMC step measures, inside its jitted function, how well the sampler
explored `|psi|^2`:

- the acceptance per chain (its minimum next to the mean; Metropolis samplers),
- the fraction of chains that did not move during the step (Metropolis),
- the number of distinct configurations among the samples (hashes of the
  rows, sorted, changes counted: no Python loop over samples),
- the off-diagonal weight `sum_{x' != x} |<x|H|x'>|^2` of the chains' last
  configurations, the variance of `H` in the basis state `|x>`: when the
  samples collapsed onto a few configurations and it is positive, a zero
  energy variance is an artefact of the collapse, not an eigenstate (a
  product eigenstate, e.g. the all-up Heisenberg ferromagnet, has 0 there).

`DivergenceGuard` turns these numbers into reasons to reject a step (see
`nqs_core._driver.REJECT_REASONS`), and `BlowUpWatch` gives drivers without a
jitted guard (deuteron, phi^4) the same test of a finite blow-up. At the end of
a Monte Carlo run `nqs_core._crosscheck` compares the sampled energy with the
exact sum over the same parameters when the space is small enough.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._system import AbstractDiscreteHamiltonian

#: The energy variance counts as zero below this times `max(E^2, 1)`.
ZERO_VARIANCE_RTOL = 1e-14
#: Chains whose last configuration enters `offdiag_weight` and `psi_weight`.
_MAX_ROWS = 16
#: `|psi|^2` counts as collapsed onto a configuration when its `psi_weight` is
#: below this times its `offdiag_weight`.
COLLAPSE_RTOL = 1e-6
#: A chain whose last configuration has an off-diagonal weight above this
#: times `max(E^2, 1)` is not in an eigenstate of one configuration.
OFFDIAG_RTOL = 1e-12


def _mix64(v: Array) -> Array:
    """splitmix64's finaliser (Steele, Lea and Flood 2014): a bijection of
    uint64 that spreads every input bit over the output."""
    v = (v ^ (v >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return v ^ (v >> 31)


def row_hashes(rows: Array) -> Array:
    """A 64-bit hash of each row of `rows` (shape `(n, d)`), from the bit
    patterns of its entries (floats bit-cast, integers and booleans widened):
    the mixed entries, each salted with its position, summed modulo 2^64.
    Equal rows have equal hashes; two different rows among `n` collide with
    probability about `n^2 / 2^64`."""
    rows = jnp.asarray(rows)
    if jnp.issubdtype(rows.dtype, jnp.complexfloating):
        rows = jnp.concatenate([jnp.real(rows), jnp.imag(rows)], axis=1)
    if jnp.issubdtype(rows.dtype, jnp.floating):
        rows = rows.astype(jnp.float64) + 0.0  # -0.0 -> 0.0
        bits = jax.lax.bitcast_convert_type(rows, jnp.uint64)
    else:
        bits = rows.astype(jnp.int64).astype(jnp.uint64)
    salt = _mix64(jnp.arange(1, rows.shape[1] + 1, dtype=jnp.uint64) * jnp.uint64(0x9E3779B97F4A7C15))
    return jnp.sum(_mix64(bits ^ salt), axis=1, dtype=jnp.uint64)


def count_distinct(samples: Array, n_axes: int = 2) -> Array:
    """Number of distinct configurations among `samples`, whose first
    `n_axes` axes index samples (`(n_chains, n_per_chain, *shape)`: 2).
    Jit-compatible: the rows are hashed (`row_hashes`), sorted, and the
    changes between neighbours counted."""
    n = int(np.prod(samples.shape[:n_axes]))
    h = jnp.sort(row_hashes(samples.reshape(n, -1)))
    return 1 + jnp.sum(h[1:] != h[:-1])


def offdiagonal_weight(system, x: Array) -> Array:
    """`sum_{x' != x} |<x|H|x'>|^2` of each configuration in `x` (shape
    `(n, *shape)`): the variance of `H` in the basis state `|x>`, from the
    system's connected elements (0 for an eigenstate of one configuration).
    NaN for systems without connected elements (continuous spaces)."""
    if not isinstance(system, AbstractDiscreteHamiltonian):
        return jnp.full(x.shape[:1], jnp.nan)

    def one(row):
        xps, mels = system.connected(row)
        differs = jnp.any((xps != row[None]).reshape(xps.shape[0], -1), axis=1)
        return jnp.sum(jnp.where(differs & (mels != 0), jnp.abs(mels) ** 2, 0.0))

    return jax.vmap(one)(x)


def _psi_weight(system, log_psi, x: Array) -> Array:
    """`sum_{x' != x} |<x|H|x'>|^2 |psi(x') / psi(x)|^2` of each row of `x`:
    how much of the basis-state variance the wave function actually
    connects to (about 0 when `|psi|^2` collapsed onto `x`)."""
    if not isinstance(system, AbstractDiscreteHamiltonian) or log_psi is None:
        return jnp.full(x.shape[:1], jnp.nan)

    def one(row):
        xps, mels = system.connected(row)
        differs = jnp.any((xps != row[None]).reshape(xps.shape[0], -1), axis=1) & (mels != 0)
        lx = jnp.real(log_psi(row))
        lxp = jnp.real(jax.vmap(log_psi)(xps))
        ratio2 = jnp.exp(jnp.minimum(2.0 * (lxp - lx), 700.0)).astype(jnp.float64)
        return jnp.sum(jnp.where(differs, (jnp.abs(mels) ** 2).astype(jnp.float64) * ratio2, 0.0))

    return jax.vmap(one)(x)


def sampling_health(system, samples: Array, info: dict[str, Array], stats, log_psi=None) -> dict[str, Array]:
    """The health numbers of one step (jit-compatible).

    **Arguments:**

    - `system`: the Hamiltonian (its connected elements give the off-diagonal weight).
    - `samples`: `(n_chains, n_per_chain, *shape)` from the sampler.
    - `info`: the sampler's info (`acceptance`, and for Metropolis samplers
      `acceptance_min` and `frozen_fraction`).
    - `stats`: the energy `Stats` of the samples.
    - `log_psi`: the wave function (for `psi_weight`; `None`: not computed).

    **Returns:** a dict with `n_distinct` (distinct configurations among the
    samples), `offdiag_weight` (`sum_{x' != x} |H_{x x'}|^2`, mean over the
    last configurations of the first 16 chains; NaN without connected elements),
    `psi_weight` (the same weighted by `|psi(x')/psi(x)|^2`) and
    `zero_variance`: 1.0 when the energy variance is zero although the
    sampled configurations are not eigenstates (`offdiag_weight > 0`) and
    `|psi|^2` collapsed onto them (`psi_weight` below 1e-6 of
    `offdiag_weight`), else 0.0. An eigenstate spread over many
    configurations (zero variance, large `psi_weight`) and a product
    eigenstate (`offdiag_weight = 0`) are not flagged.
    """
    n_distinct = count_distinct(samples).astype(jnp.float64)
    last = samples[:_MAX_ROWS, -1]  # a few chains' last configurations: the cost stays that of a few local energies
    off = jnp.mean(offdiagonal_weight(system, last))
    psi_w = jnp.mean(_psi_weight(system, log_psi, last))
    energy = jnp.abs(jnp.real(jnp.asarray(stats.mean))).astype(jnp.float64)
    scale = jnp.maximum(energy**2, 1.0)
    var = jnp.asarray(stats.variance, jnp.float64)
    not_eigen = off > OFFDIAG_RTOL * scale  # False for NaN: no basis eigenstates in continuous spaces
    collapsed = ~(psi_w > COLLAPSE_RTOL * off)  # NaN (no wave function given): decided by the variance alone
    zero_var = (var <= ZERO_VARIANCE_RTOL * scale) & not_eigen & collapsed
    return {
        "n_distinct": n_distinct,
        "offdiag_weight": off,
        "psi_weight": psi_w,
        "zero_variance": zero_var.astype(jnp.float64),
    }


def describe_health(record: dict[str, Any], n_samples: int | None = None) -> str:
    """The health numbers of a log record in words, e.g. `16/16 chains did not
    move, acceptance 0 (min 0), 1 distinct configuration in 16384 samples`."""
    parts = []
    if "frozen_fraction" in record and math.isfinite(record["frozen_fraction"]):
        parts.append(f"{record['frozen_fraction']:.0%} of the chains did not move")
    if "acceptance" in record:
        acc = f"acceptance {record['acceptance']:.3g}"
        if "acceptance_min" in record:
            acc += f" (min over chains {record['acceptance_min']:.3g})"
        parts.append(acc)
    if "n_distinct" in record:
        of = f" in {n_samples} samples" if n_samples else ""
        parts.append(f"{int(record['n_distinct'])} distinct configuration(s){of}")
    if "variance" in record:
        parts.append(f"energy variance {record['variance']:.3g}")
    return ", ".join(parts)


class BlowUpWatch:
    """Finite blow-ups of a driver without a jitted guard: a step's objective
    or parameter norm that grew by orders of magnitude.

    The reference is taken at the first step seen: the objective's magnitude
    `|v0|` and the parameter norm `|p0|`. A later step is a blow-up when
    `|v - v0| > factor * max(|v0|, floor)` or `|p| > factor * max(|p0|, 1)`
    (parameters of order one are normal for any network).

    **Arguments:**

    - `factor`: growth that counts as a blow-up (default 1e5; `inf`: off).
    - `floor`: smallest reference magnitude of the objective (default 1e-8).
    """

    def __init__(self, factor: float = 1e5, floor: float = 1e-8):
        self.factor, self.floor = float(factor), float(floor)
        self.value0: float | None = None
        self.norm0: float | None = None

    def check(self, value: float, params: Any = None) -> str | None:
        """`None` when `value` and the norm of `params` are within bounds,
        else the reason in words. The first finite value and the first norm
        seen become the references (not checked themselves)."""
        norm = param_norm(params) if params is not None else None
        check_value = self.value0 is not None
        check_norm = self.norm0 is not None and norm is not None
        if self.value0 is None and math.isfinite(value):
            self.value0 = float(value)
        if self.norm0 is None and norm is not None and math.isfinite(norm):
            self.norm0 = norm
        if not math.isfinite(self.factor):
            return None
        if check_value and math.isfinite(value) and abs(value - self.value0) > self.factor * max(abs(self.value0), self.floor):
            return (
                f"the objective moved by orders of magnitude ({value:.4g}, from {self.value0:.4g} at the start; "
                f"blow-up factor {self.factor:.3g})"
            )
        if check_norm and not norm <= self.factor * max(self.norm0, 1.0):
            return (
                f"the parameters grew by orders of magnitude (norm {norm:.3g}, from {self.norm0:.3g} at the start; "
                f"blow-up factor {self.factor:.3g})"
            )
        return None


def param_norm(params: Any) -> float:
    """The Euclidean norm of every inexact array of `params` (NaN when not finite)."""
    leaves = [np.asarray(a) for a in jax.tree.leaves(params) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)]
    if not leaves:
        return 0.0
    return float(math.sqrt(sum(float(np.sum(np.abs(a) ** 2)) for a in leaves)))
