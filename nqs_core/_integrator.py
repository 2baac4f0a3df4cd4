"""The integrator protocol: one step of an ordinary differential equation (time evolution)."""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import equinox as eqx


class AbstractIntegrator(eqx.Module):
    """One step of `dy/dt = f(t, y)` for a pytree `y` of real arrays (the
    parameters of a variational state under TDVP), used inside a jitted loop.

    `f(t, y, carry)` returns `(dy/dt, carry, aux)`: `carry` is threaded
    through the stages in order (the sampler's chains and keys), `aux` is a
    pytree of diagnostics of one evaluation. A fixed-step scheme has
    `adaptive = False`; an adaptive one also returns an estimate of the local
    error and accepts or rejects a step and chooses the next step size in `control`.

    **Attributes:** `dt` (the step: fixed, or the first step of an adaptive
    scheme), `order` (class level: the order of convergence of the
    solution), `adaptive` (class level).
    """

    dt: eqx.AbstractVar[float]
    #: order of convergence: the error at a fixed time scales as dt**order
    order: ClassVar[int]
    #: whether `step` returns an error estimate and `control` chooses the step size
    adaptive: ClassVar[bool] = False

    @abc.abstractmethod
    def step(self, f: Callable, t: Any, y: Any, dt: Any, carry: Any) -> tuple[Any, Any, Any, Any]:
        """One step of size `dt` from `(t, y)`.

        **Returns:** `(y_new, carry, error, aux0)`: the new `y`; the carry
        after the last stage; the difference between the solution and its
        embedded lower-order estimate, shaped like `y` (`None` for a
        fixed-step scheme); the `aux` of the first stage (the diagnostics at
        `(t, y)`)."""
        raise NotImplementedError

    def control(self, dt: Any, error_norm: Any, step_norm: Any) -> tuple[Any, Any]:
        """Step-size control after a step of size `dt`: `(accepted, next dt)`
        from the norm of the error estimate and the norm of the step itself
        (both in the metric the driver chooses; TDVP: `||X v||`, the quantum
        geometric tensor's norm). Default: every step accepted, `dt` kept
        (a fixed-step scheme)."""
        return True, dt
