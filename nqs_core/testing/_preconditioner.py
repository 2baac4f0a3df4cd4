"""The preconditioner contract suite (`check_preconditioner`)."""

from __future__ import annotations

import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._ansatz import (
    AbstractAnsatz,
)
from .._estimator import AbstractEstimator, EnergyEstimator
from .._io import load_checkpoint, save_checkpoint
from .._preconditioner import AbstractPreconditioner, StepContext
from .._system import (
    AbstractHamiltonian,
)
from .._tree import parameters, real_ravel
from ._common import (
    _check,
)

# -- preconditioners -------------------------------------------------------------


@eqx.filter_jit
def _context(estimator, system, ansatz, samples):
    return StepContext(system, ansatz, samples, estimator(ansatz, system, samples), estimator)


@eqx.filter_jit
def _gradient(context):
    return context.gradient()


@eqx.filter_jit
def _precondition(preconditioner, context, state):
    return preconditioner(context, state)


def _same_template(a, b) -> str | None:
    """`None` if the pytrees `a` and `b` have the same structure, leaf shapes and
    dtypes; else what differs."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return f"structure {jax.tree.structure(a)} != {jax.tree.structure(b)}"
    for i, (u, v) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b))):
        if jnp.shape(u) != jnp.shape(v) or jnp.result_type(u) != jnp.result_type(v):
            return f"leaf {i}: {jnp.result_type(u)} {jnp.shape(u)} != {jnp.result_type(v)} {jnp.shape(v)}"
    return None


def check_preconditioner(
    preconditioner: AbstractPreconditioner,
    system: AbstractHamiltonian,
    ansatz: AbstractAnsatz,
    samples: Array,
    *,
    estimator: AbstractEstimator | None = None,
) -> None:
    """Check a preconditioner against the `AbstractPreconditioner` contract at
    one optimisation step on `samples` `(n_chains, n_per_chain, *shape)`.

    - the direction has the structure, shapes and dtypes of the parameters,
      is finite, and is a descent direction: `<grad E, direction> > 0` over
      the real parameters (the optax optimizer moves *against* the direction,
      so a positive overlap lowers the energy);
    - `info` is a dict;
    - resume: the state after the step has the structure, shapes and dtypes of
      `init`'s (the checkpoint template); it survives `save_checkpoint` /
      `load_checkpoint` with the initial state as template unchanged, and the
      next step from the loaded state equals the next step from the original.

    **Arguments:** the preconditioner, the `system` whose energy is minimised,
    the `ansatz` at the current parameters, the `samples` of this step and the
    `estimator` (default `EnergyEstimator()`).

    **Raises:** `AssertionError` naming the broken rule.
    """
    estimator = EnergyEstimator() if estimator is None else estimator
    state0 = preconditioner.init(ansatz, samples)
    context = _context(estimator, system, ansatz, samples)
    direction, state1, info = _precondition(preconditioner, context, state0)
    params, _ = parameters(ansatz)
    diff = _same_template(direction, params)
    _check(diff is None, preconditioner, f"the direction is not shaped like the parameters: {diff}")
    d, _ = real_ravel(direction)
    _check(bool(jnp.all(jnp.isfinite(d))), preconditioner, "the direction is not finite")
    g, _ = real_ravel(_gradient(context))
    overlap = float(jnp.dot(g, d))
    _check(overlap > 0, preconditioner,
           f"not a descent direction: <grad E, direction> = {overlap:.4g} <= 0 (the optimizer moves against the direction)")
    _check(isinstance(info, dict), preconditioner, f"info must be a dict, got {type(info).__name__}")
    diff = _same_template(state1, state0)
    _check(diff is None, preconditioner,
           f"the state after a step differs from init's, so a checkpoint does not fit its template: {diff}")
    with tempfile.TemporaryDirectory() as tmp:
        # in a tuple: load_checkpoint compares a `step` field of the saved object with the meta's
        save_checkpoint(tmp, (state1,), {"step": 0})
        (loaded,), _ = load_checkpoint(tmp, (state0,))
    for u, v in zip(jax.tree.leaves(state1), jax.tree.leaves(loaded)):
        _check(np.array_equal(np.asarray(u), np.asarray(v)), preconditioner, "the state changes in a checkpoint round trip")
    again, _, _ = _precondition(preconditioner, context, state1)
    resumed, _, _ = _precondition(preconditioner, context, loaded)
    for u, v in zip(jax.tree.leaves(again), jax.tree.leaves(resumed)):
        _check(np.array_equal(np.asarray(u), np.asarray(v)), preconditioner,
               "the step after loading a checkpoint differs from the step without (the state does not hold everything)")
