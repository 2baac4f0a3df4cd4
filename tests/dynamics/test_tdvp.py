"""The TDVP driver against exact dynamics (issue 30): every reference is
computed here from Kronecker products of Pauli matrices with scipy
(`expm_multiply`, `eigsh`), never by nqs. TFIM in Pauli units,
`H = -J sum Z_i Z_i+1 - h sum X_i`, periodic chain."""

import copy
import functools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh, expm_multiply

import nqs_core
from nqs_core import ConfigError, read_log

X = sp.csr_matrix([[0.0, 1.0], [1.0, 0.0]])
Z = sp.csr_matrix([[1.0, 0.0], [0.0, -1.0]])


@functools.cache
def _tfim(n):
    """(sum Z_i Z_i+1, sum X_i) as sparse matrices, site 0 the leftmost factor."""
    def site(op, i):
        return sp.kron(sp.kron(sp.identity(2**i), op), sp.identity(2 ** (n - i - 1)), format="csr")

    zz = sum(site(Z, i) @ site(Z, (i + 1) % n) for i in range(n))
    xx = sum(site(X, i) for i in range(n))
    return zz.tocsr(), xx.tocsr()


def _exact(n, h, psi0, times):
    """Energy, <X_i> and <Z_i Z_i+1> (per site) of exp(-iHt) psi0 at `times`."""
    zz, xx = _tfim(n)
    hamiltonian = -zz - h * xx
    states = expm_multiply(-1j * hamiltonian, psi0.astype(complex), start=0.0, stop=times[-1], num=len(times), endpoint=True)
    energy = np.array([np.vdot(v, hamiltonian @ v).real for v in states])
    x = np.array([np.vdot(v, xx @ v).real for v in states]) / n
    zzs = np.array([np.vdot(v, zz @ v).real for v in states]) / n
    return energy, x, zzs


def _product(n, amplitudes):
    local = np.asarray(amplitudes, dtype=complex)
    local = local / np.linalg.norm(local)
    psi = np.ones(1, dtype=complex)
    for _ in range(n):
        psi = np.kron(psi, local)
    return psi


def _config(n, h, **driver):
    return {
        "run": {"seed": 1, "n_eval_batches": 1, "exact_check": "off"},
        "lattice": {"name": "chain", "length": n, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "h": h},
        "ansatz": {"name": "rbm", "alpha": 2, "param_dtype": "complex128"},
        "sampler": {"name": "full_sum"},
        "driver": {"name": "tdvp", **driver},
        # per site: <X_i> = (1/N) sum_i sigma^x_i = (2/N) sum_i S^x_i; <Z_i Z_i+1> = (4/N) sum S^z S^z
        "observables": {
            "x": {"name": "operator", "terms": [{"op": "Sx", "sites": "all", "coupling": 2.0 / n}]},
            "zz": {"name": "operator", "terms": [{"op": "SzSz", "bonds": 1, "coupling": 4.0 / n}]},
        },
    }


def _series(log, name):
    return np.array([r["observables"][name]["mean"] for r in log])


@pytest.fixture(scope="module")
def ground_state_h2(tmp_path_factory):
    """The RBM ground state of h0 = 2 by imaginary-time TDVP from |+x>."""
    cfg = _config(
        8, 2.0, time="imaginary", t_end=2.0, t_out=1.0, initial_state="+x",
        integrator={"name": "rk4", "dt": 0.05}, solver={"name": "sr", "diag_shift": 0.0, "rcond": 1e-8},
    )
    del cfg["observables"]
    run_dir = tmp_path_factory.mktemp("gs") / "run"
    result = nqs_core.run(cfg, run_dir=run_dir, progress=False)
    return run_dir, result


def test_imaginary_time_from_plus_x_converges_to_the_ground_state(ground_state_h2):
    _, result = ground_state_h2
    zz, xx = _tfim(8)
    e0 = eigsh(-zz - 2.0 * xx, k=1, which="SA")[0][0]
    log = read_log(result.run_dir)
    assert [r["t"] for r in log] == [0.0, 1.0, 2.0]
    assert log[0]["energy"] == pytest.approx(-16.0, abs=1e-12)  # <+x|H|+x> = -h N
    assert all(b["energy"] < a["energy"] for a, b in zip(log, log[1:]))  # imaginary time lowers the energy
    assert abs(result.energy.mean - e0) / abs(e0) < 1e-4
    assert result.payload["t"] == 2.0 and result.payload["time"] == "imaginary"


def test_quench_from_the_ground_state_follows_the_exact_dynamics(ground_state_h2, tmp_path):
    """h0 = 2 -> h1 = 0.5 from the (TDVP) ground state of h0: <X>, <ZZ> within
    1e-3 of exp(-iH1 t)|E0(h0)> up to t = 1, energy conserved to 1e-4."""
    gs_dir, _ = ground_state_h2
    cfg = _config(
        8, 0.5, time="real", t_end=1.0, t_out=0.25,
        integrator={"name": "rk4", "dt": 0.005}, solver={"name": "sr", "diag_shift": 0.0, "rcond": 1e-8},
    )
    cfg["run"]["init_from"] = str(gs_dir)
    nqs_core.run(cfg, run_dir=tmp_path / "quench", progress=False)
    log = read_log(tmp_path / "quench")
    times = np.array([r["t"] for r in log])
    np.testing.assert_allclose(times, [0.0, 0.25, 0.5, 0.75, 1.0])
    zz, xx = _tfim(8)
    _, v = eigsh(-zz - 2.0 * xx, k=1, which="SA")
    energy, x, zzs = _exact(8, 0.5, v[:, 0], times)
    np.testing.assert_allclose(_series(log, "x"), x, atol=1e-3)
    np.testing.assert_allclose(_series(log, "zz"), zzs, atol=1e-3)
    e = np.array([r["energy"] for r in log])
    assert np.max(np.abs(e - e[0])) < 1e-4 * abs(e[0])
    assert abs(e[0] - energy[0]) < 1e-4 * abs(energy[0])
    assert all(r["residual"] < 0.1 and r["effective_rank"] > 0 for r in log[:-1])


def test_quench_from_all_up(tmp_path):
    """All spins up -> h1 = 1: the product state (1, 1e-2) per site that the RBM
    represents exactly ("up" with zero_amplitude = 1e-2), adaptive RK23 through
    the stiff start (the state leaves a basis state). Within 1e-3 of the exact
    evolution of that state up to t = 0.5 (zero_amplitude = 1e-3 and t = 1:
    examples/dynamics/README.md)."""
    cfg = _config(
        8, 1.0, time="real", t_end=0.5, t_out=0.25, initial_state="up", zero_amplitude=1e-2,
        integrator={"name": "rk23", "dt": 1e-4, "rtol": 1e-4, "atol": 1e-6},
        solver={"name": "sr", "diag_shift": 1e-6},
    )
    nqs_core.run(cfg, run_dir=tmp_path / "up", progress=False)
    log = read_log(tmp_path / "up")
    times = np.array([r["t"] for r in log])
    _, x, zzs = _exact(8, 1.0, _product(8, [1.0, 1e-2]), times)
    assert _series(log, "zz")[0] == pytest.approx(zzs[0], abs=1e-12)
    np.testing.assert_allclose(_series(log, "x"), x, atol=1e-3)
    np.testing.assert_allclose(_series(log, "zz"), zzs, atol=1e-3)
    e = np.array([r["energy"] for r in log])
    assert np.max(np.abs(e - e[0])) < 1e-4 * abs(e[0])
    assert log[0]["n_substeps"] > 10  # the controller took small steps at the start


def _params(run_dir, like):
    state, _ = nqs_core.load_checkpoint(run_dir, like)
    return nqs_core.real_ravel(state.params)[0]


def test_sr_and_srt_give_the_same_trajectory(tmp_path):
    """P = 88 real parameters > 2M = 32 rows (full sum over 16 states): the
    parameter-space and sample-space solves of the same regularisation give
    the same evolution to 1e-8."""
    runs = {}
    for name in ("sr", "srt"):
        cfg = _config(4, 1.0, time="real", t_end=0.2, t_out=0.1, initial_state="+x",
                      integrator={"name": "rk4", "dt": 0.02}, solver={"name": name, "diag_shift": 1e-4, "rcond": 1e-6})
        runs[name] = nqs_core.run(cfg, run_dir=tmp_path / name, progress=False)
    assert runs["sr"].state.params is not None
    a = _params(tmp_path / "sr", runs["sr"].state)
    b = _params(tmp_path / "srt", runs["sr"].state)
    assert np.max(np.abs(a - b)) < 1e-8 * np.max(np.abs(a))
    log_a, log_b = read_log(tmp_path / "sr"), read_log(tmp_path / "srt")
    np.testing.assert_allclose(_series(log_a, "x"), _series(log_b, "x"), atol=1e-10)


def test_monte_carlo_tdvp_lies_within_its_error_bars_of_the_full_sum(tmp_path):
    """The same quench with direct sampling of |psi|^2 (2048 samples per
    evaluation): <X> within 3 error bars of the full-sum evolution."""
    base = _config(6, 1.0, time="real", t_end=0.3, t_out=0.1, initial_state="+x",
                   integrator={"name": "rk4", "dt": 0.025}, solver={"name": "sr", "diag_shift": 1e-3})
    nqs_core.run(base, run_dir=tmp_path / "exact", progress=False)
    mc = copy.deepcopy(base)
    mc["sampler"] = {"name": "exact", "n_samples": 2048}
    nqs_core.run(mc, run_dir=tmp_path / "mc", progress=False)
    a, b = read_log(tmp_path / "exact"), read_log(tmp_path / "mc")
    x_exact = _series(a, "x")
    x_mc = _series(b, "x")
    err = np.array([r["observables"]["x"]["error"] for r in b])
    assert np.all(err[1:] > 0)
    assert np.all(np.abs(x_mc - x_exact) <= 3 * err + 1e-12), (x_mc - x_exact) / np.maximum(err, 1e-300)
    assert abs(x_exact[-1] - x_exact[0]) > 10 * err[-1]  # the evolution moved far beyond the noise


def test_a_linear_ramp_of_the_field(tmp_path):
    """h ramps from 1.0 to 0.5 over t in [0, 0.3], then stays: against a dense
    evolution with 3000 midpoint steps of the piecewise-linear H(t)."""
    n = 6
    cfg = _config(n, 1.0, time="real", t_end=0.4, t_out=0.1, initial_state="+x",
                  integrator={"name": "rk4", "dt": 0.005}, solver={"name": "sr", "diag_shift": 0.0, "rcond": 1e-8},
                  schedule=[{"field": "h", "times": [0.0, 0.3], "values": [1.0, 0.5]}])
    nqs_core.run(cfg, run_dir=tmp_path / "ramp", progress=False)
    log = read_log(tmp_path / "ramp")
    zz, xx = _tfim(n)
    psi = _product(n, [1.0, 1.0])
    steps, t_end = 4000, 0.4
    dt = t_end / steps
    ref = {}
    for k in range(steps):
        tm = (k + 0.5) * dt
        h = 1.0 - 0.5 * min(tm, 0.3) / 0.3
        psi = expm_multiply(-1j * dt * (-zz - h * xx), psi)
        t = round((k + 1) * dt, 12)
        if abs(t / 0.1 - round(t / 0.1)) < 1e-9:
            ref[round(t, 6)] = np.vdot(psi, xx @ psi).real / n
    for r in log[1:]:
        assert r["observables"]["x"]["mean"] == pytest.approx(ref[round(r["t"], 6)], abs=1e-3)
    # the energy at t is that of H(t): at t = 0 it is -h(0) N, after the ramp no longer conserved
    assert log[0]["energy"] == pytest.approx(-1.0 * n, abs=1e-10)


def test_configuration_errors_are_one_line(tmp_path):
    real = _config(4, 1.0, time="real", t_end=0.1)
    real["ansatz"]["param_dtype"] = "float64"
    with pytest.raises(ConfigError, match="complex log psi"):
        nqs_core.run(real, run_dir=tmp_path / "a", progress=False)
    bad = _config(4, 1.0, time="real", t_end=0.1, schedule=[{"field": "hx", "times": [0.0], "values": [1.0]}])
    with pytest.raises(ConfigError, match="'hx' is not in \\[system\\]"):
        nqs_core.run(bad, run_dir=tmp_path / "b", progress=False)
    steps = _config(4, 1.0, time="real", t_end=0.1, t_out=0.05)
    steps["run"]["n_steps"] = 7
    with pytest.raises(ConfigError, match="records 3 output times"):
        nqs_core.run(steps, run_dir=tmp_path / "c", progress=False)
    unknown = _config(4, 1.0, time="backwards", t_end=0.1)
    with pytest.raises(ConfigError, match="time must be"):
        nqs_core.run(unknown, run_dir=tmp_path / "d", progress=False)
    assert not any(tmp_path.iterdir())  # nothing was written
