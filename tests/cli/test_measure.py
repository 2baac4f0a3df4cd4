"""Observables of a run (result.json, log.jsonl) and `nqs measure` end to end."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nqs_cli import app

runner = CliRunner()

RUN = """
[run]
n_steps = 4
seed = 3
checkpoint_every = 2
n_eval_batches = 2
exact_energy = "none"
observe_every = 2

[lattice]
name = "chain"
length = 6

[space]
name = "spin_half"

[system]
name = "ising"
h = 0.8

[ansatz]
name = "rbm"
alpha = 1

[sampler]
name = "metropolis_local"
n_samples = 128
n_chains = 8

[optimizer]
name = "sgd"
learning_rate = 0.02

[observables.mz]
name = "magnetization"

[observables.czz]
name = "correlation"

[observables.sq]
name = "structure_factor"
component = "zz"

[observables.sx]
name = "operator"
op = "Sx"
sites = "all"
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("measure")
    cfg = path / "run.toml"
    cfg.write_text(RUN)
    r = invoke("run", cfg, "-o", path / "run", "-q", "--json")
    assert r.exit_code == 0, r.output
    (path / "stdout.json").write_text(r.stdout)
    return path / "run"


def test_run_json_prints_result_json_and_the_text_report_a_table(run_dir, tmp_path):
    import shutil

    # --json: stdout is one JSON object, the payload of result.json
    printed = json.loads((run_dir.parent / "stdout.json").read_text())
    assert printed == json.loads((run_dir / "result.json").read_text())
    # without --json the report has the energy with its V-score and a compact table of the observables
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    r = invoke("resume", copy, "-q")
    assert r.exit_code == 0, r.output
    result = json.loads((copy / "result.json").read_text())
    assert "V-score" in r.stdout and f"{result['v_score']:.3e}" in r.stdout
    lines = r.stdout.splitlines()
    assert any("Observables" in line for line in lines)
    row = next(line for line in lines if "czz" in line)
    c = result["observables"]["czz"]
    assert f"4 entries in {min(c['mean']):.5g} .. {max(c['mean']):.5g}: r=(0): {c['mean'][0]:.6g}" in row and row.endswith(", ...")
    sx = result["observables"]["sx"]
    assert f"{sx['mean']:.6g} ± {sx['error']:.2g}" in next(line for line in lines if line.strip().startswith("sx "))
    assert "result.json" in r.stdout


def test_run_writes_observables_into_result_and_log(run_dir):
    result = json.loads((run_dir / "result.json").read_text())
    obs = result["observables"]
    assert set(obs) == {"mz", "czz", "sq", "sx"}
    assert len(obs["mz"]["mean"]) == 2 and obs["mz"]["quantity"] == ["m", "m^2"]
    # C(r) of the ring of 6: r and -r are one class, r = 0, 1, 2, 3 (2, 4, 4 and 2 pairs per site)
    assert len(obs["czz"]["mean"]) == 4 and obs["czz"]["r"] == [[0.0], [1.0], [2.0], [3.0]] and obs["czz"]["mean"][0] == pytest.approx(0.25)
    assert obs["czz"]["n_pairs"] == [6.0, 12.0, 12.0, 6.0] and obs["czz"]["direction"] == [[0.0], [1.0], [1.0], [1.0]]
    # the V-score of the final estimate: N Var(E) / (E - E_inf)^2 with E_inf = Tr H / 2^6 = 0 for the TFIM
    assert result["e_inf"] == 0.0
    assert result["v_score"] == pytest.approx(6 * result["energy"]["variance"] / result["energy"]["mean"] ** 2, rel=1e-12)
    assert len(obs["sq"]["mean"]) == 6 and np.asarray(obs["sq"]["q_over_pi"]).shape == (6, 1)
    assert isinstance(obs["sx"]["mean"], float) and obs["sx"]["error"] > 0
    for key in ("error", "tau_corr", "R_hat", "variance"):
        assert key in obs["sx"]
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "step" in r and "energy" in r]
    for r in steps:  # every record carries its V-score
        assert r["v_score"] == pytest.approx(6 * r["variance"] / r["energy"] ** 2, rel=1e-12)
    with_obs = [r for r in steps if "observables" in r]
    assert [r["observables_step"] for r in with_obs] == [2, 4]
    assert set(with_obs[0]["observables"]) == {"mz", "czz", "sq", "sx"}


def test_measure_json_by_sampling_and_exactly(run_dir):
    r = invoke("measure", run_dir, "--json", "--n-samples", "512")
    assert r.exit_code == 0, r.output
    mc = json.loads(r.output)
    assert set(mc) == {"energy", "mz", "czz", "sq", "sx"}
    assert len(mc["czz"]["mean"]) == 4 and len(mc["czz"]["error"]) == 4
    assert all(e > 0 for e in mc["czz"]["error"][1:])
    r = invoke("measure", run_dir, "--exact", "--json", "-O", "czz", "-O", "sx")
    assert r.exit_code == 0, r.output
    ex = json.loads(r.output)
    assert set(ex) == {"energy", "czz", "sx"}
    assert ex["sx"]["error"] == 0.0 and ex["energy"]["error"] == 0.0
    # the Monte Carlo values of the same parameters agree with the exact ones
    for k in range(4):
        assert abs(mc["czz"]["mean"][k] - ex["czz"]["mean"][k]) <= 4 * mc["czz"]["error"][k] + 1e-12
    assert abs(mc["sx"]["mean"] - ex["sx"]["mean"]) < 4 * mc["sx"]["error"]
    # a registered observable that the run did not configure, with its defaults
    r = invoke("measure", run_dir, "--exact", "--json", "-O", "staggered_magnetization")
    assert r.exit_code == 0, r.output
    ms = json.loads(r.output)["staggered_magnetization"]
    assert len(ms["mean"]) == 2 and ms["error"] == [0.0, 0.0] and ms["quantity"] == ["m_s", "m_s^2"]
    r = invoke("measure", run_dir, "--exact")
    assert r.exit_code == 0 and "exact full sum" in r.output and "q/pi=" in r.output


def test_measure_plot(run_dir, tmp_path):
    out = tmp_path / "sq.png"
    r = invoke("measure", run_dir, "--exact", "--plot", out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"


GRAPH = """
[lattice]
name = "graph"
edges = [[0, 1], [1, 2], [2, 3], [3, 0]]
[space]
name = "spin_half"
[system]
name = "heisenberg"
[ansatz]
name = "rbm"
[sampler]
name = "metropolis_local"
[observables.sq]
name = "structure_factor"
"""

TOO_LARGE = """
[lattice]
name = "chain"
length = 24
[space]
name = "spin_half"
[system]
name = "ising"
[ansatz]
name = "rbm"
[sampler]
name = "full_sum"
"""


@pytest.mark.parametrize(
    "text, args, message",
    [
        (GRAPH, [], "structure_factor needs site positions"),
        (TOO_LARGE, [], "16777216 states, more than max_states = 1048576"),
        (RUN.replace('name = "correlation"', 'name = "corelation"'), [], "unknown observable 'corelation'; valid names:"),
    ],
)
def test_bad_observable_input_is_one_line_exit_2(tmp_path, text, args, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = invoke("run", cfg, "-o", tmp_path / "out", "-q", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_bad_measure_input_is_one_line_exit_2(run_dir, tmp_path):
    for args, message in (
        (["-O", "nope"], "unknown observable 'nope'; valid:"),
        (["--exact", "--max-states", "10"], "64 states, more than max_states = 10"),
        (["--n-samples", "0"], "--n-samples must be a positive integer"),
    ):
        r = invoke("measure", run_dir, *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and len([x for x in r.output.splitlines() if x.strip()]) == 1
    r = invoke("measure", tmp_path)
    assert r.exit_code == 2 and "not a run directory" in r.output


def _csv(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_measure_plot_writes_the_drawn_numbers_as_csv(run_dir, tmp_path):
    out = tmp_path / "pic.png"
    r = invoke("measure", run_dir, "--exact", "--plot", out, "--log", "--json", "-O", "sq", "-O", "czz")
    assert r.exit_code == 0, r.output
    exact = json.loads(r.output)
    assert out.read_bytes()[:4] == b"\x89PNG"
    header, sq = _csv(tmp_path / "pic_sq.csv")
    assert header == ["q/pi", "S", "error", "index", "copy"]
    # the 6 momenta of the chain, q = -pi also drawn at +pi (a copy, same value)
    q = np.array(exact["sq"]["q_over_pi"])[:, 0]
    assert sorted(sq[:, 0].tolist()) == pytest.approx([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1])
    assert np.array_equal(sq[:, 1], np.array(exact["sq"]["mean"])[sq[:, 3].astype(int)])
    assert np.allclose(q[sq[:, 3].astype(int)] % 2, sq[:, 0] % 2) and sq[:, 4].sum() == 1
    with open(tmp_path / "pic_czz.csv") as f:
        header = f.readline().strip().split(",")
    assert header == ["r", "distance", "direction", "|C|", "error", "line"]
    r = invoke("plot", run_dir, "-o", tmp_path / "e.png")
    assert r.exit_code == 0, r.output
    header, e = _csv(tmp_path / "e.csv")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [x for x in log if "energy" in x and "step" in x]
    assert header[:3] == ["step", "energy", "error"]
    assert e[:, 0].tolist() == [x["step"] for x in steps] and e[:, 1].tolist() == [x["energy"] for x in steps]


def test_q_not_a_cluster_momentum_is_one_warning_line(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with open(run / "config.toml", "a") as f:
        f.write('\n[observables.half]\nname = "structure_factor"\nq = [0.5]\n')
    r = invoke("measure", run, "--exact", "-O", "half", "--json")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("nqs: warning:")]
    assert len(lines) == 1 and "q/pi = (0.5) is not a momentum of the 6-site chain cluster" in lines[0]
    assert "minimum-image" in lines[0]
    out = json.loads(r.output[r.output.index("{"):])
    assert out["half"]["cluster_momentum"] == [False]
    r = invoke("measure", run, "--exact", "-O", "sq", "--json")
    assert r.exit_code == 0 and "warning" not in r.output
