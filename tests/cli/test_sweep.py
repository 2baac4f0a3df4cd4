"""`nqs sweep` end to end (issue 29 item 1): a TFIM chain L = 12 swept over 5
values of h with warm start, every point against an exact diagonalisation
written here; killed during the third point and resumed: the finished points
are not rerun and the summary equals that of the uninterrupted sweep."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from typer.testing import CliRunner

from nqs_cli import app

ROOT = pathlib.Path(__file__).parents[2]
L = 12
H_VALUES = [0.5, 0.8, 1.0, 1.2, 1.5]

SWEEP = f"""
[run]
n_steps = 30
seed = 1
checkpoint_every = 5

[lattice]
name = "chain"
length = {L}
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
name = "full_sum"

[preconditioner]
name = "sr"
diag_shift = 0.001

[optimizer]
name = "sgd"
learning_rate = 0.1

[observables.sx]
name = "operator"
op = "Sx"
sites = "all"

[sweep]
system.h = {H_VALUES}
warm_start = true
"""

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ed_tfim(n, h, J=1.0):
    """Ground energy and <sum_i S^x_i> of H = -J sum Z_i Z_{i+1} - h sum X_i (Pauli units, periodic), by Kronecker products."""
    X = sp.csr_matrix([[0.0, 1.0], [1.0, 0.0]])
    Z = sp.csr_matrix([[1.0, 0.0], [0.0, -1.0]])

    def site(op, i):
        out = sp.identity(1, format="csr")
        for j in range(n):
            out = sp.kron(out, op if j == i else sp.identity(2, format="csr"), format="csr")
        return out

    xs = [site(X, i) for i in range(n)]
    zs = [site(Z, i) for i in range(n)]
    sx = sum(xs)
    H = -J * sum(zs[i] @ zs[(i + 1) % n] for i in range(n)) - h * sx
    w, v = spla.eigsh(H, k=1, which="SA", tol=1e-12)
    psi = v[:, 0]
    return float(w[0]), float(psi @ (sx @ psi)) / 2


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tfim_sweep.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def reference(config_file):
    out = config_file.parent / "reference"
    r = invoke("sweep", config_file, "-o", out, "-q", "--plot", "energy")
    assert r.exit_code == 0, r.output
    return out, r.output


def rows(sweep_dir):
    return json.loads((sweep_dir / "summary.json").read_text())["points"]


def test_sweep_matches_exact_diagonalisation(reference):
    out, text = reference
    points = rows(out)
    assert [p["system.h"] for p in points] == H_VALUES
    assert [p["point"] for p in points] == [f"{i:03d}_system.h={h:g}" for i, h in enumerate(H_VALUES)]
    for p in points:
        e0, sx0 = ed_tfim(L, p["system.h"])
        assert p["status"] == "ok" and p["exit_code"] == 0
        assert abs(p["energy"] - e0) / abs(e0) < 1e-3, (p["system.h"], p["energy"], e0)
        assert p["exact_energy"] == pytest.approx(e0, rel=1e-10)
        assert abs(p["observables"]["sx"]["mean"] - sx0) < 2e-2 * L / 2, (p["observables"]["sx"]["mean"], sx0)
        assert p["v_score"] is not None and 0 <= p["v_score"] < 1e-2  # N Var(E) / (E - E_inf)^2 of a near-exact state
    # warm start: every point after the first starts from the previous one's parameters
    for i, h in enumerate(H_VALUES[1:], start=1):
        cfg = (out / points[i]["point"] / "config.toml").read_text()
        assert f'init_from = "{(out / points[i - 1]["point"]).resolve()}"' in cfg
    assert "init_from" not in (out / points[0]["point"] / "config.toml").read_text().replace('init_from = ""', "")
    # the table: CSV with the scalar observable's columns, printed as a table
    with open(out / "summary.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [float(t["energy"]) for t in table] == [p["energy"] for p in points]
    assert {"system.h", "energy", "energy_error", "variance", "v_score", "exact_energy", "sx", "sx_error"} <= set(table[0])
    assert "sweep summary" in text
    # the plot and its data
    assert (out / "energy.png").stat().st_size > 10_000
    with open(out / "energy.csv") as fh:
        data = list(csv.DictReader(fh))
    assert [float(d["exact_energy"]) for d in data] == pytest.approx([ed_tfim(L, h)[0] for h in H_VALUES], rel=1e-10)
    # a scalar observable against h, with its exact curve on the exact ground state of every point
    import nqs_core

    png, data_file = nqs_core.plot_sweep(out, "sx")
    assert png.stat().st_size > 10_000
    with open(data_file) as fh:
        data = list(csv.DictReader(fh))
    assert [float(d["exact_sx"]) for d in data] == pytest.approx([ed_tfim(L, h)[1] for h in H_VALUES], rel=1e-8)


def _start_sweep(config_file, out):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(ROOT / ".jax_cache"))
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", "sweep", str(config_file), "-o", str(out), "-q"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_sweep_resumes_without_rerunning_finished_points(reference, config_file):
    ref, _ = reference
    out = config_file.parent / "killed"
    proc = _start_sweep(config_file, out)
    third = None
    t0 = time.monotonic()
    while third is None or not (third / "log.jsonl").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < 600, "the sweep made no progress"
        found = sorted(out.glob("002_*")) if out.exists() else []
        third = found[0] if found else None
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (third / "result.json").exists(), "the third point finished before the kill"
    assert not list(out.glob("003_*"))
    finished = {p: p.stat().st_mtime_ns for d in sorted(out.glob("00[01]_*")) for p in d.iterdir()}
    assert len(finished) >= 8
    r = invoke("sweep", "--resume", out, "-q")
    assert r.exit_code == 0, r.output
    assert r.output.count("skipped") == 2
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    got, want = rows(out), rows(ref)
    assert [g["status"] for g in got] == ["ok"] * 5
    for g, w in zip(got, want):
        for k in ("energy", "variance", "exact_energy"):
            assert g[k] == pytest.approx(w[k], rel=1e-12, abs=1e-12), (g["point"], k)
        assert g["observables"]["sx"]["mean"] == pytest.approx(w["observables"]["sx"]["mean"], rel=1e-12, abs=1e-12)
    # an edited sweep is refused, in one line
    edited = config_file.parent / "edited.toml"
    edited.write_text(SWEEP.replace("n_steps = 30", "n_steps = 31"))
    r = invoke("sweep", edited, "-o", out, "-q")
    assert r.exit_code == 2 and "holds a sweep with other config values (run.n_steps)" in r.output
    assert len([x for x in r.output.splitlines() if x.strip()]) == 1
