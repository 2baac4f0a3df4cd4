"""Brillouin zones, zone-boundary images, the not-a-cluster-momentum warning and
the pictures' data (issue 29, item 5). References are closed forms written here."""

from __future__ import annotations

import csv
import itertools
import warnings

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

import nqs_core
from nqs_core import brillouin_zone, high_symmetry_points, reciprocal_vectors, zone_images
from nqs_spins import ClusterMomentumWarning, Heisenberg, SpinHalf, StructureFactor

PI = np.pi


def _same_set(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return len(a) == len(b) and all(np.min(np.linalg.norm(b - p, axis=1)) < tol for p in a)


def _rotations(v, n):
    t = 2 * PI * np.arange(n) / n
    return np.stack([np.cos(t) * v[0] - np.sin(t) * v[1], np.sin(t) * v[0] + np.cos(t) * v[1]], axis=1)


def test_square_zone_is_the_square_of_side_two_pi():
    zone = brillouin_zone(reciprocal_vectors(nqs_core.Square(4)))
    assert _same_set(zone, [[PI, PI], [-PI, PI], [-PI, -PI], [PI, -PI]])
    # |q_x|, |q_y| <= pi is the zone: inside / outside on a grid
    g = np.linspace(-1.5 * PI, 1.5 * PI, 13)
    pts = np.array(list(itertools.product(g, g)))
    expect = np.all(np.abs(pts) <= PI + 1e-12, axis=1)
    assert np.array_equal(nqs_core.in_zone(pts, reciprocal_vectors(nqs_core.Square(4))), expect)
    sym = high_symmetry_points(reciprocal_vectors(nqs_core.Square(4)))
    assert list(sym) == ["Gamma", "M", "X"]
    assert np.allclose(sym["M"], [PI, PI]) and np.allclose(sym["X"], [PI, 0])


@pytest.mark.parametrize("lattice, a", [(nqs_core.Triangular(6), 1.0), (nqs_core.Honeycomb(3), np.sqrt(3)), (nqs_core.Kagome(2), 2.0)])
def test_hexagonal_zones_have_corners_at_k(lattice, a):
    # the lattice constant a (nearest cell distance): K = 4 pi / (3 a), rotated by 60 degrees
    k = np.array([4 * PI / (3 * a), 0.0])
    zone = brillouin_zone(reciprocal_vectors(lattice))
    assert _same_set(zone, _rotations(k, 6))
    sym = high_symmetry_points(reciprocal_vectors(lattice))
    assert list(sym) == ["Gamma", "K", "K'", "M"]
    assert np.allclose(sym["K"], k)
    m = 2 * PI / (np.sqrt(3) * a) * np.array([np.cos(PI / 6), np.sin(PI / 6)])  # |M| = 2 pi / (sqrt 3 a) at 30 degrees
    assert np.allclose(sym["M"], m)


def test_chain_zone_and_boundary_image():
    recip = reciprocal_vectors(nqs_core.Chain(6))
    assert np.allclose(brillouin_zone(recip), [[-PI], [PI]])
    pts, idx = zone_images(nqs_core.Chain(6).momenta(), recip)
    assert _same_set(pts, [[k * PI / 3] for k in range(-3, 4)])


def test_square_boundary_momenta_appear_on_both_edges():
    lattice = nqs_core.Square(4)
    q = lattice.momenta()
    pts, idx = zone_images(q, reciprocal_vectors(lattice))
    grid = [-PI, -PI / 2, 0, PI / 2, PI]
    assert _same_set(pts, list(itertools.product(grid, grid)))
    # each image shows the momentum it came from, equal modulo 2 pi
    assert np.allclose(np.mod(pts - q[idx] + 1e-9, 2 * PI), 1e-9)
    for y in grid:  # (-pi, y) and (pi, y) show the same momentum
        i = np.flatnonzero(np.all(np.isclose(pts, [-PI, y]), axis=1))
        j = np.flatnonzero(np.all(np.isclose(pts, [PI, y]), axis=1))
        assert len(i) == len(j) == 1 and idx[i[0]] == idx[j[0]]


def _triangular_s(lattice, q):
    """A C6-symmetric test function of q (no physics): the nearest-neighbour cosine sum."""
    a1, a2 = np.asarray(lattice.basis_vectors)
    return 1.5 + np.cos(q @ a1) + np.cos(q @ a2) + np.cos(q @ (a2 - a1))


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_triangular_picture_is_c6_symmetric_and_its_csv_is_the_drawn_data(tmp_path):
    lattice = nqs_core.Triangular(6)
    q = lattice.momenta()
    s = _triangular_s(lattice, q)
    fig = Figure()
    ax = fig.subplots()
    table = nqs_core.draw_structure_factor(ax, q, s, 0.01 + 0 * s, lattice)
    pts = np.stack([table["q_x/pi"], table["q_y/pi"]], axis=1) * PI
    # K and K' (both momenta of the 6x6 cluster) are drawn at all six corners
    corners = _rotations([4 * PI / 3, 0], 6)
    for c in corners:
        assert np.min(np.linalg.norm(pts - c, axis=1)) < 1e-10
    # the drawn set is symmetric under 60-degree rotations, with equal values
    rot = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])
    for p, v in zip(pts, table["S"]):
        j = np.argmin(np.linalg.norm(pts - rot @ p, axis=1))
        assert np.linalg.norm(pts[j] - rot @ p) < 1e-9 and np.isclose(table["S"][j], v)
    assert len(pts) == 36 + 4 + 3  # 2 K points x 2 more corners, 3 M points x 1 more edge
    # what was drawn: the cells' colours and the dots' positions are the table
    cells = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_array() is not None]
    assert len(cells) == 1 and np.array_equal(np.asarray(cells[0].get_array()), table["S"])
    dots = [c for c in ax.collections if c is not cells[0] and len(c.get_offsets()) == len(pts)]
    assert np.allclose(dots[0].get_offsets(), pts / PI)
    path = nqs_core.write_csv(tmp_path / "s.csv", table)
    header, rows = _read_csv(path)
    assert header == ["q_x/pi", "q_y/pi", "S", "error", "index", "copy"]
    data = np.array(rows, dtype=float)
    assert np.array_equal(data[:, 2], table["S"]) and np.array_equal(data[:, :2], pts / PI)
    assert np.allclose(data[:, 2], _triangular_s(lattice, pts))  # the value drawn at every image


def test_correlation_per_direction_and_its_csv(tmp_path):
    lattice = nqs_core.Square(4)
    r = np.unique(np.round(lattice.site_displacements().reshape(-1, 2), 9), axis=0)
    c = np.exp(-np.linalg.norm(r, axis=1)) * (-1) ** np.abs(r).sum(axis=1)
    err = 0.01 + 0 * c
    fig = Figure()
    ax = fig.subplots()
    table = nqs_core.draw_correlation(ax, r, c, err, log=True)
    # r and -r in one direction: (1, 0) and (-1, 0) share it; (0, 1) is another
    d = dict(zip(map(tuple, np.stack([table["r_x"], table["r_y"]], axis=1)), table["direction"]))
    assert d[(1.0, 0.0)] == d[(-1.0, 0.0)] == d[(-2.0, 0.0)] == "(1 0)" and d[(0.0, 1.0)] == "(0 1)"
    assert d[(1.0, 1.0)] == d[(-1.0, -1.0)] != d[(1.0, -1.0)] and d[(0.0, 0.0)] == ""
    # the grey "all r" series is the table (|C| on the log scale)
    x, y = ax.containers[0].lines[0].get_data()
    assert np.array_equal(x, table["distance"]) and np.array_equal(y, table["|C|"])
    assert ax.get_yscale() == "log"
    header, rows = _read_csv(nqs_core.write_csv(tmp_path / "c.csv", table))
    assert header == ["r_x", "r_y", "distance", "direction", "|C|", "error", "line"]
    assert np.array_equal(np.array([float(row[4]) for row in rows]), np.abs(c[np.argsort(np.linalg.norm(r, axis=1), kind="stable")]))


def _kagome_12():
    lattice = nqs_core.Kagome(2)
    assert lattice.n_sites == 12
    return lattice, Heisenberg(SpinHalf(12, total_sz=0.0), lattice)


def test_q_not_a_cluster_momentum_warns_once_with_the_reason():
    lattice, system = _kagome_12()
    # K = (2 pi / 3, 0) for a = 2: K . L_1 = 2 pi * 4 / 3 (L_1 = 2 a_1), not a multiple of 2 pi
    with pytest.warns(ClusterMomentumWarning) as caught:
        s = StructureFactor(system, lattice, q=[2 / 3, 0])
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "not a momentum of the 12-site kagome cluster" in text and "minimum-image" in text
    assert "complex" in text and "\n" not in text
    assert s.coordinates()["cluster_momentum"].tolist() == [False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # M = (pi/2, pi/(2 sqrt 3)) is one: M . L_d = pi * 2 * ... a multiple of 2 pi
        m = StructureFactor(system, lattice, q=[0.5, 0.5 / np.sqrt(3)])
        assert m.coordinates()["cluster_momentum"].tolist() == [True]
        zone = StructureFactor(system, lattice, q="zone")
    # q = "zone": the 4 momenta of the 2x2 cells, the 3 M points at both their edge images
    assert len(zone.coordinates()["q"]) == 1 + 6


def test_a_lattice_with_a_basis_gets_no_copied_images():
    # kagome: S(q + G) != S(q) (the basis sites are not lattice vectors apart), so a
    # boundary momentum is drawn only where measured: once from momenta(), at both
    # edge images from q = "zone"
    lattice, system = _kagome_12()
    fig = Figure()
    once = nqs_core.draw_structure_factor(fig.add_subplot(121), lattice.momenta(), np.arange(4.0), None, lattice)
    assert len(once["S"]) == 4 and not once["copy"].any()
    q = StructureFactor(system, lattice, q="zone").coordinates()["q"]
    both = nqs_core.draw_structure_factor(fig.add_subplot(122), q, np.arange(7.0), None, lattice)
    assert len(both["S"]) == 7 and not both["copy"].any() and sorted(both["index"]) == list(range(7))
    # the three M points, each at both ends of its zone diameter (M and -M)
    m = _rotations(2 * PI / (np.sqrt(3) * 2) * np.array([np.cos(PI / 6), np.sin(PI / 6)]), 6)
    drawn = np.stack([both["q_x/pi"], both["q_y/pi"]], axis=1) * PI
    assert _same_set(drawn[np.linalg.norm(drawn, axis=1) > 0], m)
