"""The ansatz contract suite (`check_ansatz`)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._ansatz import (
    AbstractAnsatz,
    AbstractAutoregressiveAnsatz,
    AbstractConnectedAnsatz,
    AbstractDirectSamplingAnsatz,
)
from .._estimator import log_derivatives
from .._space import AbstractDiscreteSpace, AbstractSpace
from .._tree import log_psi_batch, n_real_parameters, parameters
from ._common import (
    MAX_STATES,
    _check,
    _Enumeration,
)

# -- ansatze ---------------------------------------------------------------------


@eqx.filter_jit
def _evaluations(ansatz, params, static, x, states):
    """The values `check_ansatz` compares, in one compiled function (one
    compilation per ansatz): `log psi` of each row on its own (recombined
    parameters) and batched, and the capabilities."""
    n = x.shape[0]
    # the configurations and (for an enumerable space) every state, batched in one vmap
    batch = x if states is None else jnp.concatenate([x, states.astype(x.dtype)])
    batched = jax.vmap(ansatz)(batch)
    out = {
        # chunks of one: `lax.map` over single configurations
        "jit": log_psi_batch(eqx.combine(params, static), x, chunk_size=1),
        "jit(vmap)": batched[:n],
    }
    if isinstance(ansatz, AbstractConnectedAnsatz):
        lx, lxp = jax.lax.map(lambda xi: ansatz.log_psi_connected(xi, x), x)
        out["log_psi_connected(x, xps)[0]"] = lx
        out["log_psi_connected"] = lxp
    if isinstance(ansatz, AbstractAutoregressiveAnsatz):
        out["conditionals"] = jax.lax.map(ansatz.conditionals, x)
    if isinstance(ansatz, AbstractDirectSamplingAnsatz):
        out["sample"] = ansatz.sample(jax.random.PRNGKey(0), 8)
        if states is not None:
            out["log psi on the space"] = batched[n:]
    return out


def check_ansatz(
    ansatz: AbstractAnsatz,
    space: AbstractSpace,
    key: PRNGKeyArray,
    *,
    dtype=None,
    n: int = 4,
    rtol: float = 1e-10,
    eager: bool = True,
    max_states: int = MAX_STATES,
) -> None:
    """Check an ansatz against the `AbstractAnsatz` contract on `n` random
    configurations of `space`.

    **Arguments:**

    - `ansatz`: the ansatz under test, with its (initial) parameters.
    - `space`: the configuration space it is defined on.
    - `key`: PRNG key for the random configurations.
    - `dtype`: the declared dtype of `log psi` (e.g. `"complex128"`), if any.
    - `n`: number of random configurations.
    - `rtol`: tolerance relative to `1 + max |log psi|`.
    - `eager`: also compare with the unjitted (op-by-op) value of one configuration.
    - `max_states`: enumerate a discrete space up to this size (normalisation of
      an autoregressive ansatz).

    **Checks:**

    - `log psi(x)` is a finite scalar of an inexact dtype (`dtype` if given;
      complex whenever a parameter is complex);
    - one configuration at a time under `jit` (`log_psi_batch` in chunks of
      one, on the parameters recombined with the static part) equals the
      unjitted value (`eager=True`; op-by-op evaluation compiles every
      operation, a few seconds for a transformer) and `jit(vmap)` (to `rtol`
      relative to `1 + max |log psi|`);
    - the parameters (`nqs_core.parameters`: the inexact arrays, split with
      `equinox.partition`) are a non-empty pytree of JAX arrays;
    - `log_derivatives` has shape `(n, n_real_parameters)` and is complex
      exactly when `log psi` is (traced through autodiff with
      `jax.eval_shape`, not compiled: the reverse pass is the costliest part
      to compile);
    - capabilities: `log_psi_connected` of an `AbstractConnectedAnsatz` equals
      `(log psi(x), vmap(log psi)(xps))`; an `AbstractAutoregressiveAnsatz` has
      conditionals normalised over the local states; an
      `AbstractDirectSamplingAnsatz` (autoregressive ones included) is
      normalised over an enumerable space, and `sample` gives configurations
      of the space.

    **Raises:** `AssertionError` naming the broken rule.
    """
    x = space.random_state(key, n)
    unjitted = ansatz(x[0]) if eager else jax.eval_shape(ansatz, x[0])
    _check(jnp.shape(unjitted) == (), ansatz, f"log psi(x) must be a scalar, got shape {jnp.shape(unjitted)}")
    _check(jnp.issubdtype(unjitted.dtype, jnp.inexact), ansatz, f"log psi is {unjitted.dtype}, expected a float or complex dtype")
    params, static = parameters(ansatz)
    enumeration = None
    if isinstance(space, AbstractDiscreteSpace) and int(space.n_states) <= max_states:
        enumeration = _Enumeration(space)
    out = _evaluations(ansatz, params, static, x, None if enumeration is None else jnp.asarray(enumeration.states))
    ref = out["jit"]
    _check(jnp.issubdtype(ref.dtype, jnp.inexact), ansatz, f"log psi is {ref.dtype}, expected a float or complex dtype")
    if dtype is not None:
        _check(ref.dtype == jnp.dtype(dtype), ansatz, f"log psi is {ref.dtype}, declared {jnp.dtype(dtype)}")
    leaves = jax.tree.leaves(params)
    _check(leaves, ansatz, "has no parameters (no inexact JAX arrays among its fields)")
    for leaf in leaves:
        _check(isinstance(leaf, jax.Array), ansatz,
               f"parameter of type {type(leaf).__name__} {np.shape(leaf)}: parameters must be JAX arrays "
               "(a NumPy array is a constant that jit bakes in; convert with jnp.asarray)")
    if any(jnp.iscomplexobj(leaf) for leaf in leaves):
        _check(jnp.iscomplexobj(ref), ansatz, f"has complex parameters but a real log psi ({ref.dtype}): the phase is lost")
    _check(np.all(np.isfinite(np.asarray(ref))), ansatz, lambda: f"log psi is not finite on random configurations: {np.asarray(ref)}")

    ref_np = np.asarray(ref)

    def close(label, values):
        values = np.asarray(values)
        _check(values.shape == ref_np.shape and values.dtype == ref_np.dtype, ansatz,
               f"{label} gives {values.dtype} {values.shape}, one at a time {ref_np.dtype} {ref_np.shape}")
        scale = 1.0 + float(np.max(np.abs(ref_np)))
        err = float(np.max(np.abs(values - ref_np)))
        _check(err <= rtol * scale, ansatz, f"{label} differs from one-at-a-time jit by {err:.3g} (> {rtol:g} x {scale:.3g})")

    if eager:
        close("the unjitted log psi", np.concatenate([np.asarray(unjitted)[None], ref_np[1:]]))
    close("jit(vmap)", out["jit(vmap)"])
    o = jax.eval_shape(log_derivatives, ansatz, x)
    p = n_real_parameters(ansatz)
    _check(o.shape == (n, p), ansatz, f"log_derivatives have shape {o.shape}, expected (n, n_real_parameters) = {(n, p)}")
    _check(jnp.iscomplexobj(o) == jnp.iscomplexobj(ref), ansatz, f"log_derivatives are {o.dtype} but log psi is {ref.dtype}")

    if isinstance(ansatz, AbstractConnectedAnsatz):
        close("log_psi_connected(x, xps)[0]", out["log_psi_connected(x, xps)[0]"])
        for lxp in np.asarray(out["log_psi_connected"]):
            close("log_psi_connected(x, xps)[1]", lxp)
    if isinstance(ansatz, AbstractDirectSamplingAnsatz):
        _check_direct_sampling(ansatz, space, out, enumeration)


def _check_direct_sampling(ansatz, space, out, enumeration):
    for c in np.asarray(out["conditionals"]) if "conditionals" in out else ():
        _check(c.ndim == 2 and c.shape[0] == space.size, ansatz,
               f"conditionals have shape {c.shape}, expected (n_sites, n_local_states)")
        # entries of -inf (a local state ruled out by a constraint) are allowed
        c = np.asarray(c)
        top = np.max(c, axis=-1, keepdims=True)
        norm = top[..., 0] + np.log(np.sum(np.exp(c - top), axis=-1))
        _check(np.all(np.abs(norm) <= 1e-9), ansatz, lambda: f"conditionals are not normalised: logsumexp = {norm}")
    samples = out["sample"]
    _check(samples.shape == (8,) + tuple(space.shape), ansatz, f"sample(key, 8) has shape {samples.shape}")
    if isinstance(space, AbstractDiscreteSpace):
        _check(bool(np.all(np.isin(np.asarray(samples), np.asarray(space.local_states)))), ansatz,
               "sample gives values that are not local states")
        if enumeration is not None:
            log_psi = out["log psi on the space"]
            total = float(np.sum(np.exp(2.0 * np.real(np.asarray(log_psi)))))
            _check(abs(total - 1.0) <= 1e-9, ansatz, f"sum_x |psi(x)|^2 = {total!r} over the space, expected 1 (normalised)")
            _, found = enumeration.index(samples)
            _check(found.all(), ansatz, "sample gives configurations outside the space (a constraint is broken)")
