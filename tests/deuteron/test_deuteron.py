"""Deuteron in momentum space: mesh, potentials, exact mesh solutions and the trained network."""

import json
import pathlib

import numpy as np
import pytest

import nqs_core
from typer.testing import CliRunner

from nqs_deuteron import (
    HBAR2_2MU,
    DeuteronHamiltonian,
    MalflietTjon,
    Yamaguchi,
    gaussian_targets,
    load_potential_table,
    deuteron_config,
    tangent_mesh,
)

# the Entem-Machleidt N3LO table and its exact wave function (provenance: tests/data/README.md)
DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "deuteron"
TABLE = DATA / "n3lo_J1_vnn.dat.gz"
REF = json.loads((pathlib.Path(__file__).resolve().parents[1] / "data" / "reference.json").read_text())


@pytest.fixture(scope="module")
def n3lo():
    return load_potential_table(TABLE)


def test_mesh_integrates_gaussians():
    mesh = tangent_mesh(64, 500.0)
    assert mesh.k[-1] == pytest.approx(500.0, rel=1e-12)
    assert np.sum(mesh.w * mesh.k**2 * np.exp(-mesh.k**2)) == pytest.approx(np.sqrt(np.pi) / 4, rel=1e-7)
    ts, td = (np.asarray(a) for a in gaussian_targets(mesh.k, 1.5))
    assert np.sum(mesh.w * mesh.k**2 * ts**2) == pytest.approx(1.0, rel=1e-7)
    assert np.sum(mesh.w * mesh.k**2 * td**2) == pytest.approx(1.0, rel=1e-7)
    assert HBAR2_2MU == pytest.approx(41.4722, abs=1e-4)


def test_yamaguchi_mesh_matches_closed_form():
    pot = Yamaguchi()
    assert pot.alpha == pytest.approx(0.231603, abs=1e-6)
    assert pot.strength == pytest.approx(216.024, abs=1e-3)
    sol = DeuteronHamiltonian(pot).solve()
    assert sol.energy == pytest.approx(REF["deuteron_yamaguchi_mesh"]["energy_mev"], abs=1e-6)
    # the mesh eigenvector is the closed-form wave function
    ham = DeuteronHamiltonian(pot)
    exact = pot.exact_wave_function(ham.mesh.k)
    assert float(ham.fidelity(exact, None, sol)) == pytest.approx(1.0, abs=1e-10)
    assert sol.d_probability == 0.0


def test_malfliet_tjon_mesh_energy():
    assert DeuteronHamiltonian(MalflietTjon()).solve().energy == pytest.approx(REF["deuteron_malfliet_tjon_mesh"]["energy_mev"], abs=2e-5)


def test_n3lo_table_loader_and_mesh_solution(n3lo):
    assert n3lo.vss.shape == n3lo.vdd.shape == n3lo.vsd.shape == n3lo.vds.shape == (64, 64)
    np.testing.assert_allclose(n3lo.mesh.k, tangent_mesh(64, 500.0).k, rtol=1e-4)
    np.testing.assert_allclose(n3lo.vss, n3lo.vss.T, rtol=1e-4, atol=1e-6 * np.abs(n3lo.vss).max())
    np.testing.assert_allclose(n3lo.vdd, n3lo.vdd.T, rtol=1e-4, atol=1e-6 * np.abs(n3lo.vdd).max())
    np.testing.assert_allclose(n3lo.vsd, n3lo.vds.T, rtol=1e-4, atol=1e-6 * np.abs(n3lo.vsd).max())
    ham = DeuteronHamiltonian(n3lo)
    sol = ham.solve()
    assert sol.energy == pytest.approx(REF["deuteron_n3lo_mesh"]["energy_mev"], abs=1e-5)
    assert sol.d_probability == pytest.approx(REF["deuteron_n3lo_mesh"]["d_probability"], abs=1e-4)
    wf = np.loadtxt(DATA / "n3lo_J1_wfk.dat")
    assert float(ham.fidelity(wf[:, 1], wf[:, 2], sol)) > 1 - 1e-8


def test_loader_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_potential_table(tmp_path / "missing.dat")
    bad = tmp_path / "bad.dat"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="8 columns"):
        load_potential_table(bad)
    with pytest.raises(ValueError, match="own mesh"):
        DeuteronHamiltonian(load_potential_table(TABLE), tangent_mesh(32)).solve()


def _trained(tmp_path, **options):
    """`result.json` of `nqs deuteron` with `options` (the same config, through `nqs_core.run`)."""
    nqs_core.run(deuteron_config(**options), run_dir=tmp_path / "run", progress=False)
    return json.loads((tmp_path / "run" / "result.json").read_text())


def test_network_on_yamaguchi_reaches_kev_accuracy(tmp_path):
    res = _trained(tmp_path, n_hidden=10, pretrain_steps=300, bfgs_steps=1500)
    exact = DeuteronHamiltonian(Yamaguchi()).solve().energy
    assert res["energy_mev"] >= exact - 1e-9  # variational on the mesh
    assert abs(res["energy_mev"] - (-2.2245750)) < 1e-3  # 1 keV
    assert res["fidelity"] >= 0.9999


@pytest.mark.slow
def test_network_on_n3lo_reaches_kev_accuracy(tmp_path):
    res = _trained(tmp_path, potential="table", table=TABLE, n_hidden=20, pretrain_steps=1000, bfgs_steps=5000)
    assert abs(res["energy_mev"] - REF["deuteron_n3lo_mesh"]["energy_mev"]) < 1e-3
    assert res["d_probability"] == pytest.approx(0.045, abs=0.001)
    assert res["fidelity"] >= 0.9999


def test_cli_command(tmp_path):
    from nqs_cli import make_app

    app = make_app(plugins=True)
    runner = CliRunner()
    plot = tmp_path / "d.png"
    out = runner.invoke(app, ["deuteron", "--potential", "yamaguchi", "--n-hidden", "6", "--pretrain-steps", "100",
                              "--bfgs-steps", "200", "--plot", str(plot), "-o", str(tmp_path / "run"), "-q"])
    assert out.exit_code == 0, out.output
    assert "fidelity" in out.output and plot.exists()
    assert (tmp_path / "run" / "checkpoint.json").exists()
    bad = runner.invoke(app, ["deuteron", "--potential", "nope"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["deuteron", "--potential", "table"])
    assert missing.exit_code == 2
