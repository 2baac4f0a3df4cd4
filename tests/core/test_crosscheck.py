"""The exact cross-check at the end of a Monte Carlo run (issue 27, deliverable 2).

The non-ergodic case of the issue (XXZ chain in a field, a real RBM whose
weight sits on the fully polarised configuration that no chain visits) is
reproduced on 10 sites with crafted parameters: the visible bias pulls every
spin up with slope `a`, one hidden unit `log cosh(w (sum s - L + 1))` pushes
down with slope `w > a` everywhere but at the all-up configuration. With
`w (L - 1) / L < a < w` the all-up state holds almost all of `|psi|^2`
(`exp(2 (2 a L - 2 w (L - 1)))` times the all-down one) while the chains,
started at random, slide to all-down and face a barrier of `4 (w - a)` in
`log |psi|^2` per spin flipped up. The exact reference is an independent
dense diagonalisation-free sum: the Hamiltonian from Kronecker products and
the RBM evaluated in NumPy.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import nqs_core
from nqs_cli import app
from nqs_core._crosscheck import disagrees
from nqs_core._io import save_run_state

L = 10
W, A = 10.0, 9.5  # barrier 4 (w - a) = 2 per flip; all-up / all-down weight exp(20)

XXZ = f"""
[run]
n_steps = 0
seed = 5
n_eval_batches = 2
exact_energy = "none"

[lattice]
name = "chain"
length = {L}
pbc = true

[space]
name = "spin_half"

[system]
name = "spin_model"
terms = [ {{ op = "SxSx + SySy + 0.5 SzSz", bonds = 1, coupling = 1.0 }},
          {{ op = "Sz", sites = "all", coupling = -0.3 }} ]

[ansatz]
name = "rbm"
alpha = 1
param_dtype = "float64"

[sampler]
name = "metropolis_local"
n_samples = 256
n_chains = 16

[preconditioner]
name = "sr"
diag_shift = 0.01

[optimizer]
name = "sgd"
learning_rate = 0.01

[observables.mz]
name = "magnetization"
"""


def _config(**run):
    cfg = nqs_core.loads_config(XXZ)
    cfg["run"].update(run)
    return cfg


def _crafted(params):
    """RBM parameters with the polarised weight described in the module docstring."""
    weights = np.zeros((L, L))
    weights[0] = W
    hidden = np.zeros(L)
    hidden[0] = -W * (L - 1)
    visible = np.full(L, A)
    return eqx.tree_at(
        lambda p: (p.weights, p.hidden_bias, p.visible_bias), params, tuple(jnp.asarray(v) for v in (weights, hidden, visible))
    )


def _spin_ops():
    sx = np.array([[0, 0.5], [0.5, 0]])
    sy = np.array([[0, -0.5j], [0.5j, 0]])
    sz = np.diag([0.5, -0.5])
    return sx, sy, sz


def _site_op(op, i):
    out = np.ones((1, 1))
    for j in range(L):
        out = np.kron(out, op if j == i else np.eye(2))
    return out


def _xxz_matrix():
    sx, sy, sz = _spin_ops()
    ops = {k: [_site_op(o, i) for i in range(L)] for k, o in (("x", sx), ("y", sy), ("z", sz))}
    h = np.zeros((2**L, 2**L), dtype=complex)
    for i in range(L):
        j = (i + 1) % L
        h += ops["x"][i] @ ops["x"][j] + ops["y"][i] @ ops["y"][j] + 0.5 * ops["z"][i] @ ops["z"][j]
        h -= 0.3 * ops["z"][i]
    assert np.allclose(h.imag, 0)
    return h.real, ops["z"]


def _numpy_rbm(weights, hidden, visible):
    """psi over the Kronecker basis: site 0 is the most significant bit, bit 0 is up (s = +1)."""
    k = np.arange(2**L)
    s = np.array([1.0 - 2.0 * ((k >> (L - 1 - i)) & 1) for i in range(L)]).T
    log_psi = s @ visible + np.sum(np.log(np.cosh(s @ weights.T + hidden)), axis=1)
    log_psi -= log_psi.max()
    return np.exp(log_psi)


@pytest.fixture(scope="module")
def crafted_dir(tmp_path_factory):
    """A run directory whose checkpoint holds the crafted parameters (for `[run] init_from`)."""
    base = tmp_path_factory.mktemp("crosscheck")
    seed = nqs_core.run(_config(n_eval_batches=0), run_dir=base / "seed", progress=False)
    state = eqx.tree_at(lambda s: s.params, seed.state, _crafted(seed.state.params))
    save_run_state(base / "seed", state)
    return base


def test_rule():
    assert not disagrees(1.0, 0.1, 1.4)
    assert disagrees(1.0, 0.1, 1.6)
    assert not disagrees(1.0, 0.0, 1.0 + 1e-9)  # relative floor: exact agreement with error 0
    assert disagrees(1.0, np.nan, 1.0)  # no error bar: not trusted
    np.testing.assert_array_equal(disagrees([1.0, 2.0], [0.1, 0.1], [1.0, 3.0]), [False, True])


def test_nonergodic_weight_is_caught(crafted_dir):
    result = nqs_core.run(_config(init_from=str(crafted_dir / "seed")), run_dir=crafted_dir / "mc", progress=False)
    # independent reference: the same parameters summed in NumPy
    h, sz = _xxz_matrix()
    params = result.state.params
    psi = _numpy_rbm(*(np.asarray(a) for a in (params.weights, params.hidden_bias, params.visible_bias)))
    norm = psi @ psi
    e_exact = psi @ h @ psi / norm
    m_exact = sum(psi @ z @ psi for z in sz) / norm / L
    assert abs(psi[0]) ** 2 / norm > 0.99  # the weight sits on the polarised state
    check = json.loads((crafted_dir / "mc" / "result.json").read_text())["exact_check"]
    assert check == result.exact_check
    assert check["status"] == "disagrees" and result.failed_exact_check
    assert check["n_states"] == 2**L
    assert check["energy"]["exact"] == pytest.approx(e_exact, abs=1e-10)
    assert check["energy"]["sampled"] == pytest.approx(float(result.energy.mean.real), abs=1e-12)
    assert not check["energy"]["agrees"] and check["energy"]["n_sigma"] > 5
    assert abs(check["energy"]["sampled"] - e_exact) > 1.0  # the chains sit near all-down
    mz = check["observables"]["mz"]
    assert mz["exact"][0] == pytest.approx(m_exact, abs=1e-10) and not mz["agrees"]
    # the sampling itself looked healthy: only the cross-check can tell
    assert result.stop_reason is None and "last_step" not in result.health  # no steps: nothing rejected


def test_cli_exit_4_with_both_numbers_and_warn_opt_out(crafted_dir, tmp_path):
    cfg = tmp_path / "xxz.toml"
    cfg.write_text(XXZ.replace("n_steps = 0", f"n_steps = 0\ninit_from = {json.dumps(str(crafted_dir / 'seed'))}"))
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(cfg), "-q", "-o", str(tmp_path / "a")])
    assert r.exit_code == 4, (r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "disagrees with the exact sum" in lines[0] and "Traceback" not in r.output
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    exact = result["exact_check"]["energy"]["exact"]
    sampled = result["exact_check"]["energy"]["sampled"]
    assert f"{exact:.8g}" in lines[0] and f"{sampled:.8g}" in lines[0]  # both numbers
    assert f"{exact:.10g}" in r.stdout
    # opted out: a warning, exit 0; off: not computed
    r = runner.invoke(app, ["run", str(cfg), "-q", "-o", str(tmp_path / "b"), "--set", "run.exact_check=warn"])
    assert r.exit_code == 0 and "disagrees with the exact sum" in r.stdout
    r = runner.invoke(app, ["run", str(cfg), "-q", "-o", str(tmp_path / "c"), "--set", "run.exact_check=off"])
    assert r.exit_code == 0
    assert json.loads((tmp_path / "c" / "result.json").read_text())["exact_check"]["status"].startswith("skipped")


SMALL = """
[run]
n_steps = 2
seed = 2
n_eval_batches = 4
exact_energy = "none"
[lattice]
name = "chain"
length = 6
pbc = true
[space]
name = "spin_half"
[system]
name = "ising"
J = 1.0
h = 1.0
[ansatz]
name = "rbm"
alpha = 1
param_dtype = "float64"
[sampler]
name = "exact"
n_samples = 512
n_chains = 8
[preconditioner]
name = "sr"
diag_shift = 0.01
[optimizer]
name = "sgd"
learning_rate = 0.05
"""


def test_agrees_and_skips(tmp_path):
    """A healthy short run with the `exact` sampler (no acceptance: health
    without the Metropolis numbers, no false alarm) agrees with the exact sum."""
    cfg = nqs_core.loads_config(SMALL)
    result = nqs_core.run(cfg, run_dir=tmp_path / "ok", progress=False)
    assert result.stop_reason is None and not result.stopped_early
    records = nqs_core.read_log(tmp_path / "ok")
    assert all("n_distinct" in r and "frozen_fraction" not in r and "rejected" not in r for r in records)
    assert result.health["final_r_hat"] is not None
    check = result.exact_check
    assert check["status"] == "agrees", check
    # independent exact sum of the final parameters: TFIM from Kronecker products
    sx, _, sz = (2 * o for o in _spin_ops())  # Pauli units
    n = 6

    def site(op, i):
        out = np.ones((1, 1))
        for j in range(n):
            out = np.kron(out, op if j == i else np.eye(2))
        return out

    h = -sum(site(sz, i) @ site(sz, (i + 1) % n) for i in range(n)) - sum(site(sx, i) for i in range(n))
    p = result.state.params
    k = np.arange(2**n)
    s = np.array([1.0 - 2.0 * ((k >> (n - 1 - i)) & 1) for i in range(n)]).T
    psi = np.exp(s @ np.asarray(p.visible_bias) + np.sum(np.log(np.cosh(s @ np.asarray(p.weights).T + np.asarray(p.hidden_bias))), axis=1))
    assert check["energy"]["exact"] == pytest.approx(psi @ h @ psi / (psi @ psi), abs=1e-10)
    # skipped, with the reason: a space above the limit, a full-sum run
    from nqs_core._crosscheck import skip_reason

    assert "64 states, more than max_states = 32" in skip_reason(nqs_core.build(nqs_core.loads_config(SMALL), exact=False).driver, 32)
    cfg = nqs_core.loads_config(SMALL)
    cfg["sampler"] = {"name": "full_sum"}
    d = nqs_core.build(cfg, exact=False).driver
    assert skip_reason(d, 1 << 20, d.measurement_state(jax.random.PRNGKey(0), d.parameters())) == "the run is a full sum (already exact)"
