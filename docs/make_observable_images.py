"""Draw the pictures of docs/observables.md: S(q) over the Brillouin zone, single
momenta as bars, C(r) per lattice direction, the energy with the exact line.
Every PNG is written with a CSV of the numbers it shows.

    python docs/make_observable_images.py [OUTPUT_FOLDER] [--run RUN_DIR]

OUTPUT_FOLDER defaults to docs/img/observables. Two kinds of state:

- exactly known states, drawn with `nqs_core.draw_structure_factor` (seconds):
  the classical 120-degree state on the 6x6 triangular cluster
  (`<S_i . S_j> = cos(K . (r_j - r_i)) / 4` for `i != j`, `3/4` for `i = j`),
  and the Heisenberg ground states of the 4x4 square and the 12-site kagome
  clusters from a small exact diagonalisation written here (S^z = 0 sector,
  scipy's Lanczos), with `S(q) = (1/N) sum_ij cos(q . d_ij) <S_i . S_j>` on the
  wave vectors of `structure_factor` (`q = "zone"`, `"extended"`);
- a Monte Carlo run made with the command line (a few minutes):
  `nqs run heisenberg_4x4_mc.toml`, then `nqs measure RUN --plot` (S(q) and
  C(r) per direction with error bars) and `nqs plot RUN` (energy, exact line,
  relative error). `--run RUN_DIR` reuses a finished run of that config.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import subprocess
import sys

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from matplotlib.figure import Figure

import nqs_core
import nqs_spins

HERE = pathlib.Path(__file__).resolve().parent
CONFIG = HERE / "img" / "observables" / "heisenberg_4x4_mc.toml"


def heisenberg_correlations(lattice) -> tuple[float, np.ndarray]:
    """Ground-state energy and `<S_i . S_j>` (spin units, J = 1 on `edges(1)`) in the S^z = 0 sector."""
    n = lattice.n_sites
    states = np.sort(np.array([sum(1 << k for k in c) for c in itertools.combinations(range(n), n // 2)], dtype=np.int64))
    bits = (states[:, None] >> np.arange(n)) & 1
    diag = np.zeros(len(states))
    rows, cols = [], []
    for i, j in lattice.edges(1):
        same = bits[:, i] == bits[:, j]
        diag += np.where(same, 0.25, -0.25)
        flipped = states[~same] ^ ((1 << i) | (1 << j))
        rows.append(np.flatnonzero(~same))
        cols.append(np.searchsorted(states, flipped))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    h = sp.coo_matrix((np.full(len(rows), 0.5), (rows, cols)), shape=(len(states),) * 2) + sp.diags(diag)
    energy, vec = sla.eigsh(h.tocsr(), k=1, which="SA")
    p = vec[:, 0] ** 2
    spin = bits - 0.5
    c = np.einsum("s,si,sj->ij", p, spin, spin)
    for i, j in itertools.permutations(range(n), 2):
        anti = bits[:, i] != bits[:, j]
        partner = np.searchsorted(states, states[anti] ^ ((1 << i) | (1 << j)))
        c[i, j] += 0.5 * float(vec[anti, 0] @ vec[partner, 0])
    c[np.arange(n), np.arange(n)] = 0.75
    return float(energy[0]), c


def structure_factor(lattice, c, q) -> np.ndarray:
    """`S(q) = (1/N) sum_ij cos(q . d_ij) c_ij` with the minimum-image displacements."""
    d = lattice.site_displacements()
    return np.einsum("kij,ij->k", np.cos(np.einsum("kx,ijx->kij", q, d)), c) / lattice.n_sites


def zone_q(lattice, which: str) -> np.ndarray:
    """The wave vectors of `structure_factor` with `q = which` ("zone", "extended")."""
    system = nqs_spins.Heisenberg(nqs_spins.SpinHalf(lattice.n_sites, total_sz=0.0), lattice)
    return nqs_spins.StructureFactor(system, lattice, q=which).coordinates()["q"]


def draw_map(path, lattice, q, s, title) -> None:
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    table = nqs_core.draw_structure_factor(ax, q, s, None, lattice)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    nqs_core.write_csv(path.with_suffix(".csv"), table)
    print("wrote", path)


def exact_pictures(out: pathlib.Path) -> None:
    tri = nqs_core.Triangular(6)
    k = np.array([4 * np.pi / 3, 0.0])
    pos = tri.positions
    c = np.cos((pos @ k)[None, :] - (pos @ k)[:, None]) / 4
    c[np.arange(tri.n_sites), np.arange(tri.n_sites)] = 0.75
    q = zone_q(tri, "zone")
    draw_map(out / "structure_factor_triangular_6x6.png", tri, q, structure_factor(tri, c, q),
             "triangular 6x6: classical 120° state, S(q) (S·S)")

    square = nqs_core.Square(4)
    e0, c = heisenberg_correlations(square)
    assert abs(e0 + 11.2284832080) < 1e-8, e0
    q = zone_q(square, "zone")
    draw_map(out / "structure_factor_square_4x4.png", square, q, structure_factor(square, c, q),
             f"square 4x4 Heisenberg ground state (ED, E0 = {e0:.6f})")
    few = np.pi * np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.subplots()
    table = nqs_core.draw_structure_factor(ax, few, structure_factor(square, c, few), None, square)
    ax.set_title("S(q) at three momenta (square 4x4, ED)", fontsize=10)
    path = out / "structure_factor_three_q.png"
    fig.savefig(path, dpi=110)
    nqs_core.write_csv(path.with_suffix(".csv"), table)
    print("wrote", path)

    kagome = nqs_core.Kagome(2)
    e0, c = heisenberg_correlations(kagome)
    q = zone_q(kagome, "extended")
    draw_map(out / "structure_factor_kagome_12.png", kagome, q, structure_factor(kagome, c, q),
             f"kagome 12 sites, Heisenberg ground state (ED, E0 = {e0:.6f}):\nextended zone (dashed), first zone (solid)")


def run_pictures(out: pathlib.Path, run_dir: pathlib.Path | None) -> None:
    nqs = [sys.executable, "-m", "nqs_cli"]
    if run_dir is None:
        run_dir = out / "_run_heisenberg_4x4"
        subprocess.run([*nqs, "run", str(CONFIG), "-o", str(run_dir), "-q"], check=True)
    subprocess.run([*nqs, "measure", str(run_dir), "--n-samples", "8192", "--plot", str(out / "measure_square_4x4.png")], check=True)
    subprocess.run([*nqs, "plot", str(run_dir), "-o", str(out / "energy_square_4x4.png")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(HERE / "img" / "observables"))
    parser.add_argument("--run", default=None, help="a finished run of heisenberg_4x4_mc.toml (skips the training)")
    parser.add_argument("--exact-only", action="store_true", help="only the pictures of exactly known states")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exact_pictures(out)
    if not args.exact_only:
        run_pictures(out, pathlib.Path(args.run) if args.run else None)


if __name__ == "__main__":
    main()
