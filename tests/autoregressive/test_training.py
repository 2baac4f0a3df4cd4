"""Annealed objective (Roth 2020, Eq. 24), VMC with direct sampling and iterative retraining (`nqs grow`)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import nqs_core
from nqs_autoregressive import GRU1D, AnnealedEstimator, adam_rsqrt, grow, load_params
from nqs_spins import Chain, Heisenberg, SpinHalf

CHAIN = """
[run]
n_steps = 150
seed = 3
n_eval_batches = 4

[lattice]
name = "chain"
length = 6
pbc = false

[space]
name = "spin_half"
total_sz = 0.0

[system]
name = "heisenberg"
marshall_sign = true

[ansatz]
name = "ar_gru"
hidden = 8
phase = false

[sampler]
name = "direct"
n_samples = 256
n_chains = 4

[estimator]
name = "annealed"
temperature = 0.5
decay = 0.01
penalty = 0.0

[optimizer]
name = "adam_rsqrt"
learning_rate = 0.02
"""


def test_annealed_gradient_matches_exact_loss_gradient():
    """The covariance estimator of Eq. (24) agrees with the exact gradient of
    E + T/N sum p log p + C sum p M^2 computed by enumeration."""
    space = SpinHalf(4)
    system = Heisenberg(space, Chain(4, pbc=False))
    model = GRU1D(space, hidden=4, key=jax.random.PRNGKey(2))
    est = AnnealedEstimator(temperature=2.0, decay=0.5, penalty=0.7).at_step(2)
    t = 2.0 / (1.0 + 0.5 * 2)
    states = jnp.asarray(space.all_states())
    params, static = nqs_core.parameters(model)

    def loss(p):
        m = eqx.combine(p, static)
        lp = jax.vmap(m)(states)
        prob = jnp.exp(2.0 * jnp.real(lp))
        psi = jnp.exp(lp)  # normalised: <H> is the Rayleigh quotient
        energy = jnp.real(jnp.vdot(psi, system_matrix @ psi)) / jnp.sum(jnp.abs(psi) ** 2)
        mag = 0.5 * jnp.sum(states, axis=1)
        return energy + t / 4 * jnp.sum(prob * jnp.log(prob)) + 0.7 * jnp.sum(prob * mag**2)

    from nqs_spins import to_dense

    system_matrix = jnp.asarray(to_dense(system), jnp.complex128)
    exact = nqs_core.real_ravel(jax.jit(jax.grad(loss))(params))[0]
    sampler = nqs_core.DirectSampler(space, n_samples=40000, n_chains=4)
    dist = nqs_core.BornDistribution(model)
    x, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(0)))
    grad_fn = eqx.filter_jit(lambda e, m, x: e.gradient(m, x, e(m, system, x)))
    g = nqs_core.real_ravel(grad_fn(est, model, x))[0]
    assert float(jnp.linalg.norm(g - exact)) < 0.05 * float(jnp.linalg.norm(exact))
    # T = C = 0 is the plain energy gradient
    plain = AnnealedEstimator(temperature=0.0, penalty=0.0)
    g0 = nqs_core.real_ravel(grad_fn(plain, model, x))[0]
    e = nqs_core.EnergyEstimator()
    ge = nqs_core.real_ravel(e.gradient(model, x, e(model, system, x)))[0]
    np.testing.assert_allclose(np.asarray(g0), np.asarray(ge), atol=1e-12)


def test_adam_rsqrt_schedule():
    tx = adam_rsqrt(learning_rate=0.1, decay=1.0, clip_norm=None, b1=0.0, b2=0.0, eps=0.0)
    p = {"w": jnp.zeros(())}
    s = tx.init(p)
    steps = []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
        for _ in range(4):
            u, s = tx.update({"w": jnp.ones(())}, s, p)
            steps.append(-float(u["w"]))
    np.testing.assert_allclose(steps, [0.1 / np.sqrt(1 + t) for t in range(4)], rtol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = nqs_core.loads_config(CHAIN)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
        return nqs_core.run(cfg, run_dir=tmp_path_factory.mktemp("vmc") / "run", progress=False)


def test_vmc_direct_sampling_reaches_ground_state(trained):
    assert trained.exact_energy == pytest.approx(-2.4935771338879, abs=1e-8)  # ED, OBC L = 6, S units
    assert trained.relative_error < 1e-2  # from ~0.3 at the uniform initial state
    log = nqs_core.read_log(trained.run_dir)
    # the core VMC driver hands the step to the estimator (AbstractScheduledEstimator.at_step)
    temps = [r["temperature"] for r in log]
    np.testing.assert_allclose(temps[:3], [0.5 / (1 + 0.01 * t) for t in range(3)])
    assert all(r["tau_corr"] <= 1.0 for r in log[-5:])  # independent samples


def test_annealed_vmc_is_the_core_driver():
    """`annealed_vmc` is an old name of `vmc` (older configs): it gives the core
    driver itself, with a warning that names `vmc`."""
    with pytest.warns(FutureWarning, match="driver 'annealed_vmc' is an old name for 'vmc'"):
        entry = nqs_core.get_registry().get("driver", "annealed_vmc")
    assert entry.obj is nqs_core.VMC and entry.name == "vmc"
    assert "annealed_vmc" not in nqs_core.get_registry().names("driver")


@pytest.fixture(autouse=False)
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
        yield


def test_grow_reuses_parameters(tmp_path, standard_promotion):
    cfg = nqs_core.loads_config(CHAIN)
    recs = grow(cfg, [4, 6, 8], retrain_steps=0, out_dir=tmp_path, first_steps=20, last_steps=2, n_eval_batches=1)
    assert [r["size"] for r in recs] == ["4", "6", "8"]
    assert [r["steps"] for r in recs] == [20, 0, 2]
    assert recs[0]["samples"] == 20 * 256 and recs[-1]["cumulative_samples"] == 22 * 256
    like = nqs_core.parameters(GRU1D(SpinHalf(8, total_sz=0.0), hidden=8, phase=False, key=jax.random.PRNGKey(0)))[0]
    p4, p6, p8 = (load_params(tmp_path / s / "params.eqx", like) for s in ("4", "6", "8"))
    for a, b in zip(jax.tree.leaves(p4), jax.tree.leaves(p6)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(p6), jax.tree.leaves(p8)))
    lines = [json.loads(line) for line in (tmp_path / "grow.jsonl").read_text().splitlines()]
    assert lines == recs
    for r in recs:
        assert r["energy_per_site"] == pytest.approx(r["energy"] / r["n_sites"])
    # a numeric [run] exact_energy belongs to the size as written; other sizes are solved ("auto")
    cfg_ex = nqs_core.apply_overrides(cfg, ["run.exact_energy=-2.4935771"])
    recs_ex = grow(cfg_ex, [6, 8], retrain_steps=0, out_dir=tmp_path / "ex", first_steps=0, n_eval_batches=1)
    assert recs_ex[0]["exact_energy"] == -2.4935771
    assert recs_ex[1]["exact_energy"] == pytest.approx(recs[2]["exact_energy"]) and recs_ex[1]["exact_energy"] < -3.0
    # a retrained size improves on the transferred parameters
    recs2 = grow(cfg, [4, 6], retrain_steps=30, out_dir=tmp_path / "b", first_steps=20, retrain_learning_rate=0.01, n_eval_batches=1)
    assert recs2[1]["steps"] == 30 and recs2[1]["relative_error"] < recs[1]["relative_error"] + 0.02


def test_grow_init_from_a_run_directory_or_params_file(trained, tmp_path, standard_promotion):
    """A long `nqs run` can be grown afterwards: first size evaluated only, from its checkpoint."""
    cfg = nqs_core.loads_config(CHAIN)
    like = nqs_core.parameters(GRU1D(SpinHalf(6, total_sz=0.0), hidden=8, phase=False, key=jax.random.PRNGKey(0)))[0]
    recs = grow(cfg, [6, 8], retrain_steps=0, out_dir=tmp_path / "a", first_steps=0, n_eval_batches=1, init_from=trained.run_dir)
    assert [r["steps"] for r in recs] == [0, 0] and recs[0]["relative_error"] < 2e-2  # the trained state, not a fresh one
    got = load_params(tmp_path / "a" / "6" / "params.eqx", like)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(trained.state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again = grow(cfg, [8], retrain_steps=0, out_dir=tmp_path / "b", first_steps=0, n_eval_batches=1, init_from=tmp_path / "a" / "8" / "params.eqx")
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(load_params(tmp_path / "b" / "8" / "params.eqx", like))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert again[0]["energy"] == pytest.approx(recs[1]["energy"], abs=5 * recs[1]["energy_error"] + 1e-9)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        grow(cfg, [6], out_dir=tmp_path / "c", first_steps=0, init_from=tmp_path)


def test_grow_command(tmp_path, standard_promotion):
    from nqs_cli import make_app

    app = make_app(plugins=True)

    path = tmp_path / "c.toml"
    path.write_text(CHAIN)
    runner = CliRunner()
    res = runner.invoke(app, ["grow", str(path), "-s", "4", "-s", "6", "--retrain-steps", "2", "--out", str(tmp_path / "g"), "--set", "run.n_steps=3", "--set", "run.n_eval_batches=1"])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "g" / "grow.jsonl").read_text().splitlines()) == 2
    bad = runner.invoke(app, ["grow", str(path), "-s", "4", "-s", "6y", "--out", str(tmp_path / "h")])
    assert bad.exit_code == 2
