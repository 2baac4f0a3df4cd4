"""KFAC: exact natural gradient for one dense layer; runs inside a jitted VMC step."""

import equinox as eqx
import jax
import numpy as np

from nqs_core import AbstractAnsatz, EnergyEstimator, Estimate, StepContext, build, real_ravel, statistics
from nqs_optim import KFAC, compatible_kfac_jax


class _Dense(AbstractAnsatz):
    """log psi = x @ W + b with W stored (in, out): one dense layer kfac-jax recognises."""

    w: jax.Array
    b: jax.Array

    def __call__(self, x):
        return (x @ self.w + self.b)[0]


def test_one_dense_layer_is_exact_natural_gradient(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    n_in, m = 3, 64
    ansatz = _Dense(jax.random.normal(k1, (n_in, 1)), jax.random.normal(k2, (1,)))
    samples = jax.random.normal(k3, (4, m // 4, n_in))
    eloc = jax.random.normal(k4, (4, m // 4))
    est = Estimate(stats=statistics(eloc), local_values=eloc)
    estimator = EnergyEstimator()
    damping = 1e-6
    # jitted as inside the VMC step (and much faster than op-by-op dispatch of kfac-jax)
    kfac = KFAC(damping=damping)
    direction, state, _ = eqx.filter_jit(
        lambda a, s, e, st: kfac(StepContext(None, a, s, e, estimator), st)  # no Hamiltonian needed
    )(ansatz, samples, est, kfac.init(ansatz, samples))
    # one layer with scalar output: per-sample gradient [x, 1] (x) 1, so A (x) G is the exact (uncentred) Fisher
    xs = np.asarray(samples.reshape(m, n_in))
    a = np.concatenate([xs, np.ones((m, 1))], axis=1)
    fisher = a.T @ a / m
    g_wb = np.asarray(real_ravel(estimator.gradient(ansatz, samples, est))[0])  # order: w, b
    expected = np.linalg.solve(fisher + damping * np.eye(n_in + 1), g_wb)
    got = np.concatenate([np.asarray(direction.w).ravel(), np.asarray(direction.b)])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert state is not None


def test_kfac_inside_vmc_complex_rbm(small_config):
    cfg = dict(small_config)
    cfg["preconditioner"] = {"name": "kfac", "damping": 1e-2, "ema": 0.9}
    driver = build(cfg).driver
    state = driver.init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, rec = driver.step(state)
        assert np.isfinite(rec["energy"]) and np.isfinite(rec["direction_norm"])


def test_equivariant_slater_layers_get_kronecker_blocks():
    """EquivariantSlater stores its layer weights (in, out): kfac-jax must see dense layers
    (Kronecker-factored blocks: W' with bias, V without, per layer), not diagonal blocks."""
    import nqs_continuum as nc

    space = nc.Particles1D(2)
    ansatz = nc.EquivariantSlater(space, hidden=2, n_layers=2, key=jax.random.PRNGKey(0))
    xs = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    with compatible_kfac_jax():
        curv, func_args = KFAC().curvature(ansatz, xs)
        curv.init(jax.random.PRNGKey(0), func_args, exact_powers_to_cache=-1, approx_powers_to_cache=None)
    names = [type(b).__name__ for b in curv.blocks]
    dense = [b for b in curv.blocks if "KroneckerFactored" in type(b).__name__]
    assert len(dense) == 2 * ansatz.n_layers, names
    shapes = sorted(tuple(s[0]) for b in dense for s in [b.parameters_shapes])
    assert shapes == sorted([(1, 2), (1, 2), (2, 2), (2, 2)]), shapes


def test_missing_kfac_jax_leaves_the_other_optimizers_working():
    """kfac-jax is imported only when KFAC is used: without it, the registry (sgd, sr,
    the CLI's plugin load) works and KFAC fails with one line naming the package."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['kfac_jax'] = None\n"
        "import jax, nqs_core, nqs_optim\n"
        "reg = nqs_core.get_registry()\n"
        "assert {'sr', 'kfac'} <= set(reg.names('preconditioner')) and 'sgd' in reg.names('optimizer')\n"
        "import nqs_networks, nqs_spins\n"
        "space = nqs_spins.SpinHalf(4)\n"
        "ansatz = nqs_networks.RBM(space, alpha=1, key=jax.random.PRNGKey(0))\n"
        "try:\n"
        "    nqs_optim.KFAC().init(ansatz, space.random_state(jax.random.PRNGKey(1), 8).reshape(2, 4, 4))\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORT-ERROR the kfac preconditioner needs kfac-jax" in out.stdout
