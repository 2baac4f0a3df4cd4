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

from ._system import Phi4Action
from ._cv import ControlVariate, CVNetwork, variance_ratio
from ._observables import correlator_at, load_configurations
from ._train import _epoch, fit_output_layer, linear_start, paper_schedule


@functools.lru_cache(maxsize=None)
def _adam(learning_rate: float, decay: str = "constant", n_updates: int = 1) -> optax.GradientTransformation:
    """Adam at `learning_rate` (0: the schedule of Eq. 16), or with `decay =
    "cosine"` from `learning_rate` to `learning_rate / 100` over `n_updates`
    gradient steps; one object per argument set, so that drivers built again
    (`nqs resume`) reuse the compiled epoch."""
    if learning_rate <= 0:
        return optax.adam(paper_schedule())
    if decay == "cosine":
        return optax.adam(optax.cosine_decay_schedule(learning_rate, max(n_updates, 1), alpha=0.01))
    return optax.adam(learning_rate)


class CVTrainState(eqx.Module):
    """Everything that changes while control variates train (and is checkpointed).

    **Fields:** `params` (the trainable arrays of the current slice's
    `ControlVariate`: network weights and `mu`), `opt_state` (Adam), `key` (the
    shuffling key of the next epoch), `phi` (all configurations `(N, L0, L1)`: the
    first `n_train` train, the rest are held out), `step` (epochs done, over all
    slices), `slice_key` (the key of the next slice), `done` (the parameter
    arrays of every slice, each stacked along a leading slice axis; set when a
    slice finishes).
    """

    params: Any
    opt_state: Any
    key: jax.Array
    phi: jax.Array
    step: jax.Array
    slice_key: jax.Array
    done: Any


class ControlVariateDriver(nqs_core.AbstractDriver):
    """Train a neural control variate for the correlator `O(t)` of lattice phi^4 by
    Adam on the loss of Bedaque and Oh 2024, Eq. 13; one step is one epoch.
    With `all_t`, one control variate per `t = L0/2 .. 0`, each starting from the
    previous one (transfer training, Sec. III): `epochs` epochs for the first
    slice, `epochs_transfer` for every later one, `[run] n_steps` at most their sum.

    The configurations come from `configurations` (an npz file of `nqs phi4
    generate`) or, when that is empty, from the `[sampler]` (`hmc` or
    `metropolis_field`): one `sample` call of `n_samples` configurations after its
    thermalisation, with the key of `[run] seed`, as `nqs phi4 generate --seed`.
    `nqs phi4 train` is a config builder over this driver (its `--seed` is
    `[run] seed`), so `nqs run` and the two commands reach the same numbers. The final estimate is the held-out loss
    (configurations `n_train` onwards); `result.json` adds the raw and improved
    correlators and `sigma_raw / sigma_CV` on them.

    **Arguments:**

    - `system`: the `phi4` action (`[system] name = "phi4"`).
    - `sampler`: the sampler that draws the configurations (when `configurations` is empty).
    - `configurations`: npz file of configurations `(N, L0, L1)`; empty: sample them.
    - `n_train`: the first `n_train` configurations train, the rest are held out.
    - `t`: the time separation of `O(t)` (default `-1`: `L0 / 2`; not with `all_t`).
    - `all_t`: transfer training over `t = L0/2 .. 0` (as `nqs phi4 train --all-t`).
    - `epochs`, `epochs_transfer`: with `all_t`, the epochs of the first and of every later slice.
    - `hidden`: hidden widths of `g0` (`[]`: a linear control variate).
    - `odd`, `activation`, `reflect`: the `CVNetwork`.
    - `start`: `"linear"` (start at the best linear control variate) or `"random"`.
    - `refit_every`: re-solve the output layer exactly every k epochs (0: plain Adam).
    - `batch_size`: configurations per gradient step.
    - `delta`: the L2 regularisation of Eq. 13.
    - `learning_rate`: Adam's rate; 0 selects the schedule of Eq. 16.
    - `lr_decay`: `"constant"`, or `"cosine"`: from `learning_rate` to
      `learning_rate / 100` over each slice's epochs (`epochs` for the first
      slice, also without `all_t`; `epochs_transfer` for every later one), a
      fresh schedule per slice.
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
        all_t: bool = False,
        epochs: int = 100,
        epochs_transfer: int = 20,
        hidden: tuple[int, ...] = (16,),
        odd: bool = True,
        activation: str = "arcsinh",
        reflect: bool = False,
        start: str = "linear",
        refit_every: int = 5,
        batch_size: int = 4,
        delta: float = 1e-3,
        learning_rate: float = 1e-4,
        lr_decay: str = "constant",
    ):
        if not isinstance(system, Phi4Action):
            raise TypeError(f"the phi4_cv driver needs the phi4 action ([system] name = \"phi4\"), got {type(system).__name__}")
        if not configurations and sampler is None:
            raise ValueError("the phi4_cv driver needs configurations: a [sampler] table (e.g. name = \"hmc\") or [driver] configurations = \"file.npz\"")
        if start not in ("linear", "random"):
            raise ValueError(f"start must be 'linear' or 'random', got {start!r}")
        L0 = system.shape[0]
        if all_t and t != -1:
            raise ValueError("all_t trains every t = L0/2 .. 0; leave t out")
        t = L0 // 2 if t == -1 else t
        if not 0 <= t <= L0 // 2:
            raise ValueError(f"t must be in [0, {L0 // 2}] (or -1 for L0/2), got {t}")
        self.ts = tuple(range(L0 // 2, -1, -1)) if all_t else (int(t),)
        if all_t:
            first = nqs_core.check_int("epochs", epochs, minimum=1)
            later = nqs_core.check_int("epochs_transfer", epochs_transfer, minimum=1)
            self.epochs = (first,) + (later,) * (len(self.ts) - 1)
        else:  # one slice, as long as the run
            self.epochs = (None,)
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
        if lr_decay not in ("constant", "cosine"):
            raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {lr_decay!r}")
        decay_epochs = (nqs_core.check_int("epochs", epochs, minimum=1),) + tuple(self.epochs[1:])
        #: Adam of every slice (one object when the rate is constant)
        self.optimizers = tuple(
            _adam(float(learning_rate), lr_decay, n * (self.n_train // self.batch_size)) for n in decay_epochs
        )
        network = self._network(jax.random.PRNGKey(0))
        parts = [eqx.partition(ControlVariate(system, network, tt), eqx.is_inexact_array) for tt in self.ts]
        self.statics = [static for _, static in parts]
        # t is static metadata of the parameter (and Adam moment) trees: one structure per slice
        self._treedefs = [jax.tree.structure(params) for params, _ in parts]
        with jax.numpy_dtype_promotion("standard"):
            self._opt_treedefs = [jax.tree.structure(opt.init(params)) for opt, (params, _) in zip(self.optimizers, parts)]
        self._params0 = eqx.filter(ControlVariate(system, network, self.t), eqx.is_inexact_array)
        self.stop_reason = None

    def _network(self, key) -> CVNetwork:
        return CVNetwork(*self.system.shape, hidden=self.hidden, odd=self.odd, activation=self.activation, reflect=self.reflect, key=key)

    def run_key(self, seed: int) -> jax.Array:
        """`PRNGKey(seed)`: the key of `nqs phi4 generate --seed` and `nqs phi4 train --seed`."""
        return jax.random.PRNGKey(seed)

    def parameters(self) -> Any:
        return self._params0

    def check_steps(self, n_steps: int) -> None:
        """With `all_t`, `n_steps` may not exceed the epochs of all slices."""
        if self.epochs[0] is not None and n_steps > sum(self.epochs):
            raise ValueError(f"n_steps = {n_steps} is more than the {sum(self.epochs)} epochs of the {len(self.ts)} slices "
                             "(epochs + epochs_transfer per later slice)")

    def _slice(self, step: int) -> tuple[int, int]:
        """`(slice index, epochs of that slice before step)` of the epoch `step` (0-based)."""
        start = 0
        for i, n in enumerate(self.epochs):
            if n is None or step < start + n or i == len(self.epochs) - 1:
                return i, step - start
            start += n
        raise AssertionError("unreachable")

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
            cv = eqx.combine(params, self.statics[0])
        elif self.start == "linear":
            cv = linear_start(cv, train, self.delta, key=sub)
        params, opt_state = self._start_slice(cv, train, 0)
        done = tuple(jnp.zeros((len(self.ts),) + a.shape, a.dtype) for a in jax.tree.leaves(params))
        return CVTrainState(params, opt_state, sub, phi, jnp.asarray(0, dtype=jnp.int64), key, done)

    def _start_slice(self, cv: ControlVariate, train, i: int) -> tuple[Any, Any]:
        """A fresh Adam state and the first exact output-layer fit (as `train_control_variate`)."""
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts with floats
            opt_state = self.optimizers[i].init(eqx.filter(cv, eqx.is_inexact_array))
        if self.refit_every:
            cv = fit_output_layer(cv, train, self.delta)
        return eqx.filter(cv, eqx.is_inexact_array), opt_state

    def _of_slice(self, params, i: int):
        """`params` in the structure of slice `i` (the time separation `t` is static
        metadata of the tree: a checkpoint read into another slice's template has it wrong)."""
        return jax.tree.unflatten(self._treedefs[i], jax.tree.leaves(params))

    def model(self, state: CVTrainState) -> ControlVariate:
        """The control variate of the current slice (the one the next epoch trains) with the parameters of `state`."""
        i = self._slice(int(state.step))[0]
        return eqx.combine(self._of_slice(state.params, i), self.statics[i])

    def control_variates(self, state: CVTrainState) -> list[ControlVariate]:
        """The control variate of every slice trained so far (at least one epoch), in training order."""
        step = int(state.step)
        out, start = [], 0
        for i, n in enumerate(self.epochs):
            if start >= max(step, 1):
                break
            finished = n is not None and step >= start + n
            params = jax.tree.unflatten(self._treedefs[i], [a[i] for a in state.done]) if finished else self._of_slice(state.params, i)
            out.append(eqx.combine(params, self.statics[i]))
            start += n if n is not None else step
        return out

    def step(self, state: CVTrainState) -> tuple[CVTrainState, dict[str, Any]]:
        """One epoch over the shuffled training set (and the exact output-layer
        fit every `refit_every` epochs); the record's `loss` is the epoch's mean."""
        t0 = time.perf_counter()
        train = state.phi[: self.n_train]
        i, before = self._slice(int(state.step))
        static = self.statics[i]
        key, sub = jax.random.split(state.key)
        with jax.numpy_dtype_promotion("standard"):
            opt_state = jax.tree.unflatten(self._opt_treedefs[i], jax.tree.leaves(state.opt_state))
            params, opt_state, loss = _epoch(self._of_slice(state.params, i), static, opt_state, self.optimizers[i], train, sub, self.delta, self.batch_size)
        epoch = before + 1  # within the slice
        if self.refit_every and epoch % self.refit_every == 0:
            params = eqx.filter(fit_output_layer(eqx.combine(params, static), train, self.delta), eqx.is_inexact_array)
        record = {"step": int(state.step), "t": self.ts[i], "epoch": epoch, "loss": float(loss), "step_time": time.perf_counter() - t0}
        slice_key, done = state.slice_key, state.done
        if epoch == self.epochs[i]:  # the slice is finished: keep it, start the next from its network
            done = tuple(d.at[i].set(a) for d, a in zip(done, jax.tree.leaves(params)))
            if i + 1 < len(self.ts):
                t_next = self.ts[i + 1]
                mu0 = float(np.mean(np.asarray(correlator_at(train, t_next))))
                cv = ControlVariate(self.system, eqx.combine(params, static).network, t_next, mu=mu0)
                slice_key, key = jax.random.split(slice_key)
                params, opt_state = self._start_slice(cv, train, i + 1)
        return CVTrainState(params, opt_state, key, state.phi, state.step + 1, slice_key, done), record

    def evaluate(self, state: CVTrainState, n_batches: int = 10) -> tuple[nqs_core.Stats, CVTrainState]:
        """The loss of Eq. 13 without its regulariser, `(O - f - mu)^2`, on the
        held-out configurations, of the last slice trained."""
        cv = self.control_variates(state)[-1]
        held = state.phi[self.n_train :]
        r = cv.improved(held) - cv.mu
        return nqs_core.statistics(r * r), state

    def summary(self, state: CVTrainState) -> dict[str, Any]:
        """On the held-out configurations, for every slice trained so far (`slices`,
        in training order) and, at the top level, for the first: `t`, the raw and
        improved `O(t)` (mean and standard error) and `variance_ratio`
        (`sigma_raw / sigma_CV`, what `nqs phi4 train` prints)."""
        held = state.phi[self.n_train :]
        n = held.shape[0]
        slices = []
        for cv in self.control_variates(state):
            raw, imp = np.asarray(cv.observable(held)), np.asarray(cv.improved(held))
            slices.append({
                "t": cv.t,
                "correlator_raw": {"mean": float(raw.mean()), "error": float(raw.std() / np.sqrt(n))},
                "correlator_cv": {"mean": float(imp.mean()), "error": float(imp.std() / np.sqrt(n))},
                "variance_ratio": variance_ratio(cv, held),
            })
        return {**(slices[0] if slices else {"t": self.ts[0]}), "n_held_out": n, "slices": slices}
