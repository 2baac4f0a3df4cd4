"""optax optimizers by name, schedules and norm clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nqs_optim import adam, make_schedule, sgd


def test_sgd_is_plain_step_and_clip_caps_the_norm():
    params = {"w": jnp.zeros(4)}
    direction = {"w": jnp.array([3.0, 4.0, 0.0, 0.0])}  # norm 5
    tx = sgd(0.1)
    upd, _ = tx.update(direction, tx.init(params), params)
    np.testing.assert_allclose(upd["w"], -0.1 * direction["w"])
    tx = sgd(0.1, clip_norm=1.0)
    upd, _ = tx.update(direction, tx.init(params), params)
    assert float(optax.tree.norm(upd)) == pytest.approx(0.1)
    upd, _ = tx.update({"w": direction["w"] / 10}, tx.init(params), params)  # below the cap: untouched
    np.testing.assert_allclose(upd["w"], -0.01 * direction["w"])
    with pytest.raises(ValueError, match="clip_norm"):
        sgd(0.1, clip_norm=0.0)


def test_schedules_by_name():
    # optax's schedules mix Python floats with the int32 step count, which the
    # suite's strict promotion forbids; users run jax's standard promotion
    with jax.numpy_dtype_promotion("standard"):
        _check_schedules()


def _check_schedules():
    sched = make_schedule({"name": "warmup_cosine_decay", "init_value": 0.0, "peak_value": 0.02, "warmup_steps": 10, "decay_steps": 100})
    assert float(sched(0)) == 0.0 and float(sched(10)) == pytest.approx(0.02)
    assert make_schedule(0.05) == 0.05
    with pytest.raises(ValueError, match="unknown field"):
        make_schedule({"name": "cosine_decay", "init": 0.1})
    tx = adam({"name": "exponential_decay", "init_value": 1e-3, "transition_steps": 10, "decay_rate": 0.5})
    params = {"w": jnp.ones(2)}
    tx.update(params, tx.init(params), params)
