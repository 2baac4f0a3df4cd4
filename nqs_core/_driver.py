"""The variational Monte Carlo driver: sample -> estimate -> precondition -> update."""

from __future__ import annotations

import time
from typing import Any, Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._ansatz import AbstractAnsatz
from ._distributed import concat_over_ranks, fold_rank
from ._estimator import AbstractEstimator
from ._preconditioner import AbstractPreconditioner
from ._sampler import AbstractSampler, BornDistribution
from ._stats import Stats, statistics
from ._system import AbstractHamiltonian
from ._tree import n_real_parameters, parameters


class VMCState(eqx.Module):
    """Everything that changes during a VMC run (and is checkpointed)."""

    params: Any
    opt_state: Any
    sampler_state: Any
    precond_state: Any
    step: jax.Array


class _Step(eqx.Module):
    static: Any
    system: AbstractHamiltonian
    sampler: AbstractSampler
    estimator: AbstractEstimator
    preconditioner: AbstractPreconditioner
    optimizer: optax.GradientTransformation = eqx.field(static=True)

    def __call__(self, state: VMCState):
        ansatz = eqx.combine(state.params, self.static)
        estimator = self.estimator.at_step(state.step)
        samples, sampler_state, sinfo = self.sampler.sample(BornDistribution(ansatz), state.sampler_state)
        estimate = estimator(ansatz, self.system, samples)
        direction, precond_state, pinfo = self.preconditioner(ansatz, samples, estimate, estimator, state.precond_state)
        pinfo = {**pinfo, **estimator.step_info(), "direction_norm": optax.tree.norm(direction)}
        updates, opt_state = self.optimizer.update(direction, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = VMCState(params, opt_state, sampler_state, precond_state, state.step + 1)
        return new, estimate.stats, {**sinfo, **pinfo}


class _Evaluate(eqx.Module):
    static: Any
    system: AbstractHamiltonian
    sampler: AbstractSampler
    estimator: AbstractEstimator

    def __call__(self, params, sampler_state):
        ansatz = eqx.combine(params, self.static)
        samples, sampler_state, info = self.sampler.sample(BornDistribution(ansatz), sampler_state)
        return self.estimator(ansatz, self.system, samples).local_values, sampler_state, info


class VMC:
    """Variational Monte Carlo: minimise `<H>` over the parameters of an ansatz.

    Each step samples `|psi|^2`, estimates the local energies, turns them into
    an update direction with the preconditioner and applies it with the optax
    optimizer. The whole step is one jitted function.

    **Arguments:**

    - `system`: the Hamiltonian.
    - `ansatz`: the initial variational state (its inexact arrays are the parameters).
    - `sampler`: draws configurations from `|psi|^2`.
    - `optimizer`: an `optax.GradientTransformation`.
    - `preconditioner`: defaults to the identity (plain gradients).
    - `estimator`: defaults to `EnergyEstimator()`.
    - `exact_energy`: optional reference value shown next to the estimates.

    **Example:**

    ```python
    driver = VMC(system, ansatz, sampler, optax.sgd(0.05), SR(diag_shift=1e-4))
    state = driver.init(jax.random.PRNGKey(0))
    state = driver.run(state, n_steps=200, callbacks=[ProgressBar(200)])
    ```
    """

    def __init__(
        self,
        system: AbstractHamiltonian,
        ansatz: AbstractAnsatz,
        sampler: AbstractSampler,
        optimizer: optax.GradientTransformation,
        preconditioner: AbstractPreconditioner | None = None,
        estimator: AbstractEstimator | None = None,
        exact_energy: float | None = None,
    ):
        if not isinstance(system, AbstractHamiltonian):
            raise TypeError(f"VMC needs a Hamiltonian, got {type(system).__name__}")
        if tuple(sampler.space.shape) != tuple(system.space.shape):
            raise ValueError(
                f"inconsistent sizes: sampler configurations have shape {sampler.space.shape}, "
                f"the system's space has shape {system.space.shape}"
            )
        self.system = system
        self.ansatz = ansatz
        self.sampler = sampler
        self.optimizer = optimizer
        self.preconditioner = preconditioner if preconditioner is not None else IdentityPreconditioner()
        self.estimator = estimator if estimator is not None else EnergyEstimator()
        self.exact_energy = exact_energy
        params, static = parameters(ansatz)
        self._params0 = params
        self._step = eqx.filter_jit(
            _Step(static, system, sampler, self.estimator, self.preconditioner, optimizer)
        )
        self._evaluate = eqx.filter_jit(_Evaluate(static, system, sampler, self.estimator))
        self.static = static

    @property
    def n_parameters(self) -> int:
        """Number of real parameters."""
        return n_real_parameters(self.ansatz)

    def init(self, key: jax.Array, params: Any = None) -> VMCState:
        """Initial state: the ansatz's parameters (or `params`, e.g. from another
        run's checkpoint), fresh optimizer and sampler states."""
        params = self._params0 if params is None else params
        # each MPI rank runs its own chains
        sampler_state = self.sampler.init(BornDistribution(eqx.combine(params, self.static)), fold_rank(key))
        return VMCState(
            params=params,
            opt_state=self.optimizer.init(params),
            sampler_state=sampler_state,
            precond_state=self.preconditioner.init(params),
            step=jnp.asarray(0, dtype=jnp.int64),
        )

    def model(self, state: VMCState) -> AbstractAnsatz:
        """The ansatz with the parameters of `state`."""
        return eqx.combine(state.params, self.static)

    def step(self, state: VMCState) -> tuple[VMCState, dict[str, Any]]:
        """One optimisation step; returns the new state and a log record for the
        energy of the parameters *before* the update."""
        t0 = time.perf_counter()
        new, stats, info = self._step(state)
        stats = jax.block_until_ready(stats)
        record = {"step": int(state.step), **_stats_record(stats)}
        for k, v in info.items():
            record[k] = float(v)
        record["step_time"] = time.perf_counter() - t0
        return new, record

    def run(self, state: VMCState, n_steps: int, callbacks: Iterable = ()) -> VMCState:
        """Run until `state.step == n_steps` (so a resumed state continues where it
        stopped). Callbacks get `(driver, state, record)` after every step; one
        returning `False` stops the run."""
        callbacks = list(callbacks)
        for cb in callbacks:
            if hasattr(cb, "on_start"):
                cb.on_start(self, state, n_steps)
        stop = False
        try:
            while int(state.step) < n_steps and not stop:
                state, record = self.step(state)
                for cb in callbacks:
                    if cb(self, state, record) is False:
                        stop = True
        finally:
            for cb in callbacks:
                if hasattr(cb, "on_end"):
                    cb.on_end(self, state)
        return state

    def evaluate(self, state: VMCState, n_batches: int = 10) -> tuple[Stats, VMCState]:
        """Energy of the current parameters from `n_batches` sampling calls, chains
        continued between calls (so the error bar accounts for correlations).
        Returns the statistics and the state with the advanced sampler."""
        sampler_state = state.sampler_state
        chunks = []
        for _ in range(n_batches):
            eloc, sampler_state, _ = self._evaluate(state.params, sampler_state)
            chunks.append(eloc)
        eloc = concat_over_ranks(jnp.concatenate(chunks, axis=1))
        return statistics(eloc), eqx.tree_at(lambda s: s.sampler_state, state, sampler_state)


def _stats_record(stats: Stats) -> dict[str, float]:
    d = stats.to_dict()
    return {
        "energy": d["mean"],
        "energy_error": d["error"],
        "variance": d["variance"],
        "tau_corr": d["tau_corr"],
        "R_hat": d["R_hat"],
        **({"energy_imag": d["mean_imag"]} if "mean_imag" in d else {}),
    }


def is_finite_record(record: dict[str, Any]) -> bool:
    return bool(np.isfinite(record["energy"]) and np.isfinite(record["variance"]))
