"""The `phi4_cv` driver under `nqs run` / `nqs resume`: run directory, `nqs phi4 train` as a
config builder over it (`nqs phi4 generate` + `nqs phi4 train` give the numbers of `nqs run`
with the same seed, bit for bit), resume of both, non-finite loss."""

import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import nqs_core
import nqs_phi4 as p4
from nqs_cli import make_app

#: `nqs` with the plugin commands (`nqs phi4 ...`)
APP = make_app(plugins=True)

TINY = """
[run]
n_steps = 4
seed = 3
checkpoint_every = 2

[space]
name = "phi4_field"
L0 = 8
L1 = 4

[system]
name = "phi4"
m2 = 0.2
lam = 2.4

[sampler]
name = "hmc"
n_samples = 64
n_chains = 4
n_leapfrog = 4
n_skip = 2
n_thermalize = 20

[driver]
name = "phi4_cv"
n_train = 32
hidden = [3]
start = "random"
refit_every = 2
batch_size = 4
learning_rate = 0.01
"""


def tiny(tmp_path, name, **run):
    cfg = nqs_core.loads_config(TINY)
    cfg["run"].update(output=str(tmp_path), name=name, **run)
    return cfg


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phi4run")
    return nqs_core.run(tiny(tmp, "four"), progress=False)


def test_run_directory_and_the_numbers_of_the_phi4_commands(four_steps, tmp_path):
    res = four_steps
    assert {"config.toml", "log.jsonl", "checkpoint.eqx", "checkpoint.json", "result.json"} <= {p.name for p in res.run_dir.iterdir()}
    log = nqs_core.read_log(res.run_dir)
    assert [r["step"] for r in log] == [0, 1, 2, 3] and all(np.isfinite(r["loss"]) for r in log)
    result = json.loads((res.run_dir / "result.json").read_text())
    assert result["step"] == 4 and result["t"] == 4 and result["stop_reason"] is None
    # the same calculation through the existing commands, same seed
    # the same calculation through the commands, same seed: `nqs phi4 train` builds a config
    # over the same driver loop, so its run directory holds the same log, bit for bit
    runner = CliRunner()
    cfgs, cvs = tmp_path / "c.npz", tmp_path / "cv.npz"
    r = runner.invoke(APP, ["phi4", "generate", "--out", str(cfgs), "--L0", "8", "--L1", "4", "--m2", "0.2", "--lam", "2.4",
                            "--n", "64", "--n-chains", "4", "--n-skip", "2", "--n-leapfrog", "4", "--n-thermalize", "20", "--seed", "3"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(p4.load_configurations(cfgs)[0], np.asarray(res.state.phi))
    r = runner.invoke(APP, ["phi4", *TRAIN(cfgs, cvs), "--run-dir", str(tmp_path / "cmd")])
    assert r.exit_code == 0, r.output
    assert f"nqs resume {tmp_path / 'cmd'}" in " ".join(r.output.split())
    (cv,), head = p4.load_control_variates(cvs)
    for a, b in zip(jax.tree.leaves((cv.network, cv.mu)), jax.tree.leaves(res.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert result["variance_ratio"] == head["meta"]["ratios"]["4"]
    assert _losses(tmp_path / "cmd") == _losses(res.run_dir)
    # stopped after 2 of the 4 epochs, then `nqs resume`: the uninterrupted run
    r = runner.invoke(APP, ["phi4", *TRAIN(cfgs, tmp_path / "cv2.npz"), "--run-dir", str(tmp_path / "half"), "--set", "run.n_steps=2"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "half" / "checkpoint.json").read_text())["step"] == 2
    r = runner.invoke(APP, ["resume", str(tmp_path / "half"), "--steps", "4", "-q"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(_losses(tmp_path / "half"), _losses(res.run_dir), rtol=0, atol=1e-12)
    resumed = json.loads((tmp_path / "half" / "result.json").read_text())
    assert resumed["variance_ratio"] == pytest.approx(result["variance_ratio"], rel=0, abs=1e-12)


def TRAIN(cfgs, cvs):
    """`train ...`: the options of TINY's driver table (4 epochs, seed 3)."""
    return ["train", str(cfgs), "--out", str(cvs), "--n-train", "32", "--hidden", "3", "--epochs", "4", "--start", "random",
            "--refit-every", "2", "--batch-size", "4", "--lr", "0.01", "--seed", "3", "-q"]


def _losses(run_dir):
    return [r["loss"] for r in nqs_core.read_log(run_dir)]


def test_resume_continues_bit_for_bit(four_steps, tmp_path):
    first = nqs_core.run(tiny(tmp_path, "two", n_steps=2), progress=False)
    assert int(first.state.step) == 2
    res = nqs_core.resume(first.run_dir, n_steps=4, progress=False)
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(four_steps.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [r["loss"] for r in nqs_core.read_log(res.run_dir)] == [r["loss"] for r in nqs_core.read_log(four_steps.run_dir)]


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    cfg = tiny(tmp_path, "nan")
    cfg["driver"].update(learning_rate=1e300, refit_every=0)
    res = nqs_core.run(cfg, progress=False)
    assert res.stopped_early and "the loss is not finite" in res.stop_reason
    bad = int(res.stop_reason.split()[1].rstrip(":"))
    # the first epoch diverges: nothing is applied, no checkpoint is written
    assert bad == 0 and int(res.state.step) == 0 and not (res.run_dir / "checkpoint.json").exists()
    (record,) = nqs_core.read_log(res.run_dir)
    assert record["rejected"] == "the loss is not finite" and record["loss"] != record["loss"]  # NaN
    result = json.loads((res.run_dir / "result.json").read_text())
    assert result["stopped_at_nan"] == 0 and "loss" not in result


def test_config_errors_are_one_line(tmp_path):
    cfg = tiny(tmp_path, "err")
    del cfg["sampler"]
    with pytest.raises(nqs_core.ConfigError, match="needs configurations"):
        nqs_core.build(cfg)
    cfg = tiny(tmp_path, "err")
    cfg["driver"]["n_train"] = 64
    with pytest.raises(nqs_core.ConfigError, match="n_train must be in"):
        nqs_core.run(cfg, progress=False)
    assert not (tmp_path / "err").exists()


def test_all_t_transfer_training_equals_the_command_and_resumes(tmp_path):
    """all_t: one control variate per t = L0/2 .. 0, as `nqs phi4 train --all-t`
    (4x4: t = 2, 1, 0; 2 epochs, then 1 per slice), resumed across a slice boundary."""

    def config(name, n_steps):
        cfg = tiny(tmp_path, name, n_steps=n_steps)
        cfg["space"].update(L0=4, L1=4)
        cfg["driver"].update(all_t=True, epochs=2, epochs_transfer=1, refit_every=0, hidden=[2])
        return cfg

    full = nqs_core.run(config("all", 4), progress=False)
    assert [r["t"] for r in nqs_core.read_log(full.run_dir)] == [2, 2, 1, 0]
    result = json.loads((full.run_dir / "result.json").read_text())
    assert [s["t"] for s in result["slices"]] == [2, 1, 0]
    runner = CliRunner()
    cfgs, cvs = tmp_path / "c.npz", tmp_path / "cv.npz"
    p4.save_configurations(cfgs, np.asarray(full.state.phi), m2=0.2, lam=2.4)
    r = runner.invoke(APP, ["phi4", "train", str(cfgs), "--out", str(cvs), "--n-train", "32", "--all-t", "--hidden", "2",
                            "--epochs", "2", "--epochs-transfer", "1", "--start", "random", "--refit-every", "0",
                            "--batch-size", "4", "--lr", "0.01", "--seed", "3", "-q", "--run-dir", str(tmp_path / "cmd")])
    assert r.exit_code == 0, r.output
    cli_cvs, head = p4.load_control_variates(cvs)
    assert head["ts"] == [2, 1, 0]
    for i, cv in enumerate(cli_cvs):
        for a, b in zip(jax.tree.leaves((cv.network, cv.mu)), jax.tree.leaves(full.state.done)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[i])
        assert result["slices"][i]["variance_ratio"] == head["meta"]["ratios"][str(cv.t)]
    half = nqs_core.run(config("half", 2), progress=False)  # stops at the end of the first slice
    resumed = nqs_core.resume(half.run_dir, n_steps=4, progress=False)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(full.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(nqs_core.ConfigError, match="more than the 4 epochs of the 3 slices"):
        nqs_core.run(config("long", 5), progress=False)
