"""Preconditioners: gradient information -> update direction (the protocol and the identity)."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._ansatz import AbstractAnsatz
from ._estimator import AbstractEstimator, Estimate
from ._samples import Samples, sample_array
from ._system import AbstractHamiltonian
from ._tree import HolomorphicLayout, parameters, real_ravel


class StepContext(eqx.Module):
    """What a preconditioner sees at one optimisation step.

    **Fields:**

    - `system`: the Hamiltonian being minimised.
    - `ansatz`: the variational state with the current parameters.
    - `samples`: the sampler's output of this step: configurations
      `(n_chains, n_per_chain, *shape)`, or `nqs_core.Samples` with weights
      (pass it on to the estimator as it is; `flat_samples` gives the
      configurations).
    - `estimate`: the estimator's result on them (local values, statistics).
    - `estimator`: the (scheduled) estimator of this step, which gives the
      gradient (`estimator.gradient`) and the natural-gradient data.
    """

    system: AbstractHamiltonian
    ansatz: AbstractAnsatz
    samples: Array | Samples
    estimate: Estimate
    estimator: AbstractEstimator

    def gradient(self):
        """The energy gradient, shaped like the parameters."""
        return self.estimator.gradient(self.ansatz, self.samples, self.estimate)

    @property
    def flat_samples(self) -> Array:
        """The configurations as one batch `(n_samples, *shape)` (without weights)."""
        x = sample_array(self.samples)
        return x.reshape((-1,) + x.shape[self.estimate.local_values.ndim :])


class AbstractPreconditioner(eqx.Module):
    """Maps the sampled gradient information to an update direction.

    The direction is shaped like the parameters and plays the role of a
    gradient: it is handed to an optax optimizer, which moves *against* it
    (`sgd(lr)` then gives `theta <- theta - lr * direction`). The identity
    preconditioner returns the energy gradient; SR returns
    `(S + lambda I)^{-1} grad E`.

    `init` sees the initial ansatz and example samples shaped like a step's
    (so a state that depends on the network structure and the batch, such as
    KFAC's curvature blocks, is built there and checkpoints match the
    template); `__call__` gets the whole step in a `StepContext`.
    """

    @abc.abstractmethod
    def init(self, ansatz: AbstractAnsatz, samples: Array) -> Any:
        """Initial state (a pytree; `None` for stateless preconditioners).

        **Arguments:** the initial `ansatz` and `samples` shaped like those of
        one step, `(n_chains, n_per_chain, *shape)` (valid configurations, not
        necessarily from the target distribution).

        **Raises:** `ValueError` / `TypeError` for a problem the preconditioner
        cannot handle (e.g. a metric that needs continuous configurations).
        """
        raise NotImplementedError

    @abc.abstractmethod
    def __call__(self, context: StepContext, state: Any) -> tuple[Any, Any, dict[str, Array]]:
        """`(direction, new_state, info)`."""
        raise NotImplementedError

    def check_system(self, system: AbstractHamiltonian) -> None:
        """Refuse a system this preconditioner cannot work with, when the
        config is built (before anything runs or is written); the default
        accepts every system.

        **Raises:** `ValueError` naming the problem and what would work (the
        CLI shows it as one line, exit code 2).
        """

    def memory_estimate(self, n_samples: int, n_params: int, value_bytes: int) -> float:
        """Bytes of this preconditioner's work in one step on one process,
        beyond the parameters and the gradient (log-derivative matrices, a
        `P x P` or sample-space matrix and its factor). The VMC driver refuses,
        when it is built, a step that would need more than the memory limit
        (`nqs_core.check_memory`), before anything is compiled or allocated.

        **Arguments:** `n_samples` samples per step on this process (0: the
        log-derivative matrix is counted elsewhere, e.g. by a full sum),
        `n_params` real parameters, `value_bytes` per log-derivative (8 real,
        16 complex). Default: 0 (no more than the gradient).
        """
        return 0.0


class IdentityPreconditioner(AbstractPreconditioner):
    """No preconditioning: the direction is the energy gradient."""

    def init(self, ansatz, samples):
        return None

    def __call__(self, context, state):
        return context.gradient(), state, {}


class AbstractNaturalGradient(AbstractPreconditioner):
    """A natural-gradient solver: the regularised solution of `S delta = F`.

    With the centred, scaled log-derivative rows `Y` (shape `(n, P)`, one row
    per sample of this process, `P` real parameters: complex parameters count
    as two real ones) and a vector `eps` (shape `(n,)`), the quantum geometric
    tensor is `S = Re[Y^H Y]` and the force `F = Re[Y^T eps]` (Rende et al.
    2024, Eqs. 2-8; under MPI both are sums over the rows of every process).
    `solve` returns a regularised `S^{-1} F`. The same contract serves two drivers:

    - VMC uses it as a preconditioner (`__call__`): `eps` is the estimator's
      `-2 (E_loc - E)^* / sqrt(M)`, and the direction `-delta` is handed to
      the optimizer (stochastic reconfiguration); for a holomorphic ansatz
      through `solve_holomorphic`.
    - TDVP solves the equation of motion with it: `eps = (E_loc - E)^* i / sqrt(M)`
      for real time and `-(E_loc - E)^* / sqrt(M)` for imaginary time, and
      `delta` is the parameter velocity `d theta / dt` (McLachlan's principle
      with real parameters).

    SR solves in parameter space (`P x P`), SRt and MinSR in sample space
    (`2n x 2n`); with the same regularisation they give the same `delta`.
    """

    @abc.abstractmethod
    def solve(self, y: Array, eps: Array) -> tuple[Array, dict[str, Array]]:
        """The regularised solution of `S delta = F`.

        **Arguments:**

        - `y`: shape `(n, P)`, real or complex: this process's rows of the
          centred log-derivatives, scaled (`O_c / sqrt(M)`, or `sqrt(w) O_c`
          for weighted samples).
        - `eps`: shape `(n,)`, real or complex, scaled like `y`.

        **Returns:** `(delta, info)`: `delta` of shape `(P,)` (real, in
        `nqs_core.real_ravel` order, the same on every process) and a dict of
        scalar diagnostics; a solver that truncates or damps eigenvalues
        reports `"effective_rank"` (the number of directions kept, or the sum
        of the damping factors)."""
        raise NotImplementedError

    def solve_holomorphic(self, a: Array, eps: Array) -> tuple[Array, dict[str, Array]]:
        """`solve` for a holomorphic ansatz (`AbstractAnsatz.holomorphic`),
        in complex form.

        With `A` the centred, scaled derivatives by the complex parameters
        (`d log psi / d theta_c`, shape `(n, P_c)`), the real-parameter rows
        are `Y = [A, i A]` (`nqs_core.HolomorphicLayout`), `S` is the real
        form of the Hermitian `G = A^H A` and `S delta = F` is the complex
        equation `G z = A^H eps^*` with `delta = [Re z; Im z]`: a `P_c x P_c`
        complex problem instead of a `2 P_c x 2 P_c` real one (NetKet's
        `holomorphic=True`).

        **Arguments:** `a` (complex, `(n, P_c)`), `eps` as in `solve`.

        **Returns:** `(z, info)`, `z` complex of shape `(P_c,)`: the same
        solution as `solve([a, i a], eps)` (`delta = [Re z; Im z]`), and the
        same diagnostics (an `"effective_rank"` counts real directions).

        Default: exactly that, through `solve` on the real form (correct for
        every solver); a solver overrides it with a cheaper complex solve.
        """
        pc = a.shape[1]
        delta, info = self.solve(jnp.concatenate([a, 1j * a], axis=1), eps)
        return jax.lax.complex(delta[:pc], delta[pc:]), info

    def __call__(self, context, state):
        """The preconditioner: the direction `-delta` for the energy gradient."""
        y, eps = context.estimator.natural_gradient_data(context.ansatz, context.samples, context.estimate)
        params = parameters(context.ansatz)[0]
        if context.ansatz.holomorphic:  # Y = [A, i A]: the complex form (solve_holomorphic)
            layout = HolomorphicLayout(params)
            z, info = self.solve_holomorphic(layout.complex_columns(y), eps)
            delta = layout.real_vector(z)
        else:
            delta, info = self.solve(y, eps)
        _, unravel = real_ravel(params)
        return unravel(-delta), state, info
