"""The driver protocol (`AbstractDriver`) and typed callbacks (`AbstractCallback`):
a toy driver registered in-process runs under `nqs_core.run` / `resume` with the
core's run directory, and the default loop's stop rules."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import nqs_core
from nqs_core import AbstractCallback, AbstractDriver, StopRun
from nqs_core._config import _driver_tables, required_tables


class ToyState(eqx.Module):
    params: jax.Array
    step: jax.Array


class ToyDriver(AbstractDriver):
    """Gradient descent on `sum (x - 3)^2` (a test driver); `nan_at`: the step whose loss is NaN."""

    objective = "loss"
    label = "toy"

    def __init__(self, n: int = 3, learning_rate: float = 0.1, nan_at: int = -1):
        self.n, self.learning_rate, self.nan_at = n, learning_rate, nan_at
        self.stop_reason = None

    def init(self, key, params=None):
        x = jax.random.normal(key, (self.n,), dtype=jnp.float64) if params is None else params
        return ToyState(x, jnp.asarray(0, dtype=jnp.int64))

    def parameters(self):
        return jnp.zeros((self.n,), dtype=jnp.float64)

    def step(self, state):
        loss = float(jnp.sum((state.params - 3.0) ** 2))
        if int(state.step) == self.nan_at:
            loss = float("nan")
        new = ToyState(state.params - self.learning_rate * 2.0 * (state.params - 3.0), state.step + 1)
        return new, {"step": int(state.step), "loss": loss}

    def evaluate(self, state, n_batches=10):
        return nqs_core.statistics(jnp.full((1, 2), jnp.sum((state.params - 3.0) ** 2))), state

    def summary(self, state):
        return {"x": [float(v) for v in state.params]}


@pytest.fixture
def toy():
    reg = nqs_core.get_registry()
    reg.add("driver", "toy", ToyDriver)
    try:
        yield reg
    finally:
        reg.remove("driver", "toy")


class Recorder(AbstractCallback):
    def __init__(self, stop_at=None, raise_at=None):
        self.events, self.stop_at, self.raise_at = [], stop_at, raise_at

    def on_start(self, driver, state, n_steps):
        self.events.append(("start", int(state.step), n_steps))

    def __call__(self, driver, state, record):
        self.events.append(("step", record["step"]))
        if record["step"] == self.raise_at:
            raise StopRun("enough")
        return False if record["step"] == self.stop_at else None

    def on_end(self, driver, state):
        self.events.append(("end", int(state.step)))


def test_every_registered_driver_implements_the_protocol():
    reg = nqs_core.get_registry()
    names = reg.names("driver")
    assert {"vmc", "phi4_cv", "deuteron"} <= set(names)
    for entry in reg.entries("driver"):
        assert issubclass(entry.obj, AbstractDriver), entry.name
        assert isinstance(entry.obj.objective, str) and entry.obj.label
    assert required_tables(_driver_tables({}, reg)) == ("system", "ansatz", "sampler")  # vmc, the default
    assert required_tables(_driver_tables({"driver": {"name": "deuteron"}}, reg)) == ()
    assert required_tables(_driver_tables({"driver": {"name": "phi4_cv"}}, reg)) == ("system",)


def test_hooks_in_order_and_both_stop_signals(key):
    driver = ToyDriver()
    for kwargs, last in (({"stop_at": 1}, 1), ({"raise_at": 2}, 2)):
        rec = Recorder(**kwargs)
        state = driver.run(driver.init(key), 5, [rec])
        assert rec.events == [("start", 0, 5)] + [("step", i) for i in range(last + 1)] + [("end", last + 1)]
        assert int(state.step) == last + 1 and driver.stop_reason is None
    seen = []
    driver.run(driver.init(key), 2, [lambda d, s, r: seen.append(r["step"])])  # a function is a callback
    assert seen == [0, 1]


def test_callbacks_must_be_typed(key):
    class OldStyle:  # hooks by name only: refused, not silently half-called
        def on_start(self, driver, state, n_steps):
            pass

        def __call__(self, driver, state, record):
            return None

    with pytest.raises(TypeError, match="AbstractCallback"):
        ToyDriver().run(ToyDriver().init(key), 2, [OldStyle()])


def test_non_finite_objective_is_not_applied(key):
    driver = ToyDriver(nan_at=2)
    rec = Recorder()
    s0 = driver.init(key)
    state = driver.run(s0, 5, [rec])
    assert driver.stop_reason == "step 2: the loss is not finite"
    assert int(state.step) == 1  # the state whose parameters gave a finite loss (step 2's came from it)
    assert rec.events[-1] == ("end", 1)


def test_toy_driver_through_run_and_resume(toy, tmp_path):
    config = {"run": {"n_steps": 6, "seed": 4, "output": str(tmp_path), "checkpoint_every": 2}, "driver": {"name": "toy"}}
    full = nqs_core.run(config, progress=False)
    assert full.run_dir.name.startswith("toy-")
    result = json.loads((full.run_dir / "result.json").read_text())
    assert result["step"] == 6 and len(result["x"]) == 3 and result["loss"]["mean"] == pytest.approx(float(full.energy.mean))
    half = nqs_core.run({**config, "run": {**config["run"], "n_steps": 3, "name": "half"}}, progress=False)
    resumed = nqs_core.resume(half.run_dir, n_steps=6, progress=False)
    assert jnp.array_equal(resumed.state.params, full.state.params)
    assert [r["loss"] for r in nqs_core.read_log(resumed.run_dir)] == [r["loss"] for r in nqs_core.read_log(full.run_dir)]
    # init_from reads the parameters through driver.parameters()
    warm = nqs_core.run({**config, "run": {**config["run"], "n_steps": 0, "name": "warm", "init_from": str(full.run_dir)}}, progress=False)
    assert jnp.array_equal(warm.state.params, full.state.params)


def test_toy_driver_divergence_keeps_the_last_good_checkpoint(toy, tmp_path):
    config = {"run": {"n_steps": 6, "seed": 4, "output": str(tmp_path), "name": "nan", "checkpoint_every": 1},
              "driver": {"name": "toy", "nan_at": 3}}
    res = nqs_core.run(config, progress=False)
    assert res.stopped_early and res.stop_reason == "step 3: the loss is not finite" and int(res.state.step) == 2
    assert json.loads((res.run_dir / "checkpoint.json").read_text())["step"] == 2
    assert json.loads((res.run_dir / "result.json").read_text())["stopped_at_nan"] == 3


def test_observables_refused_for_a_driver_that_does_not_measure_them(toy, tmp_path):
    config = {"run": {"n_steps": 1, "output": str(tmp_path), "name": "obs"}, "driver": {"name": "toy"},
              "lattice": {"name": "chain", "length": 4}, "space": {"name": "spin_half"}, "system": {"name": "ising"},
              "observables": {"mz": {"name": "magnetization"}}}
    with pytest.raises(nqs_core.ConfigError, match="the toy driver does not measure \\[observables\\]"):
        nqs_core.run(config, progress=False)
    assert not (tmp_path / "obs").exists()


def test_one_run_loop_with_a_retry_hook():
    """Abstract or final: every registered driver runs the protocol's loop
    (`AbstractDriver.run`); VMC's retries live in the `advance` hook. VMC is a
    sampling driver (what `measure`, the observables and `nqs measure` read)
    and its state a sampling state."""
    registry = nqs_core.get_registry()
    for name in registry.names("driver"):
        cls = registry.get("driver", name).obj
        assert cls.run is AbstractDriver.run, name
    assert issubclass(nqs_core.VMC, nqs_core.AbstractSamplingDriver)
    state = nqs_core.VMCState(None, None, None, None, jnp.asarray(0), None)
    assert isinstance(state, nqs_core.AbstractSamplingState)
    assert nqs_core.VMC.own_guard and not AbstractDriver.own_guard
