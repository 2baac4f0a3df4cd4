"""The `deuteron` driver: quadrature-energy minimisation of the deuteron network under `nqs run`."""

from __future__ import annotations

import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nqs_core

from ._system import DeuteronHamiltonian
from ._mesh import tangent_mesh
from ._ansatz import DeuteronNetwork
from ._potentials import POTENTIALS, TabulatedPotential, make_potential
from ._train import _bfgs, _overlap, pretrain


class DeuteronState(eqx.Module):
    """Everything that changes while the deuteron network trains (and is checkpointed).

    **Fields:** `params` (the network's arrays), `opt_state` (Adam), `step` (Adam steps done).
    """

    params: Any
    opt_state: Any
    step: jax.Array


class DeuteronDriver(nqs_core.AbstractDriver):
    """Minimise the quadrature energy `<psi|H|psi> / <psi|psi>` of the S/D-wave
    deuteron network in momentum space (Keeble and Rios 2020): pre-training to
    Gaussians in `init`, then one Adam step on the energy per step, and an
    optional BFGS polish (scipy, full memory) for the final result.

    The energy is a deterministic quadrature (no sampling), so the final estimate
    has no error bar; `result.json` adds the D-state probability and the fidelity
    against the exact diagonalisation on the same mesh (the reference energy).
    The BFGS iterations are one call, not steps: the checkpoint holds the Adam
    state, and `nqs resume` repeats the polish from there. `nqs deuteron` is a
    config builder over this driver (`--seed` is `[run] seed`, `--adam-steps` is
    `[run] n_steps`): one training loop for both commands.

    **Arguments:**

    - `potential`: `"yamaguchi"`, `"malfliet-tjon"` or `"table"`.
    - `table`: the momentum-space table file for `potential = "table"` (its own mesh).
    - `n_hidden`: hidden units of the `DeuteronNetwork`.
    - `n_mesh`, `k_max`: the tangent-mapped Gauss-Legendre mesh (not for tables).
    - `pretrain_steps`, `pretrain_b`: Adam steps and Gaussian width (fm) of the pre-training.
    - `learning_rate`: Adam's rate on the energy.
    - `bfgs_steps`: BFGS iterations after the last step, for the final result (0: none).
    """

    objective = "energy"
    label = "deuteron"

    def __init__(
        self,
        potential: str = "yamaguchi",
        table: str = "",
        n_hidden: int = 20,
        n_mesh: int = 64,
        k_max: float = 500.0,
        pretrain_steps: int = 1000,
        pretrain_b: float = 1.5,
        learning_rate: float = 1e-2,
        bfgs_steps: int = 0,
    ):
        if potential not in POTENTIALS:
            raise ValueError(f"potential must be one of {', '.join(POTENTIALS)}, got {potential!r}")
        if potential == "table" and not table:
            raise ValueError("potential 'table' needs table = PATH (e.g. tests/data/deuteron/n3lo_J1_vnn.dat.gz)")
        pot = make_potential(potential, table or None)
        mesh = None if isinstance(pot, TabulatedPotential) else tangent_mesh(n_mesh, k_max)
        self.hamiltonian = DeuteronHamiltonian(pot, mesh)
        self.n_hidden = nqs_core.check_int("n_hidden", n_hidden, minimum=1)
        self.pretrain_steps = nqs_core.check_int("pretrain_steps", pretrain_steps, minimum=0)
        self.pretrain_b = float(pretrain_b)
        self.bfgs_steps = nqs_core.check_int("bfgs_steps", bfgs_steps, minimum=0)
        self.optimizer = optax.adam(float(learning_rate))
        self.exact = self.hamiltonian.solve()
        self.exact_energy = self.exact.energy
        self.stop_reason = None
        self._k = jnp.asarray(self.hamiltonian.mesh.k)
        self._params0, self.static = eqx.partition(DeuteronNetwork(self.n_hidden, key=jax.random.PRNGKey(0)), eqx.is_inexact_array)
        self._step = jax.jit(self._adam_step)
        self._final: tuple[Any, Any] | None = None  # (params, their BFGS polish)

    def run_key(self, seed: int) -> jax.Array:
        """`PRNGKey(seed)`: the key of `nqs deuteron --seed`."""
        return jax.random.PRNGKey(seed)

    def parameters(self) -> Any:
        return self._params0

    def energy(self, params) -> jax.Array:
        """The quadrature energy (MeV) of the network with `params`."""
        ps, pd = eqx.combine(params, self.static).on_mesh(self._k)
        return self.hamiltonian.energy(ps, pd)

    def init(self, key: jax.Array, params: Any = None) -> DeuteronState:
        """The network initialised with `key` and pre-trained to the Gaussian
        targets (or `params`, not pre-trained), and a fresh Adam state."""
        if params is None:
            network, _ = pretrain(DeuteronNetwork(self.n_hidden, key=key), self._k, self.pretrain_b, self.pretrain_steps)
            params = eqx.filter(network, eqx.is_inexact_array)
        with jax.numpy_dtype_promotion("standard"):  # optax's step counter is int32
            opt_state = self.optimizer.init(params)
        return DeuteronState(params, opt_state, jnp.asarray(0, dtype=jnp.int64))

    def _adam_step(self, params, opt_state):
        value, grad = jax.value_and_grad(self.energy)(params)
        updates, opt_state = self.optimizer.update(grad, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def step(self, state: DeuteronState) -> tuple[DeuteronState, dict[str, Any]]:
        """One Adam step; the record's `energy` is that of the parameters before it."""
        t0 = time.perf_counter()
        with jax.numpy_dtype_promotion("standard"):
            params, opt_state, value = self._step(state.params, state.opt_state)
        record = {"step": int(state.step), "energy": float(value), "step_time": time.perf_counter() - t0}
        return DeuteronState(params, opt_state, state.step + 1), record

    def final_parameters(self, state: DeuteronState) -> Any:
        """The parameters of `state` after `bfgs_steps` BFGS iterations (computed once per state)."""
        if self._final is None or self._final[0] is not state.params:
            params = state.params
            if self.bfgs_steps:
                params, _ = _bfgs(self.energy, params, self.bfgs_steps)
            self._final = (state.params, params)
        return self._final[1]

    def evaluate(self, state: DeuteronState, n_batches: int = 10) -> tuple[nqs_core.Stats, DeuteronState]:
        """The energy after the BFGS polish, as `Stats` with error 0 (a quadrature)."""
        value = self.energy(self.final_parameters(state))
        return nqs_core.statistics(jnp.full((1, 2), value)), state

    def summary(self, state: DeuteronState) -> dict[str, Any]:
        """`energy_mev`, `d_probability`, `fidelity` (S and D together), `fidelity_s`,
        `fidelity_d` (`None` without a D wave), the exact energy and D-state probability on the mesh."""
        ham = self.hamiltonian
        ps, pd = eqx.combine(self.final_parameters(state), self.static).on_mesh(self._k)
        fd = _overlap(ham, pd, self.exact.psi_d) if ham.coupled else math.nan
        return {
            "energy_mev": float(ham.energy(ps, pd)),
            "d_probability": float(ham.d_probability(ps, pd)),
            "fidelity": float(ham.fidelity(ps, pd, self.exact)),
            "fidelity_s": _overlap(ham, ps, self.exact.psi_s),
            "fidelity_d": fd,
            "exact_d_probability": float(self.exact.d_probability),
            "bfgs_steps": self.bfgs_steps,
            "n_mesh": int(np.asarray(ham.mesh.k).size),
        }
