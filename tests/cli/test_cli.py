"""The `nqs` command line, driven through typer's CliRunner."""

import json

import pytest
from typer.testing import CliRunner

from nqs_cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_list_and_info():
    r = invoke("list")
    assert r.exit_code == 0
    for name in ("rbm", "ising", "metropolis_local", "sr", "vmc", "energy"):
        assert name in r.output
    r = invoke("list", "ansatz")
    assert r.exit_code == 0 and "rbm" in r.output and "ising" not in r.output
    r = invoke("info", "rbm")
    assert r.exit_code == 0 and "alpha" in r.output and "param_dtype" in r.output and "Restricted Boltzmann" in r.output


def test_run_resume_plot_exact(tmp_path, small_config_file):
    out = tmp_path / "run"
    r = invoke("run", small_config_file, "-o", out, "-q", "--set", "run.n_steps=4")
    assert r.exit_code == 0, r.output
    assert "Energy" in r.output and "±" in r.output
    assert (out / "log.jsonl").exists() and (out / "checkpoint.eqx").exists()
    r = invoke("resume", out, "--steps", "6", "-q")
    assert r.exit_code == 0, r.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 6
    r = invoke("plot", out)
    assert r.exit_code == 0 and (out / "energy.png").read_bytes()[:4] == b"\x89PNG"
    r = invoke("exact", small_config_file)
    assert r.exit_code == 0 and "E0 = " in r.output
    e0 = float(r.output.split("E0 = ")[1].split()[0])
    from nqs_core import build, loads_config
    from nqs_spins import exact_energy

    assert e0 == pytest.approx(exact_energy(build(loads_config(small_config_file.read_text()), exact=False, stop_after="system")["system"]), abs=1e-9)


def test_run_prints_exact_value(tmp_path, small_config_file):
    r = invoke("run", small_config_file, "-o", tmp_path / "r", "-q", "--set", "run.n_steps=2", "--set", "run.exact_energy='auto'")
    assert r.exit_code == 0, r.output
    assert "Exact" in r.output and "relative error" in r.output
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["exact_energy"] < 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "{cfg}", "--set", "ansatz.name=rmb"], "valid names"),
        (["run", "{cfg}", "--set", "ansatz.alpah=2"], "valid fields: alpha"),
        (["run", "{cfg}", "--set", "ansatz.alpha=two"], "must be int"),
        (["run", "{cfg}", "--set", "space.n_sites=9"], "inconsistent sizes"),
        (["run", "{missing}"], "config file not found"),
        (["run", "{bad}"], "malformed TOML"),
        (["resume", "{tmp}"], "not a run directory"),
        (["info", "nosuchthing"], "no component named"),
        (["list", "nosuchkind"], "unknown kind"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, small_config_file, args, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("[system\n")
    fill = {"cfg": small_config_file, "missing": tmp_path / "missing.toml", "bad": bad, "tmp": tmp_path}
    r = invoke(*[a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert len([l for l in r.output.splitlines() if "error" in l]) == 1
