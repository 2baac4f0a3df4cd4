"""What a user sees through a pipe: `nqs list | cat` at 80 columns, `nqs run | cat`
progress lines, `nqs exact` digits, `nqs doctor`, `nqs --version` (real subprocesses,
stdout not a terminal)."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real subprocesses: each pays the import of jax and the plugins


def nqs(*args, cwd, columns=80):
    env = dict(os.environ, COLUMNS=str(columns))
    env.pop("NQS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "nqs_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_list_readable_at_80_columns(tmp_path):
    r = nqs("list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert not any(c in r.stdout for c in "│┃━─")  # no box table
    # one line per component, under a heading per kind
    rbm = [line for line in lines if line.split()[:1] == ["rbm"]]
    assert len(rbm) == 1 and "networks" in rbm[0] and "Restricted Boltzmann" in rbm[0]
    assert any(line.startswith("ansatz (") for line in lines)
    assert not re.search(r"seed ?0|seed's|the slides|seed eq", r.stdout, re.IGNORECASE)
    # --json: every component, full summaries
    rows = json.loads(nqs("list", "--json", cwd=tmp_path).stdout)
    assert {"kind", "name", "plugin", "summary"} <= set(rows[0])
    names = {(row["kind"], row["name"]) for row in rows}
    assert ("ansatz", "rbm") in names and ("system", "ising") in names
    assert sum(1 for line in lines if line.startswith("  ")) == len(rows)
    wide = nqs("list", "system", cwd=tmp_path, columns=300).stdout
    ising = next(row["summary"] for row in rows if row["name"] == "ising")
    assert ising in wide  # not cut on a wide terminal


def test_run_through_a_pipe_prints_progress_lines(tmp_path, small_config_file):
    r = nqs("run", small_config_file, "-o", tmp_path / "run", "--set", "run.n_steps=10",
            "--set", "run.exact_energy='auto'", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("step ")]
    # about 20 lines per run at most, the last step always
    assert [int(line.split()[1].split("/")[0]) for line in lines] == list(range(1, 11))
    pattern = re.compile(r"^step (\d+)/10  E = -?\d+\.\d+ ± \d+\.\d+  rel\.err \d\.\de[+-]\d\d  .* s/step(  ETA \S+ \S+)?")
    for line in lines:
        assert pattern.match(line), line
    assert "ETA" in lines[0] and "ETA" not in lines[-1]
    assert "━" not in r.stdout and "…" not in r.stdout
    quiet = nqs("run", small_config_file, "-o", tmp_path / "run2", "-q", "--set", "run.n_steps=3", cwd=tmp_path)
    assert quiet.returncode == 0 and "step " not in quiet.stdout and "Energy" in quiet.stdout


def test_exact_prints_full_float64_and_digits(tmp_path, small_config_file):
    # transverse-field Ising chain, L = 6, J = 1, h = 0.8, PBC (the test config):
    # E0 = -sum_k sqrt(1 + h^2 - 2 h cos k), k = (2n + 1) pi / L
    k = (2 * np.arange(6) + 1) * np.pi / 6
    closed = -np.sum(np.sqrt(1 + 0.8**2 - 2 * 0.8 * np.cos(k)))
    r = nqs("exact", small_config_file, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = r.stdout.split("E0 = ")[1].split()[0]
    assert len(text.lstrip("-").replace(".", "")) >= 15  # a full float64, not 10 decimals
    assert float(text) == pytest.approx(closed, abs=1e-11)
    r = nqs("exact", small_config_file, "--digits", "3", cwd=tmp_path)
    assert r.stdout.split("E0 = ")[1].split()[0] == f"{closed:.3f}"
    assert nqs("exact", small_config_file, "--digits", "-1", cwd=tmp_path).returncode == 2


def test_doctor_and_version(tmp_path):
    r = nqs("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"nqs {importlib.metadata.version('nqs')}"
    r = nqs("doctor", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for word in ("python", "jax ", "backend", "device", "plugins (", "spins", "ok"):
        assert word in r.stdout
    assert re.search(r"^  numpy\s+\d", r.stdout, re.MULTILINE)
