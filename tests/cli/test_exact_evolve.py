"""`nqs exact CONFIG --evolve` (--json, --save) and `nqs plot` of a time-evolution
run, against the dense evolution written here (Kronecker products, scipy expm)."""

import csv
import functools
import json

import numpy as np
import pytest
import scipy.linalg as sl
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from nqs_cli import app

runner = CliRunner()
L = 6

CONFIG = f"""
[lattice]
name = "chain"
length = {L}

[space]
name = "spin_half"

[system]
name = "ising"
h = 0.5

[driver]
name = "tdvp"
t_end = 0.6
t_out = 0.2
initial_state = "up"

[observables.x]
name = "operator"
op = "X"
sites = "all"
coupling = {1 / L!r}

[observables.mz]
name = "magnetization"
"""


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def reference(times):
    """Energy, <X>/L and <S^z>/L of the all-up state under -sum ZZ - 0.5 sum X."""
    X = np.array([[0, 1], [1, 0]], dtype=complex)
    Z = np.diag([1.0, -1.0]).astype(complex)

    def site(op, i):
        return functools.reduce(np.kron, [op if j == i else np.eye(2) for j in range(L)])

    sx = sum(site(X, i) for i in range(L))
    sz = sum(site(Z, i) for i in range(L))
    H = -sum(site(Z, i) @ site(Z, (i + 1) % L) for i in range(L)) - 0.5 * sx
    psi0 = np.zeros(2**L, dtype=complex)
    psi0[0] = 1.0
    out = []
    for t in times:
        psi = sl.expm(-1j * t * H) @ psi0
        out.append((np.vdot(psi, H @ psi).real, np.vdot(psi, sx @ psi).real / L, np.vdot(psi, sz @ psi).real / (2 * L)))
    return np.array(out)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_evolve_json_save_and_errors(tmp_path):
    cfg = tmp_path / "quench.toml"
    cfg.write_text(CONFIG)
    res = invoke("exact", cfg, "--evolve", "--json", "--save", tmp_path / "ref")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["time"] == "real" and out["saved"] == str(tmp_path / "ref")
    assert np.allclose(out["times"], [0, 0.2, 0.4, 0.6], rtol=0, atol=1e-15)
    ref = reference(out["times"])
    assert np.max(np.abs(np.asarray(out["energy"]) - ref[:, 0])) < 1e-10
    assert np.max(np.abs(np.asarray(out["observables"]["x"]["mean"]) - ref[:, 1])) < 1e-10
    mz = np.asarray(out["observables"]["mz"]["mean"])  # magnetization: entries m, m^2
    assert mz.shape == (4, 2) and np.max(np.abs(mz[:, 0] - ref[:, 2])) < 1e-10
    assert out["observables"]["mz"]["quantity"] == ["m", "m^2"]
    # the saved table
    with open(tmp_path / "ref" / "evolution.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t", "energy", "variance", "x", "mz[0]", "mz[1]"]
    table = np.array(rows[1:], dtype=float)
    assert np.max(np.abs(table[:, 1] - ref[:, 0])) < 1e-10 and np.max(np.abs(table[:, 3] - ref[:, 1])) < 1e-10
    assert 'name = "tdvp"' in (tmp_path / "ref" / "config.toml").read_text()
    import nqs_core

    back = nqs_core.load_evolution(tmp_path / "ref")
    assert np.max(np.abs(back.observables["x"] - ref[:, 1])) < 1e-10
    # the table on the terminal, with --max-dt
    res = invoke("exact", cfg, "--evolve", "--digits", "6", "--max-dt", "0.01")
    assert res.exit_code == 0, res.output
    assert "real-time evolution" in res.stdout and f"{ref[1, 1]:.6f}" in res.stdout
    # errors: a full directory, a VMC config, --max-dt without --evolve
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    res = invoke("exact", cfg, "--evolve", "--save", tmp_path / "full")
    assert res.exit_code == 2 and "holds other files" in res.output
    res = invoke("exact", cfg, "--evolve", "--set", 'driver.name="vmc"')
    assert res.exit_code == 2 and 'name = "tdvp"' in res.output
    res = invoke("exact", cfg, "--max-dt", "0.1")
    assert res.exit_code == 2 and "--evolve" in res.output


def test_plot_of_a_tdvp_run(tmp_path):
    """A fake TDVP run directory (config.toml + log.jsonl in the driver's record format)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(CONFIG)
    times = [0.0, 0.2, 0.4, 0.6]
    ref = reference(times)
    with open(run / "log.jsonl", "w") as f:
        for k, t in enumerate(times):
            f.write(json.dumps({
                "step": k, "t": t, "energy": ref[k, 0] + 0.001, "energy_error": 0.002, "variance": 1.0,
                "residual": 1e-5 * (k + 1), "effective_rank": 10, "dt": 0.01, "n_substeps": 20, "n_rejected": 0,
                "observables": {"x": {"mean": ref[k, 1] - 0.001, "error": 0.003},
                                "mz": {"mean": [ref[k, 2], 0.1], "error": [0.0, 0.0]}},
                "step_time": 0.1}) + "\n")
    res = invoke("plot", run)
    assert res.exit_code == 0, res.output
    assert (run / "energy.png").stat().st_size > 10_000
    with open(run / "energy.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["t"]) for r in rows] == times
    assert np.max(np.abs(np.array([float(r["exact_energy"]) for r in rows]) - ref[:, 0])) < 1e-10
    assert np.allclose([float(r["energy"]) for r in rows], ref[:, 0] + 0.001, rtol=0, atol=1e-12)
    assert np.allclose([float(r["residual"]) for r in rows], [1e-5, 2e-5, 3e-5, 4e-5], rtol=1e-12)
    res = invoke("plot", run, "--observable", "x", "--no-exact", "-o", tmp_path / "x.png")
    assert res.exit_code == 0, res.output
    with open(tmp_path / "x.csv") as f:
        rows = list(csv.DictReader(f))
    assert "exact_x" not in rows[0] and float(rows[2]["x_error"]) == 0.003
    res = invoke("plot", run, "--observable", "mz")
    assert res.exit_code == 0, res.output
    with open(run / "mz.csv") as f:
        rows = list(csv.DictReader(f))
    assert np.max(np.abs(np.array([float(r["exact_mz[0]"]) for r in rows]) - ref[:, 2])) < 1e-10
    res = invoke("plot", run, "--observable", "nope")
    assert res.exit_code == 2 and "unknown observable" in res.output
