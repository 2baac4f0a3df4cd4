"""Brillouin-zone geometry of a Bravais lattice: the first zone (the Wigner-Seitz
cell of the reciprocal lattice), its high-symmetry points, the zone-equivalent
images of momenta on its boundary, and whether a wave vector is a momentum of a
periodic cluster.

Everything is computed from the reciprocal vectors `b_d` (`a_c . b_d = 2 pi
delta_cd`), so it holds for every lattice of `AbstractBravaisLattice`: the
square zone of the square lattice and the ladder, the hexagonal zones of the
triangular, honeycomb and kagome lattices, the interval `[-pi, pi]` of the chain.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._lattice import AbstractBravaisLattice, AbstractLattice

_TOL = 1e-8  # relative to |b|^2: a point this close to a zone face is on it


def reciprocal_vectors(lattice: AbstractBravaisLattice) -> np.ndarray:
    """The reciprocal vectors `b_d` of a Bravais lattice as rows, float `(ndim, ndim)`,
    with `a_c . b_d = 2 pi delta_cd` for the primitive vectors `a_c`.

    **Arguments:**

    - `lattice`: an `AbstractBravaisLattice` (a `Graph` has no reciprocal lattice).

    **Returns:** `2 pi (A^{-1})^T` for the matrix `A` of primitive vectors (rows).
    """
    if not isinstance(lattice, AbstractBravaisLattice):
        raise ValueError(f"{type(lattice).__name__} is not a Bravais lattice: it has no reciprocal lattice or Brillouin zone")
    return 2.0 * np.pi * np.linalg.inv(np.asarray(lattice.basis_vectors, dtype=np.float64)).T


def _shells(reciprocal: np.ndarray, reach: int = 2) -> np.ndarray:
    """The reciprocal lattice vectors `G = sum_d n_d b_d`, `|n_d| <= reach`, `G != 0`."""
    b = np.asarray(reciprocal, dtype=np.float64)
    ns = np.array([n for n in itertools.product(range(-reach, reach + 1), repeat=len(b)) if any(n)], dtype=np.float64)
    return ns @ b


def brillouin_zone(reciprocal: np.ndarray) -> np.ndarray:
    """The first Brillouin zone: the points closer to `q = 0` than to any other
    reciprocal lattice vector `G` (the Wigner-Seitz cell of the reciprocal lattice).

    **Arguments:**

    - `reciprocal`: the reciprocal vectors `b_d` as rows, `(ndim, ndim)`, `ndim` 1 or 2.

    **Returns:** in 2D the corners of the zone polygon, counter-clockwise from the
    smallest polar angle in `[0, 2 pi)`, float `(n_corners, 2)` (4 for a
    rectangular zone, 6 for a hexagonal one); in 1D the two ends `[[-|b|/2], [|b|/2]]`.
    """
    b = np.asarray(reciprocal, dtype=np.float64)
    if b.shape == (1, 1):
        half = abs(float(b[0, 0])) / 2
        return np.array([[-half], [half]])
    if b.shape != (2, 2):
        raise ValueError(f"Brillouin zones are drawn in 1 or 2 dimensions, got reciprocal vectors of shape {b.shape}")
    scale = float(np.max(np.linalg.norm(b, axis=1)))
    poly = 2 * scale * np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    for g in _shells(b, 3):
        poly = _clip(poly, g, float(g @ g) / 2)
    poly = _simplify(poly, scale)
    angles = np.mod(np.arctan2(poly[:, 1], poly[:, 0]), 2 * np.pi)
    angles[np.isclose(angles, 2 * np.pi, atol=1e-9)] = 0.0
    out = poly[np.argsort(np.round(angles, 9))]
    out[np.abs(out) < 1e-12 * scale] = 0.0
    return out


def _clip(poly: np.ndarray, normal: np.ndarray, level: float) -> np.ndarray:
    """The part of the convex polygon `poly` with `x . normal <= level` (Sutherland-Hodgman)."""
    out = []
    n = len(poly)
    for k in range(n):
        p, nxt = poly[k], poly[(k + 1) % n]
        fp, fn = p @ normal - level, nxt @ normal - level
        if fp <= 0:
            out.append(p)
        if fp * fn < 0:
            out.append(p + (nxt - p) * (fp / (fp - fn)))
    return np.asarray(out)


def _simplify(poly: np.ndarray, scale: float) -> np.ndarray:
    """`poly` without repeated corners and corners on a straight edge."""
    keep = []
    for p in poly:
        if not keep or np.linalg.norm(p - keep[-1]) > 1e-9 * scale:
            keep.append(p)
    if len(keep) > 1 and np.linalg.norm(keep[0] - keep[-1]) <= 1e-9 * scale:
        keep.pop()
    pts = np.asarray(keep)
    n = len(pts)
    straight = [abs(_cross(pts[k] - pts[k - 1], pts[(k + 1) % n] - pts[k])) < 1e-9 * scale**2 for k in range(n)]
    return pts[~np.asarray(straight)]


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def in_zone(q: np.ndarray, reciprocal: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Whether each wave vector lies in the closed first Brillouin zone
    (`scale` times it: `scale = 2` is the extended zone of a lattice with a
    basis, such as kagome).

    **Arguments:**

    - `q`: wave vectors, `(n, ndim)`.
    - `reciprocal`: the reciprocal vectors as rows.
    - `scale`: size of the zone relative to the first one.

    **Returns:** a bool array `(n,)`; points on the boundary count as inside.
    """
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    g = _shells(reciprocal, 2) * scale
    tol = _TOL * float(np.max(np.sum(np.asarray(reciprocal) ** 2, axis=1))) * scale**2
    return np.all(q @ g.T <= np.sum(g * g, axis=1) / 2 + tol, axis=1)


def zone_images(q: np.ndarray, reciprocal: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Every image `q + G` (`G` a reciprocal lattice vector) of each wave vector
    that lies in the closed zone: one image for a momentum inside the zone, two
    for one on an edge (e.g. `(-pi, y)` and `(pi, y)` on the square lattice),
    three or four at a corner (the three equivalent K points of a hexagonal
    zone, the four M points of the square zone). A wave vector with no image in
    the zone is kept as it is.

    **Arguments:**

    - `q`: wave vectors, `(n, ndim)`.
    - `reciprocal`: the reciprocal vectors as rows.
    - `scale`: the zone `scale` times the first one (see `in_zone`).

    **Returns:** `(points, index)`: the images `(m, ndim)`, and for each the row
    of `q` it is an image of, `(m,)`; in the order of `q`, the image nearest `q` first.
    """
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    shifts = np.concatenate([np.zeros((1, q.shape[1])), _shells(reciprocal, 2)])
    points, index = [], []
    for k, v in enumerate(q):
        images = v + shifts
        inside = images[in_zone(images, reciprocal, scale)]
        if not len(inside):
            inside = v[None]
        inside = inside[np.argsort(np.linalg.norm(inside - v, axis=1), kind="stable")]
        points.append(inside)
        index += [k] * len(inside)
    return np.concatenate(points), np.asarray(index, dtype=np.int64)


def high_symmetry_points(reciprocal: np.ndarray) -> dict[str, np.ndarray]:
    """The labelled high-symmetry points of the first zone, found from its shape.

    `Gamma` is `q = 0`. A hexagonal zone (six equal edges): `K` the corner with
    the smallest polar angle, `K'` the next corner (not equivalent to `K`), `M`
    the middle of the edge between them. A rectangular zone: `M` the corner with
    the smallest polar angle, `X` the middle of the edge crossing the positive
    `q_x` axis and `Y` of the one crossing `q_y` (only when the zone is not a
    square). In 1D: `Gamma` and `X` (`q = |b|/2`). Other zone shapes: `Gamma` only.

    **Arguments:**

    - `reciprocal`: the reciprocal vectors as rows.

    **Returns:** `{label: wave vector}` in the order Gamma, then the corners and edge middles.
    """
    b = np.asarray(reciprocal, dtype=np.float64)
    zone = brillouin_zone(b)
    ndim = zone.shape[1]
    points = {"Gamma": np.zeros(ndim)}
    if ndim == 1:
        points["X"] = zone[1]
        return points
    n = len(zone)
    edges = np.linalg.norm(np.roll(zone, -1, axis=0) - zone, axis=1)
    radii = np.linalg.norm(zone, axis=1)
    if n == 6 and np.allclose(edges, edges[0], rtol=1e-9) and np.allclose(radii, radii[0], rtol=1e-9):
        points["K"] = zone[0]
        points["K'"] = zone[1]
        points["M"] = (zone[0] + zone[1]) / 2
    elif n == 4 and abs(float(np.dot(zone[1] - zone[0], zone[2] - zone[1]))) < 1e-9 * float(edges[0] * edges[1]):
        points["M"] = zone[0]
        mids = (zone + np.roll(zone, -1, axis=0)) / 2
        x = mids[np.argmax(mids[:, 0])]
        y = mids[np.argmax(mids[:, 1])]
        points["X"] = x
        if not np.isclose(np.linalg.norm(x), np.linalg.norm(y), rtol=1e-9):
            points["Y"] = y
    return points


def cluster_momentum(q: np.ndarray, lattice: AbstractLattice) -> np.ndarray:
    """Whether each wave vector is a momentum of the periodic cluster:
    `q . L_d` a multiple of `2 pi` for every periodic supercell vector
    `L_d = extent[d] a_d` (equivalently `q . a_d` a multiple of `2 pi / extent[d]`).
    Open directions impose nothing (their displacements are plain differences);
    a lattice that is not a Bravais lattice (a `Graph`) has no periodic
    directions, so every `q` counts.

    **Arguments:**

    - `q`: wave vectors, `(n, ndim)` (absolute, not in units of pi).
    - `lattice`: the lattice.

    **Returns:** a bool array `(n,)`.
    """
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    if not isinstance(lattice, AbstractBravaisLattice):
        return np.ones(len(q), dtype=bool)
    periodic = np.flatnonzero(np.asarray(lattice.periodic, dtype=bool))
    if not len(periodic):
        return np.ones(len(q), dtype=bool)
    turns = q @ lattice.supercell_vectors[periodic].T / (2 * np.pi)
    return np.all(np.abs(turns - np.round(turns)) < 1e-6, axis=1)


def momentum_lattice(lattice: AbstractBravaisLattice) -> np.ndarray:
    """The vectors `b_d / extent[d]` spanning the momenta of the cluster (rows):
    every momentum is an integer combination of them (for open directions: of
    the periodic cluster of the same shape, as `lattice.momenta()`)."""
    return reciprocal_vectors(lattice) / np.asarray(lattice.extent, dtype=np.float64)[:, None]
