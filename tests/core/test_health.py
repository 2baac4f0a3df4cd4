"""Sampling health (issue 27, deliverable 1): the numbers every step records,
R-hat NaN when undefined, frozen or collapsed sampling and finite blow-ups
stopping the run (exit 3), and the opt-out."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import nqs_core
from nqs_cli import app
from nqs_core import DivergenceGuard, read_log, statistics
from nqs_core._driver import REJECT_REASONS
from nqs_core._health import BlowUpWatch, count_distinct, offdiagonal_weight, sampling_health

# -- the numbers ----------------------------------------------------------------


def test_count_distinct_matches_numpy():
    rng = np.random.default_rng(0)
    pool = rng.choice([-1.0, 1.0], size=(37, 12))
    samples = pool[rng.integers(0, 37, size=(8, 64))]  # (chains, per chain, sites), many repeats
    expected = len(np.unique(samples.reshape(-1, 12), axis=0))
    assert int(jax.jit(count_distinct)(jnp.asarray(samples))) == expected
    ints = rng.integers(0, 3, size=(4, 50, 5)).astype(np.int8)  # another dtype, other local states
    assert int(count_distinct(jnp.asarray(ints))) == len(np.unique(ints.reshape(-1, 5), axis=0))
    assert int(count_distinct(jnp.ones((3, 7, 4)))) == 1


def _system(cfg_text):
    return nqs_core.build(nqs_core.loads_config(cfg_text), exact=False, stop_after="system").components["system"]


def _config(system, n=6, extra=""):
    return f"""
[run]
n_steps = 1
[lattice]
name = "chain"
length = {n}
pbc = true
[space]
name = "spin_half"
[system]
{system}
[ansatz]
name = "rbm"
param_dtype = "float64"
[sampler]
name = "metropolis_local"
n_samples = 64
n_chains = 4
{extra}"""


def _kron_site(op, i, n):
    out = np.ones((1, 1))
    for j in range(n):
        out = np.kron(out, op if j == i else np.eye(2))
    return out


def _index(x):
    """Kronecker index of a +-1 configuration (site 0 most significant, up = bit 0)."""
    bits = (1 - np.asarray(x, dtype=int)) // 2
    return int(sum(b << (len(bits) - 1 - i) for i, b in enumerate(bits)))


def test_offdiagonal_weight_against_dense_rows():
    n, h = 6, 0.7
    sx, sz = np.array([[0, 1.0], [1.0, 0]]), np.diag([1.0, -1.0])
    ham = -sum(_kron_site(sz, i, n) @ _kron_site(sz, (i + 1) % n, n) for i in range(n)) - h * sum(_kron_site(sx, i, n) for i in range(n))
    system = _system(_config(f'name = "ising"\nJ = 1.0\nh = {h}', n))
    xs = np.random.default_rng(1).choice([-1.0, 1.0], size=(5, n))
    got = np.asarray(offdiagonal_weight(system, jnp.asarray(xs)))
    for x, g in zip(xs, got):
        row = ham[_index(x)].copy()
        row[_index(x)] = 0.0
        assert g == pytest.approx(np.sum(row**2), abs=1e-12)
    assert got[0] == pytest.approx(n * h**2)
    # the Heisenberg ferromagnet: all-up is an eigenstate, nothing off the diagonal
    ferro = _system(_config('name = "heisenberg"\nJ = -1.0', n))
    up = jnp.ones((1, n))
    assert float(offdiagonal_weight(ferro, up)[0]) == 0.0
    assert float(offdiagonal_weight(ferro, jnp.asarray(xs[:1]))[0]) > 0.0 or np.all(xs[0] == xs[0][0])


def test_rhat_is_nan_when_undefined_never_zero():
    const = statistics(jnp.full((4, 64), -8.0))
    assert math.isnan(float(const.R_hat)) and "R̂=nan" in repr(const)
    frozen_apart = statistics(jnp.repeat(jnp.arange(4.0)[:, None], 64, axis=1))  # each chain constant, chains differ
    assert math.isnan(float(frozen_apart.R_hat))
    rounding = statistics(-12.0 + 1e-15 * jax.random.normal(jax.random.PRNGKey(0), (4, 64)) + jnp.arange(4.0)[:, None] * 1e-4)
    assert math.isnan(float(rounding.R_hat))  # rounding noise inside frozen chains is no variance
    assert math.isnan(float(statistics(jnp.arange(3.0)).R_hat))  # too few samples
    healthy = statistics(jax.random.normal(jax.random.PRNGKey(1), (8, 256)))
    assert abs(float(healthy.R_hat) - 1.0) < 0.05


def test_health_codes_collapse_versus_eigenstate():
    n = 6
    guard = DivergenceGuard()
    ising = _system(_config('name = "ising"\nJ = 1.0\nh = 0.5', n))
    ferro = _system(_config('name = "heisenberg"\nJ = -1.0', n))
    collapsed = jnp.ones((4, 16, n)).at[:, :, 0].set(-1.0)  # one configuration, not an eigenstate of the TFIM
    stats = statistics(jnp.full((4, 16), -4.0))
    health = sampling_health(ising, collapsed, {}, stats)
    assert int(health["n_distinct"]) == 1 and bool(health["zero_variance"])
    assert int(guard.health_code(stats, {**health, "frozen_fraction": jnp.asarray(1.0)})) == 7
    assert int(guard.health_code(stats, health)) == 8  # a sampler without acceptance: still caught
    # the all-up ferromagnet: frozen, variance 0, and right (an eigenstate): not flagged
    up = jnp.ones((4, 16, n))
    health = sampling_health(ferro, up, {}, statistics(jnp.full((4, 16), -1.5)))
    assert not bool(health["zero_variance"])
    assert int(guard.health_code(stats, {**health, "frozen_fraction": jnp.asarray(1.0)})) == 0
    # an eigenstate spread over many configurations (zero variance, |psi|^2 not
    # collapsed): the ferromagnet's S = L/2, S^z = L/2 - 1 state, one spin down anywhere
    one_down = jnp.ones((n, n)).at[jnp.arange(n), jnp.arange(n)].set(-1.0)
    spread_samples = jnp.tile(one_down, (4, 3, 1))[:, :16]
    zero = statistics(jnp.full((4, 16), 1.0))

    def spread(x):
        return -50.0 * (jnp.sum(x < 0).astype(jnp.float64) - 1.0) ** 2

    def peaked(x):  # the same configurations, |psi|^2 on the first one only
        return -50.0 * jnp.sum(jnp.abs(x - one_down[0]))

    health = sampling_health(ferro, spread_samples, {}, zero, spread)
    assert float(health["offdiag_weight"]) > 0 and float(health["psi_weight"]) > 0.5 * float(health["offdiag_weight"])
    assert not bool(health["zero_variance"])
    at_peak = jnp.broadcast_to(one_down[0], (4, 16, n))
    assert bool(sampling_health(ferro, at_peak, {}, zero, peaked)["zero_variance"])
    assert not bool(sampling_health(ferro, at_peak, {}, zero, spread)["zero_variance"])  # psi not collapsed there
    # moving chains with a variance: healthy
    xs = jax.random.choice(jax.random.PRNGKey(2), jnp.asarray([-1.0, 1.0]), (4, 16, n))
    moving = statistics(jax.random.normal(jax.random.PRNGKey(3), (4, 16)))
    health = sampling_health(ising, xs, {}, moving)
    assert int(guard.health_code(moving, {**health, "frozen_fraction": jnp.asarray(0.25)})) == 0


def test_blowup_codes_and_watch():
    guard = DivergenceGuard()
    stats = statistics(jax.random.normal(jax.random.PRNGKey(0), (4, 16)) - 10.0)
    g = guard.update(guard.init(), stats, 1.0, {"w": jnp.ones(4)})  # references: |p0| = 2, E0 ~ -10
    ok = guard.check(g, stats, 1.0, {"w": jnp.ones(4)}, {"w": jnp.ones(4) * 3.0})
    assert int(ok) == 0
    blown = guard.check(g, stats, 1.0, {"w": jnp.ones(4)}, {"w": jnp.ones(4) * 1e6})
    assert REJECT_REASONS[int(blown)].startswith("the parameters grew by orders of magnitude")
    far = statistics(jax.random.normal(jax.random.PRNGKey(0), (4, 16)) + 1e7)
    code = guard.check(g, far, 1.0, {"w": jnp.ones(4)}, {"w": jnp.ones(4)})
    assert REJECT_REASONS[int(code)].startswith("the energy moved by orders of magnitude")
    watch = BlowUpWatch(1e5)
    assert watch.check(math.nan, {"w": np.ones(4)}) is None  # the starting parameters
    assert watch.check(-2.0, {"w": np.ones(4)}) is None  # the first objective
    assert watch.check(-1.0, {"w": np.full(4, 10.0)}) is None
    assert "objective moved" in watch.check(3e5, {"w": np.ones(4)})
    assert "parameters grew" in watch.check(-2.0, {"w": np.full(4, 1e6)})


# -- runs -------------------------------------------------------------------------

TFIM12 = """
[run]
n_steps = 6
seed = 1
[lattice]
name = "chain"
length = 12
pbc = true
[space]
name = "spin_half"
[system]
name = "ising"
J = 1.0
h = 0.5
[ansatz]
name = "rbm"
alpha = 1
param_dtype = "float64"
[sampler]
name = "metropolis_local"
n_samples = 1024
n_chains = 16
[preconditioner]
name = "sr"
diag_shift = 0.01
[optimizer]
name = "sgd"
learning_rate = 1e3
"""


def test_collapse_exits_3_and_warn_goes_on(tmp_path):
    """The issue's case: TFIM L = 12, h = 0.5, learning rate 1e3 froze every
    chain on one configuration (E = -8, sigma^2 = 0, R-hat printed 0.0000, exit 0)."""
    cfg = tmp_path / "tfim.toml"
    cfg.write_text(TFIM12)
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(cfg), "-q", "-o", str(tmp_path / "a")])
    assert r.exit_code == 3, (r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert "the sampling froze" in lines[0] or "the samples collapsed" in lines[0], lines[0]
    assert "did not move" in lines[0] and "distinct configuration" in lines[0]
    records = read_log(tmp_path / "a")
    for key in ("acceptance", "acceptance_min", "frozen_fraction", "n_distinct", "zero_variance", "R_hat"):
        assert key in records[0], key
    assert records[0]["frozen_fraction"] == 0.0 and records[0]["n_distinct"] > 100
    assert records[-1]["rejected"] in (REJECT_REASONS[7], REJECT_REASONS[8]) and "diverged" in records[-1]
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["stop_reason"] and result["health"]["last_step"]["step"] == records[-1]["step"]
    assert result["exact_check"]["status"] == "skipped: the run stopped early"
    # opted out: the run goes on, every unhealthy step flagged, the warning printed
    r = runner.invoke(app, ["run", str(cfg), "-q", "-o", str(tmp_path / "b"), "--set", "run.on_unhealthy=warn",
                            "--set", "run.n_steps=3", "--set", "run.exact_check=off"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert any("unhealthy" in rec for rec in read_log(tmp_path / "b"))
    assert "nan" in r.stdout or "R̂" in r.stdout


def test_deuteron_blowup_is_a_divergence(tmp_path):
    """Deuteron at learning rate 1e6 reported +1e7 MeV with exit 0."""
    cfg = nqs_core.loads_config(
        '[run]\nn_steps = 20\nseed = 0\n[driver]\nname = "deuteron"\npotential = "yamaguchi"\nn_hidden = 6\n'
        "pretrain_steps = 50\nlearning_rate = 1e6\n"
    )
    result = nqs_core.run(cfg, run_dir=tmp_path / "d", progress=False)
    assert result.stopped_early and "by orders of magnitude" in result.stop_reason
    records = read_log(tmp_path / "d")
    assert records[-1]["diverged"] == result.stop_reason
    # the checkpoint holds the parameters the run started from, not the blown ones
    assert int(result.state.step) == records[-1]["step"]


def test_final_r_hat_far_from_one_stops():
    from nqs_core._run import _final_health

    run = {"max_r_hat": 100.0}
    chains_apart = statistics(jnp.arange(4.0)[:, None] * 1e3 + jax.random.normal(jax.random.PRNGKey(4), (4, 64)))
    assert float(chains_apart.R_hat) > 100
    out = _final_health({"step": 9, "R_hat": 1.01, "n_distinct": 40}, chains_apart, run)
    assert out["last_step"] == {"step": 9, "R_hat": 1.01, "n_distinct": 40}
    assert "R-hat" in out["final_r_hat_exceeds"] and "above max_r_hat = 100" in out["final_r_hat_exceeds"]
    healthy = _final_health(None, statistics(jax.random.normal(jax.random.PRNGKey(5), (4, 64))), run)
    assert "final_r_hat_exceeds" not in healthy and abs(healthy["final_r_hat"] - 1.0) < 0.1
    frozen = _final_health(None, statistics(jnp.full((4, 64), 2.0)), run)
    assert frozen["final_r_hat"] is None  # NaN: undefined, stored as null
