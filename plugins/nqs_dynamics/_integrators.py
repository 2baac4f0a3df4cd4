"""Explicit Runge-Kutta integrators: Euler, Heun, RK4 (fixed step) and the
adaptive Bogacki-Shampine RK23 pair."""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from nqs_core import AbstractIntegrator


class _AbstractExplicitRK(AbstractIntegrator):
    """An explicit Runge-Kutta scheme given by its Butcher tableau (class
    level: `A`, `B`, `C`, and `B_LOW` for the embedded lower-order solution of
    an adaptive pair). Private: the public schemes are final.

    The stages run in a `lax.fori_loop`, so the right-hand side is traced
    (and compiled) once however many stages the scheme has."""

    A: ClassVar[tuple[tuple[float, ...], ...]]
    B: ClassVar[tuple[float, ...]]
    C: ClassVar[tuple[float, ...]]
    B_LOW: ClassVar[tuple[float, ...] | None] = None

    def step(self, f, t, y, dt, carry):
        flat, unravel = ravel_pytree(y)
        s = len(self.C)
        a = np.zeros((s, s))
        for i, row in enumerate(self.A):
            a[i, : len(row)] = row
        a, b, c = (jnp.asarray(v, dtype=flat.dtype) for v in (a, self.B, self.C))
        aux_like = jax.eval_shape(lambda: f(t, y, carry)[2])
        aux_init = jax.tree.map(lambda s_: jnp.zeros(s_.shape, s_.dtype), aux_like)

        def stage(i, state):
            ks, carry, aux0 = state
            yi = flat + dt * (a[i] @ ks)
            k, carry, aux = f(t + c[i] * dt, unravel(yi), carry)
            ks = ks.at[i].set(ravel_pytree(k)[0].astype(flat.dtype))
            aux0 = jax.tree.map(lambda old, new: jnp.where(i == 0, new, old), aux0, aux)
            return ks, carry, aux0

        ks = jnp.zeros((s, flat.shape[0]), flat.dtype)
        ks, carry, aux0 = jax.lax.fori_loop(0, s, stage, (ks, carry, aux_init))
        y_new = unravel(flat + dt * (b @ ks))
        error = None
        if self.B_LOW is not None:
            b_low = jnp.asarray(self.B_LOW, dtype=flat.dtype)
            error = unravel(dt * ((b - b_low) @ ks))
        return y_new, carry, error, aux0


def _check_dt(dt):
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    return float(dt)


class Euler(_AbstractExplicitRK):
    """The explicit Euler method (first order): `y += dt f(t, y)`; one
    evaluation per step. For tests of convergence and cheap exploration.

    **Arguments:** `dt`, the fixed step."""

    dt: float = 0.01
    order: ClassVar[int] = 1
    A: ClassVar = ((),)
    B: ClassVar = (1.0,)
    C: ClassVar = (0.0,)

    def __check_init__(self):
        _check_dt(self.dt)


class Heun(_AbstractExplicitRK):
    """Heun's method (the explicit trapezoidal rule, second order); two
    evaluations per step.

    **Arguments:** `dt`, the fixed step."""

    dt: float = 0.01
    order: ClassVar[int] = 2
    A: ClassVar = ((), (1.0,))
    B: ClassVar = (0.5, 0.5)
    C: ClassVar = (0.0, 1.0)

    def __check_init__(self):
        _check_dt(self.dt)


class RK4(_AbstractExplicitRK):
    """The classical fourth-order Runge-Kutta method; four evaluations per
    step. The default of the TDVP driver.

    **Arguments:** `dt`, the fixed step."""

    dt: float = 0.01
    order: ClassVar[int] = 4
    A: ClassVar = ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0))
    B: ClassVar = (1 / 6, 1 / 3, 1 / 3, 1 / 6)
    C: ClassVar = (0.0, 0.5, 0.5, 1.0)

    def __check_init__(self):
        _check_dt(self.dt)


class RK23(_AbstractExplicitRK):
    """The adaptive Bogacki-Shampine pair (Bogacki & Shampine 1989): a
    third-order solution with an embedded second-order one; four evaluations
    per step (the last stage is not reused: under Monte Carlo the next step
    draws fresh samples anyway).

    A step is accepted when `||e|| <= atol + rtol ||delta y||`, with `e` the
    difference of the two solutions and the norms those the driver gives (the
    TDVP driver: `||X v||`, the norm in the metric `S`, i.e. the change of the
    normalised state, Schmitt & Heyl 2020); the next step is
    `dt * clip(safety * ratio**(-1/3), min_factor, max_factor)`, within
    `[dt_min, dt_max]`.

    **Arguments:**

    - `dt`: the first step.
    - `rtol`, `atol`: relative and absolute tolerance (defaults 1e-4, 1e-6).
    - `dt_min`, `dt_max`: bounds of the step (a step that needs less than
      `dt_min` is taken anyway and flagged: the record's `dt_at_minimum`).
    - `safety`, `min_factor`, `max_factor`: the controller (0.9, 0.2, 5).
    """

    dt: float = 0.01
    rtol: float = 1e-4
    atol: float = 1e-6
    dt_min: float = 1e-8
    dt_max: float = 1.0
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 5.0
    order: ClassVar[int] = 3
    adaptive: ClassVar[bool] = True
    A: ClassVar = ((), (0.5,), (0.0, 0.75), (2 / 9, 1 / 3, 4 / 9))
    B: ClassVar = (2 / 9, 1 / 3, 4 / 9, 0.0)
    B_LOW: ClassVar = (7 / 24, 1 / 4, 1 / 3, 1 / 8)
    C: ClassVar = (0.0, 0.5, 0.75, 1.0)

    def __check_init__(self):
        _check_dt(self.dt)
        fields = {
            "rtol": self.rtol, "atol": self.atol, "dt_min": self.dt_min, "dt_max": self.dt_max,
            "safety": self.safety, "min_factor": self.min_factor, "max_factor": self.max_factor,
        }
        for name, v in fields.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.rtol == 0 and self.atol == 0:
            raise ValueError("rtol and atol are both 0: no step would ever be accepted")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min = {self.dt_min}, dt_max = {self.dt_max}")
        if not 0 < self.min_factor <= 1 <= self.max_factor:
            raise ValueError("need 0 < min_factor <= 1 <= max_factor")
        if not 0 < self.safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {self.safety}")

    def control(self, dt, error_norm, step_norm):
        tol = self.atol + self.rtol * step_norm
        ratio = error_norm / tol
        factor = jnp.where(ratio > 0, self.safety * ratio ** (-1.0 / 3.0), self.max_factor)
        factor = jnp.clip(factor, self.min_factor, self.max_factor)
        new = jnp.clip(dt * factor, self.dt_min, self.dt_max)
        at_min = dt <= self.dt_min * (1 + 1e-12)
        accepted = (ratio <= 1.0) | at_min
        return accepted, new


