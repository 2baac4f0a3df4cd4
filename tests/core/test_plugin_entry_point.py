"""A third-party plugin package, loaded through a real `nqs.plugins` entry
point, shows in `nqs list` and runs from a config (the docs' example plugin)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).parents[2] / "docs" / "example_plugin"


@pytest.fixture
def plugin_path(tmp_path):
    """'Install' the example plugin: its module plus a dist-info with the entry
    point from its pyproject.toml, on a directory put on PYTHONPATH."""
    import tomllib

    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE / "nqs_mean_field", site / "nqs_mean_field")
    info = site / "nqs_mean_field-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nqs-mean-field\nVersion: 0.1.0\n")
    eps = meta["project"]["entry-points"]["nqs.plugins"]
    (info / "entry_points.txt").write_text("[nqs.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return site


def nqs(*args, site, cwd):
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "nqs_cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


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
