"""Sampling as a contract (issue 28): a third-party exact sampler, defined here
and registered in-process as a plugin, runs under `nqs run` and `nqs measure`
without any change to the core. Its samples carry weights (`nqs_core.Samples`),
which the core's default estimator, `measure` and the observables honour."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from typer.testing import CliRunner

import nqs_core

CONFIG = """
[run]
n_steps = 12
seed = 3
n_eval_batches = 1
checkpoint_every = 4

[lattice]
name = "chain"
length = 6

[space]
name = "spin_half"

[system]
name = "ising"
h = 0.8

[ansatz]
name = "rbm"
alpha = 1
param_dtype = "complex128"

[sampler]
name = "enumerate_weighted"

[preconditioner]
name = "sr"
diag_shift = 0.001

[optimizer]
name = "sgd"
learning_rate = 0.05

[observables.mz]
name = "magnetization"
"""


class EnumerateWeighted(nqs_core.AbstractSampler):
    """Every configuration of the space once, weighted by `exp(log_prob) / Z`
    (a third-party exact sampler: it knows nothing of the core's full sum)."""

    space: nqs_core.AbstractDiscreteSpace
    states: jax.Array
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)

    def __init__(self, space: nqs_core.AbstractSpace):
        self.space = space
        self.states = jnp.asarray(np.asarray(space.all_states()))
        self.n_samples = int(self.states.shape[0])
        self.n_chains = 1

    def init(self, distribution, key):
        return jnp.zeros((), jnp.int32)

    def sample(self, distribution, state):
        log_p = jax.vmap(distribution.log_prob)(self.states)
        w = jnp.exp(log_p - jnp.max(log_p))
        return nqs_core.Samples(self.states[None], (w / jnp.sum(w))[None], exact=True), state, {"acceptance": jnp.ones(())}


class _Plugin:
    @staticmethod
    @nqs_core.hookimpl
    def nqs_register(registry):
        registry.add("sampler", "enumerate_weighted", EnumerateWeighted)


def _ed(n: int, h: float):
    """Dense TFIM chain `H = -sum_i Z_i Z_{i+1} - h sum_i X_i` (periodic) from
    Kronecker products; basis index `sum_i [x_i < 0] 2^(n-1-i)` (site 0 the
    most significant factor, spin up first)."""
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    z = np.diag([1.0, -1.0])

    def site(op, i):
        out = np.eye(1)
        for j in range(n):
            out = np.kron(out, op if j == i else np.eye(2))
        return out

    return -sum(site(z, i) @ site(z, (i + 1) % n) for i in range(n)) - h * sum(site(x, i) for i in range(n))


def test_a_third_party_exact_sampler_runs_and_measures_without_a_core_change(tmp_path, monkeypatch):
    from nqs_cli import app

    reg = nqs_core.load_registry(autoload=False)
    reg.register_plugin(_Plugin, "test_exact_sampler")
    monkeypatch.setattr(nqs_core._registry, "_DEFAULT", reg)
    (tmp_path / "c.toml").write_text(CONFIG)
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(tmp_path / "c.toml"), "-q", "-o", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    config = nqs_core.load_config(tmp_path / "run" / "config.toml")
    assert config["estimator"]["name"] == "energy"  # the default estimator honours the weights

    # the exact energy and magnetisation of the final parameters, from a dense matrix
    calc = nqs_core.build(config, registry=reg, exact=False)
    params = nqs_core.load_parameters(tmp_path / "run", nqs_core.parameters(calc.driver.ansatz)[0])
    model = calc.driver.model(calc.driver.measurement_state(jax.random.PRNGKey(0), params))
    states = np.asarray(calc["space"].all_states())
    index = (states < 0).astype(int) @ (1 << np.arange(5, -1, -1))
    psi = np.zeros(64, complex)
    psi[index] = np.exp(np.asarray(jax.vmap(model)(jnp.asarray(states))))
    p = np.abs(psi) ** 2 / np.vdot(psi, psi).real
    h = _ed(6, 0.8)
    e_state = np.vdot(psi, h @ psi).real / np.vdot(psi, psi).real
    m = np.zeros(64)
    m[index] = 0.5 * states.mean(axis=1)
    mz = [p @ m, p @ m**2]
    e0 = np.linalg.eigvalsh(h)[0]
    assert abs(result["energy"]["mean"] - e_state) < 1e-10 and result["energy"]["error"] == 0.0
    assert np.allclose(result["observables"]["mz"]["mean"], mz, rtol=0, atol=1e-10)
    assert e_state - e0 < 0.1 * abs(e0)  # it trained towards the ground state
    assert result["exact_check"]["status"].startswith("skipped: the run is a full sum")

    # nqs measure on the checkpoint: the same exact numbers, reported as exact
    r = runner.invoke(app, ["measure", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    measured = json.loads(r.output)
    assert abs(measured["energy"]["mean"] - e_state) < 1e-10 and measured["energy"]["error"] == 0.0
    assert np.allclose(measured["mz"]["mean"], mz, rtol=0, atol=1e-10)
    r = runner.invoke(app, ["measure", str(tmp_path / "run")])
    assert r.exit_code == 0 and "exact" in r.output, r.output
