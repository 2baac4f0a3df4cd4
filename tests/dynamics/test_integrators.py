"""The integrators of the TDVP driver: order of convergence on a linear
equation against its closed-form solution, the adaptive controller, and the
registry/TOML build (issue 30)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import nqs_core
from nqs_dynamics import RK4, RK23, Euler, Heun

# a damped oscillator y' = A y: the exact solution is expm(A t) y0
A = np.array([[0.0, 1.0], [-1.0, -0.1]])
Y0 = np.array([1.0, 0.0])


def _solve(integrator, n):
    a = jnp.asarray(A)

    def f(t, y, carry):
        return a @ y, carry + 1, {"y0": y[0]}

    dt = 1.0 / n

    @jax.jit
    def run(y):
        def body(i, s):
            y, c = s
            y, c, _, _ = integrator.step(f, i * dt, y, dt, c)
            return y, c

        return jax.lax.fori_loop(0, n, body, (y, 0))

    y, calls = run(jnp.asarray(Y0))
    return np.asarray(y), int(calls)


@pytest.mark.parametrize("cls, order, stages", [(Euler, 1, 1), (Heun, 2, 2), (RK4, 4, 4), (RK23, 3, 4)])
def test_error_at_t1_scales_with_the_order(cls, order, stages):
    exact = expm(A) @ Y0
    errors = []
    for n in (10, 20, 40):
        y, calls = _solve(cls(dt=1.0 / n), n)
        assert calls == stages * n  # every stage evaluates f once, the carry goes through all
        errors.append(np.linalg.norm(y - exact))
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert cls.order == order
    np.testing.assert_allclose(slopes, order, atol=0.1)


def test_embedded_error_of_rk23_is_second_order_and_the_controller_accepts_small_errors():
    a = jnp.asarray(A)

    def f(t, y, c):
        return a @ y, c, {}

    integ = RK23(dt=0.1, rtol=1e-6, atol=1e-9)
    errs = []
    for dt in (0.1, 0.05):
        _, _, err, _ = integ.step(f, 0.0, jnp.asarray(Y0), dt, 0)
        errs.append(float(jnp.linalg.norm(err)))
    # local error of the embedded second-order solution: dt^3
    assert abs(np.log2(errs[0] / errs[1]) - 3.0) < 0.2
    ok, new = integ.control(0.1, 1e-12, 1.0)
    assert bool(ok) and float(new) == pytest.approx(0.5)  # max_factor 5
    ok, new = integ.control(0.1, 1.0, 1.0)
    assert not bool(ok) and float(new) == pytest.approx(0.02)  # min_factor 0.2


def test_integrators_are_registered_components_with_checked_fields():
    registry = nqs_core.get_registry()
    assert {"euler", "heun", "rk4", "rk23"} <= set(registry.names("integrator"))
    assert registry.get("integrator", "rk4").plugin == "dynamics"
    with pytest.raises(ValueError, match="dt must be a positive number"):
        RK4(dt=0.0)
    with pytest.raises(ValueError, match="rtol and atol are both 0"):
        RK23(rtol=0.0, atol=0.0)
