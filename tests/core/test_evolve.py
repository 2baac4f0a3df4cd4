"""`nqs_core.exact_evolution`: the exact time evolution of a TDVP config, against
references written here (Kronecker products of Pauli matrices, dense
`scipy.linalg.expm`, a fourth-order Magnus integrator for a ramp)."""

import functools

import jax
import numpy as np
import pytest
import scipy.linalg as sl
from threadpoolctl import threadpool_limits

import nqs_core
from nqs_core import ConfigError, loads_config


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Dense references with one BLAS thread: pytest may import numpy before
    conftest sets OPENBLAS_NUM_THREADS, and several threads on a loaded 2-core
    machine made a 64 x 64 expm take 0.2 s instead of 1 ms."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield

X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.diag([1.0, -1.0]).astype(complex)  # local basis (up, down): sigma^z = +1 first


def site(op, i, n):
    return functools.reduce(np.kron, [op if j == i else np.eye(2) for j in range(n)])


def tfim(n, J, h):
    """`-J sum Z_i Z_{i+1} - h sum X_i` on a ring (Pauli units, as nqs_spins' ising states)."""
    zz = sum(site(Z, i, n) @ site(Z, (i + 1) % n, n) for i in range(n))
    sx = sum(site(X, i, n) for i in range(n))
    return zz, sx, -J * zz - h * sx


def product(local, n):
    v = np.asarray(local, dtype=complex)
    return functools.reduce(np.kron, [v / np.linalg.norm(v)] * n)


def config(L, h, initial, t_end=1.0, t_out=0.25, time="real", extra=""):
    return loads_config(f"""
[lattice]
name = "chain"
length = {L}

[space]
name = "spin_half"

[system]
name = "ising"
J = 1.0
h = {h}

[driver]
name = "tdvp"
time = "{time}"
t_end = {t_end}
t_out = {t_out}
{'initial_state = ' + initial if initial else ''}
{extra}

[observables.x]
name = "operator"
op = "X"
sites = "all"
coupling = {1 / L!r}

[observables.zz]
name = "operator"
op = "ZZ"
bonds = 1
coupling = {1 / L!r}
""")


def reference_index(configurations):
    """Row of each nqs configuration in the Kronecker basis (site 0 most
    significant, local index 0 = up = +1)."""
    down = (np.asarray(configurations) < 0).astype(np.int64)
    n = down.shape[1]
    return down @ (1 << np.arange(n - 1, -1, -1))


@pytest.mark.parametrize("initial,local,h", [('"+x"', [1, 1], 0.5), ('"up"', [1, 0], 1.0)])
def test_quench_matches_dense_expm(initial, local, h):
    L = 8
    zz, sx, H = tfim(L, 1.0, h)
    evo = nqs_core.exact_evolution(config(L, h, initial), keep_states=True)
    assert np.allclose(evo.times, [0, 0.25, 0.5, 0.75, 1.0], atol=0, rtol=0)
    psi0 = product(local, L)
    rows = reference_index(evo.configurations)
    for k, t in enumerate(evo.times):
        psi = sl.expm(-1j * t * H) @ psi0
        assert abs(evo.energy[k] - np.vdot(psi, H @ psi).real) < 1e-10
        assert abs(evo.observables["x"][k] - np.vdot(psi, sx @ psi).real / L) < 1e-10
        assert abs(evo.observables["zz"][k] - np.vdot(psi, zz @ psi).real / L) < 1e-10
        # the stored state is the physical vector (up to nothing: same global phase)
        assert np.max(np.abs(evo.states[k] - psi[rows])) < 1e-10
    assert evo.observables["x"].dtype == np.float64
    assert np.ptp(evo.energy) < 1e-10  # energy conserved
    assert abs(evo.observables["x"][1] - evo.observables["x"][0]) > 1e-3  # it moves


def magnus4(psi, H_of, t0, t1, n):
    """Fourth-order Magnus with two Gauss-Legendre points (Blanes, Casas, Oteo & Ros 2009)."""
    dt = (t1 - t0) / n
    c = np.sqrt(3) / 6
    for k in range(n):
        a = t0 + k * dt
        A1, A2 = H_of(a + (0.5 - c) * dt), H_of(a + (0.5 + c) * dt)
        omega = -0.5j * dt * (A1 + A2) - np.sqrt(3) / 12 * dt**2 * (A2 @ A1 - A1 @ A2)
        psi = sl.expm(omega) @ psi
    return psi


def test_linear_ramp_and_jump_against_magnus():
    """h ramps from 2 to 0.5 on [0, 0.5], then jumps to 1 at t = 0.75."""
    L = 6
    zz, sx, _ = tfim(L, 1.0, 0.0)
    schedule = '[[driver.schedule]]\nfield = "h"\ntimes = [0.0, 0.5, 0.75, 0.75]\nvalues = [2.0, 0.5, 0.5, 1.0]'
    cfg = config(L, 2.0, '"+x"', t_end=1.0, t_out=0.5, extra=schedule)
    evo = nqs_core.exact_evolution(cfg, max_dt=5e-4)

    def h_of(t):
        return 1.0 if t >= 0.75 else 2.0 - 3.0 * min(max(t, 0.0), 0.5)

    def H_of(t):
        return -zz - h_of(t) * sx

    psi = product([1, 1], L)
    pieces = {0.5: [(0.0, 0.5, 100)], 1.0: [(0.5, 0.75, 2), (0.75, 1.0, 2)]}
    for k, t in enumerate(evo.times):
        for a, b, n in pieces.get(t, []):
            psi = magnus4(psi, H_of, a, b, n)
        assert abs(evo.energy[k] - np.vdot(psi, H_of(t) @ psi).real) < 1e-6
        assert abs(evo.observables["x"][k] - np.vdot(psi, sx @ psi).real / L) < 1e-6
        assert abs(evo.observables["zz"][k] - np.vdot(psi, zz @ psi).real / L) < 1e-6


def test_imaginary_time_reaches_the_ground_state():
    L = 8
    _, _, H = tfim(L, 1.0, 1.0)
    e0 = np.linalg.eigvalsh(H)[0]
    evo = nqs_core.exact_evolution(config(L, 1.0, '"+x"', t_end=8.0, t_out=2.0, time="imaginary"))
    assert evo.time == "imaginary"
    assert np.all(np.diff(evo.energy) < 0)  # the energy only goes down
    assert abs(evo.energy[-1] - e0) < 1e-8
    assert evo.variance[-1] < 1e-7


def test_marshall_rotation_and_complex_initial_state():
    """The Heisenberg chain in the Marshall-rotated basis evolves the same
    physical state as without the rotation; a complex product state (+y)."""
    L = 6
    base = f"""
[lattice]
name = "chain"
length = {L}
[space]
name = "spin_half"
[driver]
name = "tdvp"
t_end = 0.6
t_out = 0.3
initial_state = [[1.0, 0.0], [0.6, 0.8]]
[observables.y0]
name = "operator"
op = "Y"
sites = [[0]]
"""
    plain = nqs_core.exact_evolution(loads_config(base + '[system]\nname = "heisenberg"\n'), keep_states=True)
    rotated = nqs_core.exact_evolution(loads_config(base + '[system]\nname = "heisenberg"\nmarshall_sign = true\n'), keep_states=True)
    assert np.max(np.abs(plain.states - rotated.states)) < 1e-12
    assert np.max(np.abs(plain.observables["y0"] - rotated.observables["y0"])) < 1e-12
    # reference: S_i . S_j in spin units on the ring, from (1, 0.6 + 0.8i)/norm per site
    ss = sum(sum(site(P, i, L) @ site(P, (i + 1) % L, L) for P in (X, Y, Z)) for i in range(L)) / 4
    psi0 = product([1.0, 0.6 + 0.8j], L)
    rows = reference_index(plain.configurations)
    for k, t in enumerate(plain.times):
        psi = sl.expm(-1j * t * ss) @ psi0
        assert np.max(np.abs(plain.states[k] - psi[rows])) < 1e-10
        assert abs(plain.observables["y0"][k] - np.vdot(psi, site(Y, 0, L) @ psi).real) < 1e-10


def test_initial_state_from_the_ansatz():
    """Without initial_state: the ansatz's own initial parameters (evaluated here on every state)."""
    L = 4
    cfg = config(L, 1.0, None, t_end=0.5, t_out=0.5, extra="")
    cfg["ansatz"] = {"name": "rbm", "alpha": 1, "param_dtype": "complex128"}
    evo = nqs_core.exact_evolution(cfg, keep_states=True)
    ansatz = nqs_core.build({k: v for k, v in cfg.items() if k != "driver"}, stop_after="ansatz")["ansatz"]
    log_psi = np.asarray(jax.jit(jax.vmap(ansatz))(jax.numpy.asarray(evo.configurations))).astype(complex)
    psi0 = np.exp(log_psi - log_psi.real.max())
    psi0 /= np.linalg.norm(psi0)
    assert np.max(np.abs(evo.states[0] - psi0)) < 1e-12
    rows = reference_index(evo.configurations)
    _, _, H = tfim(L, 1.0, 1.0)
    ref = np.zeros_like(psi0)
    ref[rows] = psi0
    psi = sl.expm(-0.5j * H) @ ref
    assert np.max(np.abs(evo.states[1] - psi[rows])) < 1e-10


def test_output_times_and_errors(tmp_path):
    assert np.allclose(nqs_core._evolve.output_times(1.0, 0.3), [0, 0.3, 0.6, 0.9, 1.0])
    assert np.allclose(nqs_core._evolve.output_times(None, [0.1, 0.5]), [0, 0.1, 0.5])
    assert np.allclose(nqs_core._evolve.output_times(1.0, [0.1, 0.5]), [0, 0.1, 0.5, 1.0])
    assert np.allclose(nqs_core._evolve.output_times(2.0, None), np.arange(101) * 0.02, rtol=0, atol=1e-12)
    vmc = config(4, 1.0, '"+x"')
    vmc["driver"] = {"name": "vmc"}
    with pytest.raises(ConfigError, match='name = "tdvp"'):
        nqs_core.exact_evolution(vmc)
    with pytest.raises(ConfigError, match="64 states, more than max_states = 32"):
        nqs_core.exact_evolution(config(6, 1.0, '"+x"'), max_states=32)
    with pytest.raises(ConfigError, match="initial_state"):
        nqs_core.exact_evolution(config(4, 1.0, '"sideways"'))
    with pytest.raises(ConfigError, match="no initial state"):
        nqs_core.exact_evolution(config(4, 1.0, None))
    with pytest.raises(ConfigError, match="time must be one of"):
        nqs_core.exact_evolution(config(4, 1.0, '"+x"', time="complex"))
    with pytest.raises(ConfigError, match="not in \\[system\\]"):
        nqs_core.exact_evolution(config(4, 1.0, '"+x"', extra='[[driver.schedule]]\nfield = "g"\ntimes = [0.0]\nvalues = [1.0]'))


def test_initial_state_from_init_from(tmp_path):
    """`[run] init_from`: the state of another run directory (its last checkpoint's parameters)."""
    import equinox as eqx

    L = 4
    source = tmp_path / "gs"
    source.mkdir()
    vmc = loads_config(f"""
[lattice]
name = "chain"
length = {L}
[space]
name = "spin_half"
[system]
name = "ising"
h = 2.0
[ansatz]
name = "rbm"
alpha = 1
param_dtype = "complex128"
[sampler]
name = "full_sum"
""")
    calc = nqs_core.build(vmc)
    params, static = nqs_core.parameters(calc.driver.ansatz)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    params = jax.tree.unflatten(tree, [x + (0.3 * rng.standard_normal(x.shape) + 0.3j * rng.standard_normal(x.shape)).astype(x.dtype) for x in leaves])
    (source / "config.toml").write_text(nqs_core._toml.resolved_toml(calc))
    nqs_core.save_checkpoint(source, (params,), {"step": 1})
    cfg = config(L, 0.5, None, t_end=0.5, t_out=0.5)
    cfg["run"] = {"init_from": str(source)}
    evo = nqs_core.exact_evolution(cfg)
    model = eqx.combine(params, static)
    # every configuration in the Kronecker order (site 0 most significant, index 0 = up = +1)
    configs = 1.0 - 2.0 * ((np.arange(2**L)[:, None] >> np.arange(L - 1, -1, -1)) & 1)
    log_psi = np.asarray(jax.jit(jax.vmap(model))(jax.numpy.asarray(configs))).astype(complex)
    psi0 = np.exp(log_psi - log_psi.real.max())
    psi0 /= np.linalg.norm(psi0)
    zz, sx, H = tfim(L, 1.0, 0.5)
    for k, t in enumerate(evo.times):
        psi = sl.expm(-1j * t * H) @ psi0
        assert abs(evo.energy[k] - np.vdot(psi, H @ psi).real) < 1e-10
        assert abs(evo.observables["x"][k] - np.vdot(psi, sx @ psi).real / L) < 1e-10
    cfg["run"] = {"init_from": str(tmp_path / "nothing")}
    with pytest.raises(ConfigError, match="init_from"):
        nqs_core.exact_evolution(cfg)
