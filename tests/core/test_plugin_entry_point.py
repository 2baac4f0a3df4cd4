"""Third-party plugin packages, loaded through a real `nqs.plugins` entry
point, show in `nqs list` and run from a config: the docs' two example plugins
(an ansatz, `docs/example_plugin`, and a Hamiltonian, `docs/example_hamiltonian_plugin`,
whose own tests run here with the plugin installed)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).parents[2] / "docs"
EXAMPLE = DOCS / "example_plugin"
HAMILTONIAN_EXAMPLE = DOCS / "example_hamiltonian_plugin"


def install(example, site):
    """'Install' an example plugin: its package (named in its pyproject.toml) plus a
    dist-info with the entry points from its pyproject.toml, into `site` (put on PYTHONPATH)."""
    import tomllib

    meta = tomllib.loads((example / "pyproject.toml").read_text())
    (package,) = meta["tool"]["setuptools"]["packages"]
    name, version = meta["project"]["name"], meta["project"]["version"]
    shutil.copytree(example / package, site / package)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    eps = meta["project"]["entry-points"]["nqs.plugins"]
    (info / "entry_points.txt").write_text("[nqs.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return site


@pytest.fixture
def plugin_path(tmp_path):
    return install(EXAMPLE, tmp_path / "site")


def run_python(*args, site, cwd):
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def nqs(*args, site, cwd):
    return run_python("-m", "nqs_cli", *args, site=site, cwd=cwd)


def test_example_plugin_lists_and_runs(plugin_path, tmp_path, small_config_file):
    r = nqs("list", "ansatz", site=plugin_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "mean_field" in r.stdout and "mean_field" in r.stdout.split("rbm")[0] + r.stdout
    assert "failed" not in r.stderr
    r = nqs("run", small_config_file, "-q", "-o", tmp_path / "run", "--set", "ansatz.name=mean_field",
            "--set", "ansatz.alpha=1", site=plugin_path, cwd=tmp_path)
    # alpha is not a field of mean_field: the error names the plugin's valid fields
    assert r.returncode == 2 and "valid fields: init_std" in r.stderr
    cfg = small_config_file.read_text().replace('name = "rbm"\nalpha = 1\nparam_dtype = "complex128"', 'name = "mean_field"')
    (tmp_path / "mf.toml").write_text(cfg)
    r = nqs("run", tmp_path / "mf.toml", "-q", "-o", tmp_path / "run2", "--set", "run.n_steps=3", site=plugin_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Energy" in r.stdout
    r = nqs("list", "ansatz", site=plugin_path, cwd=tmp_path)
    assert "mean_field" in r.stdout


def test_plugin_autoload_can_be_disabled(plugin_path, tmp_path):
    env_site = plugin_path
    r = subprocess.run(
        [sys.executable, "-m", "nqs_cli", "list", "ansatz"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(env_site), NQS_DISABLE_PLUGIN_AUTOLOAD="1"),
    )
    assert r.returncode == 0 and "mean_field" not in r.stdout and "rbm" in r.stdout


@pytest.mark.slow
def test_hamiltonian_example_plugin(tmp_path, small_config_file):
    site = install(HAMILTONIAN_EXAMPLE, tmp_path / "site")
    # the plugin's own tests (closed forms, agreement with the built-in heisenberg), installed
    r = run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", HAMILTONIAN_EXAMPLE,
                   HAMILTONIAN_EXAMPLE / "tests", site=site, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and "skipped" not in r.stdout
    r = nqs("list", "system", site=site, cwd=tmp_path)
    assert r.returncode == 0 and "failed" not in r.stderr
    assert any(line.split()[:2] == ["xxz", "xxz"] for line in r.stdout.splitlines()), r.stdout
    # a config that uses it: the Heisenberg chain as XXZ at delta = 1 (L = 6, PBC, S^z = 0)
    cfg = small_config_file.read_text().replace('name = "ising"\nh = 0.8', 'name = "xxz"\ndelta = 1.0')
    cfg = cfg.replace('name = "spin_half"', 'name = "spin_half"\ntotal_sz = 0.0').replace('"metropolis_local"', '"metropolis_exchange"')
    (tmp_path / "xxz.toml").write_text(cfg)
    r = nqs("exact", tmp_path / "xxz.toml", site=site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    e_xxz = float(r.stdout.split("E0 = ")[1].split()[0])
    assert e_xxz == pytest.approx(-2.8027756377319946, abs=1e-10)  # 6-site Heisenberg ring, S units (ED)
    r = nqs("run", tmp_path / "xxz.toml", "-q", "-o", tmp_path / "run", "--set", "run.n_steps=3", site=site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Energy" in r.stdout
