"""Tests of the phi4 plugin: action, samplers, control variates, fits, files, CLI."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
import nqs_phi4 as p4

# -- shared fixtures -----------------------------------------------------------


def exact_free_correlator(L0, L1, m2):
    """Free-field (lam = 0) zero-momentum correlator: (1/(L0 L1)) sum_p0 cos(p0 t) / (4 sin^2(p0/2) + m2)."""
    p0 = 2 * np.pi * np.arange(L0) / L0
    prop = 1.0 / (4 * np.sin(p0 / 2) ** 2 + m2)
    t = np.arange(L0)
    return (np.cos(np.outer(t, p0)) @ prop) / (L0 * L1)


@pytest.fixture(scope="module")
def interacting_configs():
    """Fresh HMC configurations on 8x4, m2 = 0.2, lam = 2.4 (train/test halves)."""
    phi, info = p4.generate_configurations(8, 4, 0.2, 2.4, 2048, seed=7, n_chains=32, n_leapfrog=8, n_skip=4, n_thermalize=200)
    return phi, info


# -- action --------------------------------------------------------------------


def test_action_constant_field_and_force(key):
    act = p4.Phi4Action(L0=6, L1=4, m2=0.3, lam=1.2)
    c = 0.7
    phi = jnp.full((6, 4), c)
    assert float(act(phi)) == pytest.approx(24 * (0.3 / 2 * c**2 + 1.2 / 24 * c**4), rel=1e-14)
    phi = jax.random.normal(key, (6, 4))
    np.testing.assert_allclose(act.grad(phi), jax.grad(act.__call__)(phi), rtol=1e-12, atol=1e-12)
    h = 1e-6
    e = jnp.zeros((6, 4)).at[2, 3].set(1.0)
    fd = (act(phi + h * e) - act(phi - h * e)) / (2 * h)
    assert float(fd) == pytest.approx(float(act.grad(phi)[2, 3]), abs=1e-8)
    # local action difference = full action difference for a one-site change
    v = phi.at[2, 3].set(1.9)
    dl = act.local_action(phi, v) - act.local_action(phi, phi)
    assert float(dl[2, 3]) == pytest.approx(float(act(v) - act(phi)), abs=1e-12)


def test_action_and_space_validate():
    with pytest.raises(ValueError, match="L0"):
        p4.Phi4Field(1, 4)
    with pytest.raises(ValueError, match="lam"):
        p4.Phi4Action(L0=4, L1=4, lam=-1.0)
    with pytest.raises(ValueError, match="trailing shape"):
        p4.Phi4Action(L0=4, L1=4)(jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="even"):
        p4.MetropolisField(p4.Phi4Field(5, 4))


def test_config_builds_action_and_sampler():
    reg = nqs_core.get_registry()
    objs = {(e.kind, e.name): e.obj for kind in ("space", "system", "sampler") for e in reg.entries(kind)}
    assert objs[("system", "phi4")] is p4.Phi4Action and objs[("space", "phi4_field")] is p4.Phi4Field
    assert objs[("sampler", "hmc")] is p4.HMC and objs[("sampler", "metropolis_field")] is p4.MetropolisField
    assert "hmc" in reg.names("sampler") and "metropolis_field" in reg.names("sampler")
    assert "phi4" in reg.names("command")


# -- divergence and the control-variate identity ------------------------------


@pytest.mark.parametrize(
    "hidden,odd,act,reflect", [((), True, "arcsinh", False), ((5, 3), True, "arcsinh", True), ((4,), False, "tanh", False)]
)
def test_covariant_g_and_exact_divergence(hidden, odd, act, reflect, key):
    L0, L1 = 6, 4
    net = p4.CVNetwork(L0, L1, hidden=hidden, odd=odd, activation=act, reflect=reflect, key=key)
    phi = jax.random.normal(jax.random.PRNGKey(3), (L0, L1))
    shifts = [(a, b) for a in range(L0) for b in range(L1)]
    shifted = jnp.stack([jnp.roll(phi, (-a, -b), axis=(0, 1)) for a, b in shifts])
    direct = jax.vmap(net.g0)(shifted).reshape(L0, L1)
    np.testing.assert_allclose(net.g(phi), direct, atol=1e-13)
    # covariance, Eq. 8
    np.testing.assert_allclose(net.g(jnp.roll(phi, (-2, -1), axis=(0, 1))), jnp.roll(net.g(phi), (-2, -1), axis=(0, 1)), atol=1e-13)
    div = float(net.divergence(phi))
    trace = float(jnp.einsum("abab->", jax.jacfwd(net.g)(phi)))
    assert div == pytest.approx(trace, abs=1e-12)
    h = 1e-5
    eye = h * jnp.eye(L0 * L1).reshape(L0 * L1, L0, L1)
    g = jax.jit(jax.vmap(net.g))
    diff = (g(phi + eye) - g(phi - eye)).reshape(L0 * L1, L0 * L1) / (2 * h)
    fd = float(jnp.trace(diff))
    assert div == pytest.approx(fd, abs=1e-8)
    if odd:
        np.testing.assert_allclose(net.g(-phi), -net.g(phi), atol=1e-14)
    if reflect:  # f is invariant under time reflection
        cv = p4.ControlVariate(p4.Phi4Action(L0=L0, L1=L1, m2=0.3, lam=1.0), net, t=2)
        rphi = jnp.roll(jnp.flip(phi, 0), 1, 0)
        assert float(cv.f(rphi)) == pytest.approx(float(cv.f(phi)), abs=1e-12)


def _mean_err(x):
    """Mean and binned-jackknife error (32 bins: the configurations come chain by chain)."""
    est, err, _ = p4.jackknife(np.asarray(x), n_bins=32)
    return float(est), float(err)


def test_control_variate_has_zero_mean_untrained_and_trained(interacting_configs):
    phi, info = interacting_configs
    assert info["tau_corr_C_half"] < 1.0  # decorrelated configurations
    act = p4.Phi4Action(L0=8, L1=4, m2=0.2, lam=2.4)
    train, fresh = phi[:1024], phi[1024:]
    net = p4.CVNetwork(8, 4, hidden=(6,), key=jax.random.PRNGKey(1))
    cv = p4.ControlVariate(act, net, t=4)
    m, e = _mean_err(cv.f_batch(fresh))
    assert e > 1e-3 and abs(m) < 4 * e
    # g_x = phi_x: f = V - sum_x phi_x dS/dphi_x, zero mean by the Schwinger-Dyson
    # (virial) identity; with the wrong action the identity fails: the test can fail
    lin = p4.CVNetwork(8, 4, hidden=(), key=jax.random.PRNGKey(0))
    lin = eqx.tree_at(lambda n: n.weights[0], lin, jnp.zeros((1, 8, 4)).at[0, 0, 0].set(1.0))
    m, e = _mean_err(p4.ControlVariate(act, lin, t=4).f_batch(fresh))
    assert abs(m) < 4 * e
    wrong = p4.ControlVariate(p4.Phi4Action(L0=8, L1=4, m2=1.2, lam=2.4), lin, t=4)
    m_w, e_w = _mean_err(wrong.f_batch(fresh))
    assert abs(m_w) > 6 * e_w
    # briefly trained network: still zero mean on fresh configurations, and it helps
    mu0 = float(np.mean(np.asarray(p4.correlator_at(train, 4))))
    cv = p4.ControlVariate(act, net, t=4, mu=mu0)
    trained, hist = p4.train_control_variate(cv, train, n_epochs=4, batch_size=8, learning_rate=1e-3, refit_every=2, key=jax.random.PRNGKey(2),
                                             lr_decay="cosine")
    assert len(hist) == 4 and np.isfinite(hist[-1]["loss"])
    with pytest.raises(ValueError, match="lr_decay"):
        p4.train_control_variate(cv, train, n_epochs=1, learning_rate=1e-3, lr_decay="linear")
    with pytest.raises(ValueError, match="float learning_rate"):
        p4.train_control_variate(cv, train, n_epochs=1, learning_rate=p4.paper_schedule(), lr_decay="cosine")
    m, e = _mean_err(trained.f_batch(fresh))
    assert abs(m) < 4 * e
    assert p4.variance_ratio(trained, fresh) > 1.5
    # the improved estimate agrees with the raw one
    raw_m, raw_e = _mean_err(p4.correlator_at(fresh, 4))
    imp_m, imp_e = _mean_err(trained.improved(fresh))
    assert imp_e < raw_e and abs(imp_m - raw_m) < 4 * raw_e


def test_linear_cv_free_theory_and_file_roundtrip(tmp_path):
    L0, L1, m2 = 8, 4, 0.5
    phi, _ = p4.generate_configurations(L0, L1, m2, 0.0, 1024, seed=3, n_chains=32, n_leapfrog=8, n_skip=4, n_thermalize=200)
    act = p4.Phi4Action(L0=L0, L1=L1, m2=m2, lam=0.0)
    cvs = p4.transfer_train(act, phi[:512], [4, 3], hidden=(), start="linear", n_epochs_first=1, n_epochs=2, batch_size=8,
                            learning_rate=1e-5, refit_every=1, key=jax.random.PRNGKey(0))
    # a linear g is exact for the free theory: large variance reduction on held-out configurations
    assert p4.variance_ratio(cvs[0], phi[512:]) > 5.0
    assert p4.variance_ratio(cvs[1], phi[512:]) > 5.0
    path = p4.save_control_variates(tmp_path / "cv.npz", cvs, hidden=(), note="x")
    loaded, head = p4.load_control_variates(path)
    assert head["ts"] == [4, 3] and head["meta"]["note"] == "x"
    for a, b in zip(cvs, loaded):
        np.testing.assert_allclose(a.f_batch(phi[:16]), b.f_batch(phi[:16]), rtol=1e-13)
        assert float(a.mu) == float(b.mu)


def test_fit_output_layer_is_the_optimum(interacting_configs):
    phi = jnp.asarray(interacting_configs[0][:128])
    act = p4.Phi4Action(L0=8, L1=4, m2=0.2, lam=2.4)
    cv = p4.ControlVariate(act, p4.CVNetwork(8, 4, hidden=(5,), odd=False, activation="tanh", key=jax.random.PRNGKey(4)), t=3)
    delta = 1e-3
    fitted = p4.fit_output_layer(cv, phi, delta)
    grads = jax.grad(lambda c: p4.cv_loss(c, phi, delta))(fitted)
    scale = float(p4.cv_loss(fitted, phi, delta))
    for g in (grads.network.weights[-1], grads.network.biases[-1], grads.mu):
        assert float(jnp.max(jnp.abs(g))) < 1e-8 * max(scale, 1.0)
    assert float(p4.cv_loss(fitted, phi, delta)) < float(p4.cv_loss(cv, phi, delta))


def test_linear_start_reproduces_the_linear_optimum(interacting_configs):
    # a deep network started at the linear optimum (small amplitude and noise) is nearly
    # the exact linear control variate; a large amplitude makes it non-linear
    phi = jnp.asarray(interacting_configs[0][:256])
    act = p4.Phi4Action(L0=8, L1=4, m2=0.2, lam=2.4)
    lin = p4.linear_start(p4.ControlVariate(act, p4.CVNetwork(8, 4, hidden=(), key=jax.random.PRNGKey(0)), t=4), phi)
    r_lin = p4.variance_ratio(lin, phi)
    assert r_lin > 1.5
    deep = p4.ControlVariate(act, p4.CVNetwork(8, 4, hidden=(4, 4, 4), key=jax.random.PRNGKey(1)), t=4)
    near = p4.linear_start(deep, phi, amplitude=0.01, key=jax.random.PRNGKey(2))
    assert abs(p4.variance_ratio(near, phi) / r_lin - 1.0) < 0.01
    far = p4.linear_start(deep, phi, amplitude=3.0, key=jax.random.PRNGKey(2))
    assert float(jnp.max(jnp.abs(far.f_batch(phi[:32]) - lin.f_batch(phi[:32])))) > 1e-2 * float(jnp.std(lin.f_batch(phi)))


def test_paper_schedule():
    with jax.numpy_dtype_promotion("standard"):
        s = p4.paper_schedule()
        assert float(s(0)) == pytest.approx(1e-3)
        assert float(s(100_000)) == pytest.approx(1e-3 * 0.99**100, rel=1e-6)
        assert float(s(700_000)) == pytest.approx(1e-6)


# -- samplers ------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["hmc", "metropolis_field"])
def test_samplers_reproduce_free_propagator(sampler):
    L0, L1, m2 = 8, 4, 0.5
    kw = dict(n_leapfrog=8, n_skip=3) if sampler == "hmc" else dict(n_sweeps=4)
    # a fixed-seed check with a false-alarm rate of about 10 % (mean pulls^2 < 3 over 30
    # seeds of the local sampler); seed 6 since the core Metropolis engine's key stream
    phi, info = p4.generate_configurations(L0, L1, m2, 0.0, 4096, seed=6, n_chains=64, sampler=sampler, n_thermalize=300, **kw)
    assert 0.3 < info["acceptance"] < 0.95
    exact = exact_free_correlator(L0, L1, m2)
    o = np.asarray(p4.correlator(phi))
    c, err, _ = p4.jackknife(o, n_bins=64)
    pulls = (c - exact) / err
    assert np.all(np.abs(pulls) < 4.5), pulls
    assert np.mean(pulls**2) < 3.0


def test_hmc_and_metropolis_agree_interacting(interacting_configs):
    phi_h, _ = interacting_configs
    phi_m, info = p4.generate_configurations(8, 4, 0.2, 2.4, 2048, seed=9, n_chains=64, sampler="metropolis_field", n_sweeps=5, n_thermalize=300)
    for obs in (lambda x: np.asarray(p4.correlator(x))[:, [0, 2, 4]], lambda x: np.mean(x**4, axis=(1, 2))[:, None]):
        a, ea, _ = p4.jackknife(obs(phi_h), n_bins=64)
        b, eb, _ = p4.jackknife(obs(phi_m), n_bins=64)
        assert np.all(np.abs(a - b) < 4.5 * np.hypot(ea, eb)), (a, b, ea, eb)


def test_sampler_protocol_shapes(key):
    space = p4.Phi4Field(4, 4)
    dist = nqs_core.BoltzmannDistribution(p4.Phi4Action(space, m2=0.5, lam=1.0))
    smp = p4.HMC(space, n_samples=12, n_chains=4, n_thermalize=20, n_skip=2)
    state = smp.init(dist, key)
    x, state, info = smp.sample(dist, state)
    assert x.shape == (4, 3, 4, 4) and float(state.step_size) > 0
    assert 0.0 <= float(info["acceptance"]) <= 1.0


# -- statistics, fit, files ------------------------------------------------------


def test_jackknife_matches_standard_error():
    x = np.random.default_rng(0).normal(size=(400, 3))
    est, err, cov = p4.jackknife(x, n_bins=400)
    np.testing.assert_allclose(err, x.std(axis=0, ddof=1) / np.sqrt(400), rtol=1e-10)
    np.testing.assert_allclose(cov, np.cov(x.T) / 400, rtol=1e-10)
    _, err_b = p4.jackknife(x[:, 0], fn=lambda m: m**2, n_bins=50)[:2]
    assert err_b > 0
    assert p4.blocking_errors(x).shape == (3,)


def test_fit_recovers_parameters():
    L0, A, m = 40, 0.25, 0.2
    t = np.arange(1, 21)
    exact = p4.cosh_model(t, A, m, L0)
    corr = 0.9 ** np.abs(t[:, None] - t[None, :])
    sig = 0.01 * exact
    cov = corr * np.outer(sig, sig)
    fit = p4.fit_correlator(t, exact, cov, L0)
    assert fit.A == pytest.approx(A, rel=1e-9) and fit.m == pytest.approx(m, rel=1e-9) and fit.chi2 < 1e-12
    rng = np.random.default_rng(1)
    chol = np.linalg.cholesky(cov)
    ms, chi = [], []
    for _ in range(200):
        f = p4.fit_correlator(t, exact + chol @ rng.normal(size=t.size), cov, L0)
        ms.append((f.m - m) / f.m_err)
        chi.append(f.chi2_dof)
    assert abs(np.mean(ms)) < 0.3 and 0.8 < np.std(ms) < 1.2
    assert 0.85 < np.mean(chi) < 1.15


def test_configuration_files(tmp_path):
    phi = np.random.default_rng(0).normal(size=(5, 4, 2))
    path = p4.save_configurations(tmp_path / "c.npz", phi, m2=0.1, lam=0.5)
    back, meta = p4.load_configurations(path)
    np.testing.assert_array_equal(back, phi)
    assert meta == {"m2": 0.1, "lam": 0.5}
    np.savez(tmp_path / "own.npz", phi=phi)  # bring your own
    assert p4.load_configurations(tmp_path / "own.npz")[1] == {}
    np.savez(tmp_path / "bad.npz", x=phi)
    with pytest.raises(ValueError, match="'phi'"):
        p4.load_configurations(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        p4.load_configurations(tmp_path / "missing.npz")


def test_effective_mass_of_cosh():
    c = p4.cosh_model(np.arange(20), 1.0, 0.3, 20)
    np.testing.assert_allclose(p4.effective_mass(c), 0.3, rtol=1e-12)


# -- CLI -----------------------------------------------------------------------


def test_cli_generate_train_report(tmp_path):
    from typer.testing import CliRunner

    from nqs_cli import make_app

    nqs = make_app(plugins=True)
    runner = CliRunner()

    def app_invoke(args):  # through `nqs phi4`: the CLI's one error path
        return runner.invoke(nqs, ["phi4", *args])

    cfg = tmp_path / "c.npz"
    r = app_invoke(["generate", "--out", str(cfg), "--L0", "4", "--L1", "4", "--m2", "0.5", "--lam", "0.5",
                            "--n", "64", "--n-chains", "8", "--n-skip", "2", "--n-leapfrog", "5", "--n-thermalize", "50"])
    assert r.exit_code == 0, r.output
    cvf = tmp_path / "cv.npz"
    r = app_invoke(["train", str(cfg), "--out", str(cvf), "--n-train", "32", "--all-t", "--hidden", "linear",
                            "--epochs", "2", "--epochs-transfer", "1", "--batch-size", "8", "--lr", "0.01", "--decay", "cosine",
                    "-q", "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert p4.load_control_variates(cvf)[1]["ts"] == [2, 1, 0]
    js, png = tmp_path / "t.json", tmp_path / "f.png"
    r = app_invoke(["report", str(cfg), "--cv", str(cvf), "--n-bins", "32", "--t-min", "0", "--plot", str(png), "--json", str(js)])
    assert r.exit_code == 0, r.output
    table = json.loads(js.read_text())
    assert len(table["cv"]["C"]) == 3 and table["raw"]["fit"]["dof"] == 1
    assert png.stat().st_size > 0
    r = app_invoke(["report", str(tmp_path / "nope.npz")])
    assert r.exit_code == 2
    r = app_invoke(["train", str(cfg), "--out", str(cvf), "--n-train", "500", "--run-dir", str(tmp_path / "no")])
    assert r.exit_code == 2
