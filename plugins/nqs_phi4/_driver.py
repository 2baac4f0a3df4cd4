"""The `phi4_cv` driver: neural control-variate training under `nqs run` (one step = one epoch)."""

from __future__ import annotations

import functools
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nqs_core

from ._action import Phi4Action
from ._cv import ControlVariate, CVNetwork, _epoch, fit_output_layer, linear_start, paper_schedule, variance_ratio
from ._observables import correlator_at, load_configurations


@functools.lru_cache(maxsize=None)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    """Adam at `learning_rate` (0: the schedule of Eq. 16), one object per rate, so
    that drivers built again (`nqs resume`) reuse the compiled epoch."""
    return optax.adam(learning_rate if learning_rate > 0 else paper_schedule())


class CVTrainState(eqx.Module):
    """Everything that changes while a control variate trains (and is checkpointed).

    **Fields:** `params` (the trainable arrays of the `ControlVariate`: network
    weights and `mu`), `opt_state` (Adam), `key` (the shuffling key of the next
    epoch), `phi` (all configurations `(N, L0, L1)`: the first `n_train` train,
    the rest are held out), `step` (epochs done).
    """

    params: Any
    opt_state: Any
    key: jax.Array
    phi: jax.Array
    step: jax.Array


class ControlVariateDriver(nqs_core.AbstractDriver):
    """Train a neural control variate for the correlator `O(t)` of lattice phi^4 by
    Adam on the loss of Bedaque and Oh 2024, Eq. 13; one step is one epoch.

    The configurations come from `configurations` (an npz file of `nqs phi4
    generate`) or, when that is empty, from the `[sampler]` (`hmc` or
    `metropolis_field`): one `sample` call of `n_samples` configurations after its
    thermalisation, with the key of `[run] seed`, as `nqs phi4 generate --seed`.
    Training uses the same seed as `nqs phi4 train --seed`, so `nqs run` and the
    two commands reach the same numbers. The final estimate is the held-out loss
    (configurations `n_train` onwards); `result.json` adds the raw and improved
    correlators and `sigma_raw / sigma_CV` on them.

    **Arguments:**

    - `system`: the `phi4` action (`[system] name = "phi4"`).
    - `sampler`: the sampler that draws the configurations (when `configurations` is empty).
    - `configurations`: npz file of configurations `(N, L0, L1)`; empty: sample them.
    - `n_train`: the first `n_train` configurations train, the rest are held out.
    - `t`: the time separation of `O(t)` (default `-1`: `L0 / 2`).
    - `hidden`: hidden widths of `g0` (`[]`: a linear control variate).
    - `odd`, `activation`, `reflect`: the `CVNetwork`.
    - `start`: `"linear"` (start at the best linear control variate) or `"random"`.
    - `refit_every`: re-solve the output layer exactly every k epochs (0: plain Adam).
    - `batch_size`: configurations per gradient step.
    - `delta`: the L2 regularisation of Eq. 13.
    - `learning_rate`: Adam's rate; 0 selects the schedule of Eq. 16.
    """

    objective = "loss"
    label = "phi4 CV"

    def __init__(
        self,
        system: Phi4Action,
        sampler: nqs_core.AbstractSampler | None = None,
        configurations: str = "",
        n_train: int = 1000,
        t: int = -1,
        hidden: tuple[int, ...] = (16,),
        odd: bool = True,
        activation: str = "arcsinh",
        reflect: bool = False,
        start: str = "linear",
        refit_every: int = 5,
        batch_size: int = 4,
        delta: float = 1e-3,
        learning_rate: float = 1e-4,
    ):
        if not isinstance(system, Phi4Action):
            raise TypeError(f"the phi4_cv driver needs the phi4 action ([system] name = \"phi4\"), got {type(system).__name__}")
        if not configurations and sampler is None:
            raise ValueError("the phi4_cv driver needs configurations: a [sampler] table (e.g. name = \"hmc\") or [driver] configurations = \"file.npz\"")
        if start not in ("linear", "random"):
            raise ValueError(f"start must be 'linear' or 'random', got {start!r}")
        L0 = system.shape[0]
        t = L0 // 2 if t == -1 else t
        if not 0 <= t <= L0 // 2:
            raise ValueError(f"t must be in [0, {L0 // 2}] (or -1 for L0/2), got {t}")
        self.system, self.sampler, self.configurations = system, sampler, str(configurations)
        self.n_train = nqs_core.check_int("n_train", n_train, minimum=1)
        self.t = int(t)
        self.hidden, self.odd, self.activation, self.reflect = tuple(int(h) for h in hidden), bool(odd), activation, bool(reflect)
        self.start = start
        self.refit_every = nqs_core.check_int("refit_every", refit_every, minimum=0)
        self.batch_size = nqs_core.check_int("batch_size", batch_size, minimum=1)
        self.delta = float(delta)
        if learning_rate < 0:
            raise ValueError(f"learning_rate must be >= 0 (0: the schedule of Eq. 16), got {learning_rate}")
        self.optimizer = _adam(float(learning_rate))
        template = ControlVariate(system, self._network(jax.random.PRNGKey(0)), self.t)
        self._params0, self.static = eqx.partition(template, eqx.is_inexact_array)
        self.stop_reason = None

    def _network(self, key) -> CVNetwork:
        return CVNetwork(*self.system.shape, hidden=self.hidden, odd=self.odd, activation=self.activation, reflect=self.reflect, key=key)

    def run_key(self, seed: int) -> jax.Array:
        """`PRNGKey(seed)`: the key of `nqs phi4 generate --seed` and `nqs phi4 train --seed`."""
        return jax.random.PRNGKey(seed)

    def parameters(self) -> Any:
        return self._params0

    def configurations_of(self, key: jax.Array) -> np.ndarray:
        """All configurations `(N, L0, L1)`: read from `configurations`, or sampled
        as `generate_configurations` does (the sampler's `init` with `key`, one `sample` call)."""
        if self.configurations:
            phi, _ = load_configurations(self.configurations)
            if phi.shape[1:] != self.system.shape:
                raise ValueError(f"the configurations in {self.configurations} are {phi.shape[1:]}, the action is {self.system.shape}")
            return phi
        dist = nqs_core.BoltzmannDistribution(self.system)
        samples, _, _ = self.sampler.sample(dist, self.sampler.init(dist, key))
        samples = np.asarray(jax.block_until_ready(samples))
        return samples.reshape((-1,) + self.system.shape)[: self.sampler.n_samples]

    def init(self, key: jax.Array, params: Any = None) -> CVTrainState:
        """The configurations, the initial network (as `transfer_train` for one
        slice: initial weights, `mu` at the training mean of `O(t)`, the linear
        start, the first exact output-layer fit) and a fresh Adam state; with
        `params`, those parameters instead of the initial network."""
        phi = self.configurations_of(key)
        if not 1 <= self.n_train < phi.shape[0]:
            raise ValueError(f"n_train must be in [1, {phi.shape[0] - 1}] (the rest is held out), got {self.n_train}")
        phi = jnp.asarray(phi, dtype=jnp.float64)
        train = phi[: self.n_train]
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size must be in [1, n_train = {self.n_train}], got {self.batch_size}")
        key, sub = jax.random.split(key)
        mu0 = float(np.mean(np.asarray(correlator_at(train, self.t))))
        cv = ControlVariate(self.system, self._network(sub), self.t, mu=mu0)
        key, sub = jax.random.split(key)
        if params is not None:
            cv = eqx.combine(params, self.static)
        elif self.start == "linear":
            cv = linear_start(cv, train, self.delta, key=sub)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts with floats
            opt_state = self.optimizer.init(eqx.filter(cv, eqx.is_inexact_array))
        if self.refit_every:
            cv = fit_output_layer(cv, train, self.delta)
        return CVTrainState(eqx.filter(cv, eqx.is_inexact_array), opt_state, sub, phi, jnp.asarray(0, dtype=jnp.int64))

    def model(self, state: CVTrainState) -> ControlVariate:
        """The control variate with the parameters of `state`."""
        return eqx.combine(state.params, self.static)

    def step(self, state: CVTrainState) -> tuple[CVTrainState, dict[str, Any]]:
        """One epoch over the shuffled training set (and the exact output-layer
        fit every `refit_every` epochs); the record's `loss` is the epoch's mean."""
        t0 = time.perf_counter()
        train = state.phi[: self.n_train]
        key, sub = jax.random.split(state.key)
        with jax.numpy_dtype_promotion("standard"):
            params, opt_state, loss = _epoch(state.params, self.static, state.opt_state, self.optimizer, train, sub, self.delta, self.batch_size)
        epoch = int(state.step) + 1
        if self.refit_every and epoch % self.refit_every == 0:
            params = eqx.filter(fit_output_layer(eqx.combine(params, self.static), train, self.delta), eqx.is_inexact_array)
        record = {"step": int(state.step), "epoch": epoch, "loss": float(loss), "step_time": time.perf_counter() - t0}
        return CVTrainState(params, opt_state, key, state.phi, state.step + 1), record

    def evaluate(self, state: CVTrainState, n_batches: int = 10) -> tuple[nqs_core.Stats, CVTrainState]:
        """The loss of Eq. 13 without its regulariser, `(O - f - mu)^2`, on the held-out configurations."""
        cv = self.model(state)
        held = state.phi[self.n_train :]
        r = cv.improved(held) - cv.mu
        return nqs_core.statistics(r * r), state

    def summary(self, state: CVTrainState) -> dict[str, Any]:
        """On the held-out configurations: `t`, the raw and improved `O(t)` (mean
        and standard error) and `variance_ratio` (`sigma_raw / sigma_CV`, what
        `nqs phi4 train` prints)."""
        cv = self.model(state)
        held = state.phi[self.n_train :]
        raw, imp = np.asarray(cv.observable(held)), np.asarray(cv.improved(held))
        n = raw.shape[0]
        return {
            "t": self.t,
            "n_held_out": n,
            "correlator_raw": {"mean": float(raw.mean()), "error": float(raw.std() / np.sqrt(n))},
            "correlator_cv": {"mean": float(imp.mean()), "error": float(imp.std() / np.sqrt(n))},
            "variance_ratio": variance_ratio(cv, held),
        }
