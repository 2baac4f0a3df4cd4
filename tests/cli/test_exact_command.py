"""`nqs exact`: spectrum, sectors, ground-state observables, --json and --save,
against exact diagonalisation written here (Kronecker products of spin matrices)."""

import functools
import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from typer.testing import CliRunner

from nqs_cli import app

runner = CliRunner()

# 4x4 periodic Heisenberg antiferromagnet at S^z = 0 (12870 states), in the
# Marshall-rotated basis: the observables must come out as those of the physical model
SQUARE = """
[lattice]
name = "square"
length = 4

[space]
name = "spin_half"
total_sz = 0.0

[system]
name = "heisenberg"
marshall_sign = true

[observables.spp]
name = "structure_factor"
q = [1, 1]

[observables.css]
name = "correlation"
component = "ss"

[observables.zz01]
name = "operator"
op = "SzSz"
sites = [[0, 1]]
"""

CHAIN = """
[lattice]
name = "chain"
length = {L}

[space]
name = "spin_half"

[system]
name = "{system}"
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- the reference: exact diagonalisation from Kronecker products ------------------------

SX = np.array([[0, 1], [1, 0]]) / 2
SY = np.array([[0, -1j], [1j, 0]]) / 2
SZ = np.array([[1, 0], [0, -1]]) / 2  # basis (up, down): the index of a site's bit is 1 for down


def site_op(m, i, n):
    """`m` on site `i` of `n` (site 0 the leftmost Kronecker factor)."""
    return sp.kron(sp.kron(sp.identity(2**i), sp.csr_matrix(m)), sp.identity(2 ** (n - i - 1)), format="csr")


@functools.lru_cache(maxsize=None)
def spin_ops(n):
    return [[site_op(m, i, n) for i in range(n)] for m in (SX, SY, SZ)]


def heisenberg(bonds, n):
    ops = spin_ops(n)
    h = sp.csr_matrix((2**n, 2**n), dtype=complex)
    for i, j in bonds:
        for a in range(3):
            h = h + ops[a][i] @ ops[a][j]
    return h


def sz_of_index(n):
    """Total S^z of every Kronecker basis index (bit 1 = down)."""
    idx = np.arange(2**n)
    downs = sum((idx >> k) & 1 for k in range(n))
    return (n - 2 * downs) / 2


def lowest(h, k):
    if h.shape[0] <= 64:
        return np.linalg.eigvalsh(h.toarray())[:k]
    vals = spla.eigsh(h, k=k, which="SA", v0=np.ones(h.shape[0]), tol=0, return_eigenvectors=False)
    return np.sort(vals.real)


def square_bonds(L):
    site = lambda x, y: (x % L) * L + (y % L)  # noqa: E731
    return [(site(x, y), site(x + 1, y)) for x in range(L) for y in range(L)] + [
        (site(x, y), site(x, y + 1)) for x in range(L) for y in range(L)
    ]


@pytest.fixture(scope="module")
def reference():
    """E0..E2 in the S^z = 0 sector and the ground state (full basis) of the 4x4 model."""
    n, L = 16, 4
    h = heisenberg(square_bonds(L), n)
    keep = np.flatnonzero(sz_of_index(n) == 0)
    block = h[keep][:, keep].real
    vals, vecs = spla.eigsh(block, k=3, which="SA", v0=np.ones(len(keep)), tol=0)
    order = np.argsort(vals)
    psi = np.zeros(2**n, dtype=complex)
    psi[keep] = vecs[:, order[0]]
    return vals[order], psi


def expect(psi, op):
    return np.vdot(psi, op @ psi)


@pytest.fixture(scope="module")
def square_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("exact")
    cfg = path / "square.toml"
    cfg.write_text(SQUARE)
    r = invoke("exact", cfg, "--n-states", "3", "--json", "--save", path / "state")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), path / "state", cfg


def test_square_spectrum_and_observables_equal_kronecker_ed(square_run, reference):
    out, _, _ = square_run
    energies, psi = reference
    n, L = 16, 4
    assert out["n_states"] == 12870 and out["n_sites"] == n
    np.testing.assert_allclose(out["energies"], energies, atol=1e-10, rtol=0)
    assert out["gap"] == pytest.approx(energies[1] - energies[0], abs=1e-10)
    assert out["ground_state_degeneracy"] == 1 and out["ground_sector"] == {"Sz": 0.0}
    assert [s["label"] for s in out["sectors"]] == [{"Sz": 0.0}] and out["sectors"][0]["n_states"] == 12870
    assert out["system"]["system"]["name"] == "heisenberg" and out["system"]["lattice"]["name"] == "square"
    ops = spin_ops(n)
    # S(pi, pi) = (1/N) <S(q) . S(q)^dagger>, S^a(q) = sum_j exp(i q r_j) S^a_j, r_j = (x, y) of site x L + y
    pos = np.array([(j // L, j % L) for j in range(n)])
    phase = np.exp(1j * np.pi * pos.sum(axis=1))
    s_pp = sum(np.linalg.norm(sum(np.conj(phase[j]) * ops[a][j] for j in range(n)) @ psi) ** 2 for a in range(3)) / n
    obs = out["observables"]
    assert obs["spp"]["mean"][0] == pytest.approx(s_pp, abs=1e-10)
    assert obs["spp"]["error"] == [0.0]
    # C(r) = <S_0 . S_j> with r_j - r_0 = r (mod L): the ground state is translation invariant
    c = [expect(psi, sum(ops[a][0] @ ops[a][j] for a in range(3))).real for j in range(n)]
    assert len(obs["css"]["mean"]) == len(obs["css"]["r"])
    for r, value in zip(obs["css"]["r"], obs["css"]["mean"]):
        x, y = (int(round(r[0])) % L, int(round(r[1])) % L)
        assert value == pytest.approx(c[x * L + y], abs=1e-10), r
    assert obs["zz01"]["mean"] == pytest.approx(expect(psi, ops[2][0] @ ops[2][1]).real, abs=1e-10)
    assert out["saved"]


def test_saved_state_measure_and_load_exact_agree(square_run, reference):
    import nqs_core
    from nqs_core.operators import sm, sp as splus, sz

    out, state_dir, _ = square_run
    energies, psi = reference
    assert sorted(p.name for p in state_dir.iterdir()) == ["config.toml", "exact.json", "exact.npz"]
    r = invoke("measure", state_dir, "--json")
    assert r.exit_code == 0, r.output
    measured = json.loads(r.stdout)
    assert set(measured) == {"energy", "spp", "css", "zz01"}
    assert measured["energy"]["mean"] == pytest.approx(energies[0], abs=1e-10)
    for name in ("spp", "css", "zz01"):
        np.testing.assert_allclose(measured[name]["mean"], out["observables"][name]["mean"], atol=1e-12, rtol=0)
    state = nqs_core.load_exact(state_dir)
    np.testing.assert_allclose(state.energies, energies, atol=1e-10, rtol=0)
    values = state.measure()
    for name in ("spp", "css", "zz01"):
        np.testing.assert_allclose(np.real(values[name].mean), out["observables"][name]["mean"], atol=1e-12, rtol=0)
    # operators of the physical model (not rotated) from Python: the Marshall rotation is applied for the user
    n = 16
    ops = spin_ops(n)
    hop = splus(0) * sm(1) + sm(0) * splus(1)  # 2 (Sx Sx + Sy Sy) on a bond
    ref = 2 * expect(psi, ops[0][0] @ ops[0][1] + ops[1][0] @ ops[1][1]).real
    assert ref < -0.4
    got = state.expect_many({"hop": hop, "zz05": sz(0) * sz(5)})
    assert float(np.real(got["hop"].mean)) == pytest.approx(ref, abs=1e-10)
    assert float(np.real(got["zz05"].mean)) == pytest.approx(expect(psi, ops[2][0] @ ops[2][5]).real, abs=1e-10)
    assert float(np.real(state.expect(state.observables["zz01"]).mean)) == pytest.approx(out["observables"]["zz01"]["mean"], abs=1e-12)
    # the vector and its configurations: |psi0(x)| of the reference at the same configurations
    x = state.configurations
    index = ((x < 0).astype(np.int64) * (1 << np.arange(n - 1, -1, -1))).sum(axis=1)
    np.testing.assert_allclose(np.abs(state.to_array()), np.abs(psi[index]), atol=1e-10)
    assert np.linalg.norm(state.vector) == pytest.approx(1.0, abs=1e-12)
    # measure reads no samples from an exact state; a foreign directory is not written
    r = invoke("measure", state_dir, "-n", "64")
    assert r.exit_code == 2 and "omit --n-samples" in r.stderr
    r = invoke("measure", state_dir, "-O", "zz01")
    assert r.exit_code == 0 and "zz01" in r.stdout and "css" not in r.stdout


def test_save_refuses_foreign_files_and_edited_configs(tmp_path, square_run):
    _, state_dir, cfg = square_run
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    chain = tmp_path / "chain.toml"
    chain.write_text(CHAIN.format(L=4, system="heisenberg"))
    r = invoke("exact", chain, "--save", foreign)
    assert r.exit_code == 2 and "holds other files (notes.txt)" in r.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # a directory nqs exact wrote is replaced
    again = tmp_path / "again"
    assert invoke("exact", chain, "--save", again).exit_code == 0
    r = invoke("exact", chain, "--save", again, "--set", "system.J=2.0")
    assert r.exit_code == 0, r.output
    # an edited config.toml is refused
    text = (again / "config.toml").read_text().replace("J = 2.0", "J = 3.0")
    (again / "config.toml").write_text(text)
    r = invoke("measure", again)
    assert r.exit_code == 2 and "was edited after the exact state was saved" in r.stderr


def test_sector_table_of_a_chain_equals_ed_per_sector(tmp_path):
    L = 8
    cfg = tmp_path / "chain.toml"
    cfg.write_text(CHAIN.format(L=L, system="heisenberg"))
    r = invoke("exact", cfg, "-k", "4", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    h = heisenberg([(i, (i + 1) % L) for i in range(L)], L)
    sz = sz_of_index(L)
    assert out["conserved"] == ["Sz"] and out["not_conserved"] == []
    assert [s["label"]["Sz"] for s in out["sectors"]] == [m / 2 for m in range(-L, L + 1, 2)]
    every = []
    for s in out["sectors"]:
        keep = np.flatnonzero(sz == s["label"]["Sz"])
        assert s["n_states"] == len(keep)
        block = h[keep][:, keep]
        ref = np.linalg.eigvalsh(block.toarray())
        np.testing.assert_allclose(s["energies"], ref[: len(s["energies"])], atol=1e-10, rtol=0)
        assert len(s["energies"]) == min(4, len(keep))
        every += list(ref)
    np.testing.assert_allclose(out["energies"], np.sort(every)[:4], atol=1e-10, rtol=0)
    # E1 is a triplet (S^z = -1, 0, 1): the lowest four are E0 and E1 three times
    assert out["energies"][1] == pytest.approx(out["energies"][3], abs=1e-10)
    # the text output names the sectors
    r = invoke("exact", cfg, "-k", "2")
    assert r.exit_code == 0 and "sectors (Sz)" in r.stdout and "Sz=-4" in r.stdout and "unique, in sector Sz=0" in r.stdout


def test_transverse_field_breaks_sz_and_odd_chain_is_degenerate(tmp_path):
    cfg = tmp_path / "tfim.toml"
    cfg.write_text(CHAIN.format(L=6, system="ising"))
    r = invoke("exact", cfg, "--json", "-k", "2")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["conserved"] == [] and out["not_conserved"] == ["Sz"] and len(out["sectors"]) == 1
    # the reference: H = -sum Z_i Z_{i+1} - sum X_i (Pauli units, J = h = 1)
    n = 6
    ops = spin_ops(n)
    h = sum(-4 * ops[2][i] @ ops[2][(i + 1) % n] for i in range(n)) + sum(-2 * ops[0][i] for i in range(n))
    np.testing.assert_allclose(out["energies"], np.linalg.eigvalsh(h.toarray())[:2], atol=1e-10, rtol=0)
    r = invoke("exact", cfg)
    assert r.exit_code == 0 and "does not conserve Sz" in r.stdout
    # an odd Heisenberg ring: S^z = +-1/2 doublets, the ground state is degenerate
    cfg.write_text(CHAIN.format(L=5, system="heisenberg"))
    r = invoke("exact", cfg, "--json", "-k", "2")
    out = json.loads(r.stdout)
    assert out["ground_state_degeneracy"] >= 2 and out["gap"] == pytest.approx(0.0, abs=1e-10)
    assert out["ground_sector"] == {"Sz": -0.5}
