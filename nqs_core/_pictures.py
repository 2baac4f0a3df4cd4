"""Pictures of results, each saved with its data: S(q) over the Brillouin zone,
C(r) per lattice direction, the energy against the step.

Every `draw_*` function draws into a matplotlib `Axes` and returns the table
of the numbers it drew (`{column: array}`, one row per drawn point, in the
order drawn); `plot_*` functions make a figure, save it as a PNG and the
tables as CSV files next to it. Figures are made with `matplotlib.figure.Figure`
(no pyplot), so they need no display and change no global matplotlib state.
"""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from ._brillouin import (
    _clip,
    brillouin_zone,
    cluster_momentum,
    high_symmetry_points,
    in_zone,
    momentum_lattice,
    reciprocal_vectors,
    zone_images,
)
from ._lattice import AbstractBravaisLattice, AbstractLattice

#: at most this many wave vectors are drawn as a bar chart (one bar each), not a map
FEW_Q = 3
#: at most this many lattice directions of C(r) get a line of their own
MAX_DIRECTIONS = 6
_LABELS = {"Gamma": r"$\Gamma$", "K": "K", "K'": "K'", "M": "M", "X": "X", "Y": "Y"}
_DECIMALS = 6


def write_csv(path, table: Mapping[str, Sequence]) -> pathlib.Path:
    """Write a table `{column: values}` (equal lengths) as CSV with a header line;
    floats in full precision (`repr`), so the file holds exactly the drawn numbers.

    **Returns:** the path written.
    """
    path = pathlib.Path(path)
    columns = list(table)
    rows = zip(*(np.asarray(table[c]).tolist() for c in columns))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return path


# -- S(q) ------------------------------------------------------------------------------


def draw_structure_factor(
    ax, q, mean, error=None, lattice: AbstractLattice | None = None, name: str = "S(q)", colorbar: bool = True
) -> dict[str, np.ndarray]:
    """Draw `S(q)` into `ax`: over the Brillouin zone in 2D, against `q` in 1D,
    as bars with error bars for at most `FEW_Q` wave vectors.

    In 2D with a Bravais `lattice`: the first zone outlined (the Wigner-Seitz
    cell of the reciprocal lattice, `brillouin_zone`), its high-symmetry points
    labelled (Gamma, K, K', M or Gamma, X, M), equal axis scales, and every
    measured momentum as the cell of the points nearer to it than to any other
    momentum of the cluster (a Voronoi cell, clipped to the zone), coloured by
    its value, with a dot at the momentum. A momentum on the zone boundary is
    drawn at every zone-equivalent image: copied on a lattice with one site per
    cell (where `S(q + G) = S(q)`), drawn only where measured on a lattice with
    a basis (kagome, honeycomb: measure `q = "zone"` to have them all). Wave
    vectors outside the first zone (`q = "extended"`) are drawn in the zone
    twice as large, outlined dashed. Wave vectors that are not all momenta of
    the cluster, or no lattice: coloured markers.

    **Arguments:**

    - `ax`: a matplotlib `Axes`.
    - `q`: wave vectors, `(n, ndim)` (absolute; the axes are in units of pi).
    - `mean`, `error`: `S(q)` and its error bar, `(n,)` (`error` may be `None`).
    - `lattice`: the lattice (its zone, momenta and number of basis sites).
    - `name`: the quantity's label.
    - `colorbar`: add a colour bar to the map.

    **Returns:** the drawn table: `q_x/pi` (`q/pi` in 1D) and `q_y/pi`, `S`,
    `error`, `index` (the row of `q` each point shows) and `copy` (1 where a
    boundary image is a copy of a measured value).
    """
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    mean = np.real(np.asarray(mean)).reshape(-1)
    error = np.zeros_like(mean) if error is None else np.asarray(error, dtype=np.float64).reshape(-1)
    ndim = q.shape[1]
    bravais = isinstance(lattice, AbstractBravaisLattice) and lattice.ndim == ndim and ndim in (1, 2)
    recip = reciprocal_vectors(lattice) if bravais else None
    if len(q) <= FEW_Q:
        return _bars(ax, q, mean, error, recip, lattice, name)
    if bravais:
        points, index, copy, scale = _zone_points(q, lattice, recip)
    else:
        points, index, copy, scale = q, np.arange(len(q)), np.zeros(len(q), dtype=bool), None
    table = _q_table(points, mean[index], error[index], index, copy)
    if ndim == 1:
        _line_1d(ax, points, mean[index], error[index], recip, name)
        return table
    if ndim != 2:
        raise ValueError(f"S(q) pictures are drawn in 1 or 2 dimensions, got {ndim}")
    cells = None
    if bravais and scale is not None and cluster_momentum(q, lattice).all():
        cells = _cells(points, momentum_lattice(lattice), recip, scale)
    if cells is not None:
        mesh = PolyCollection([c / np.pi for c in cells], array=mean[index], cmap="viridis", edgecolors="face", linewidths=0.3)
        ax.add_collection(mesh)
        ax.scatter(points[:, 0] / np.pi, points[:, 1] / np.pi, s=6, c="k", marker=".", linewidths=0, zorder=3)
    else:
        mesh = ax.scatter(points[:, 0] / np.pi, points[:, 1] / np.pi, c=mean[index], s=90, cmap="viridis", edgecolors="k", linewidths=0.4, zorder=3)
    if bravais:
        _zone_outline(ax, recip, scale or 1.0)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlabel(r"$q_x/\pi$")
    ax.set_ylabel(r"$q_y/\pi$")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=name, shrink=0.85)
    return table


def _q_table(points, values, errors, index, copy) -> dict[str, np.ndarray]:
    cols = ("q/pi",) if points.shape[1] == 1 else ("q_x/pi", "q_y/pi", "q_z/pi")[: points.shape[1]]
    table = {c: points[:, k] / np.pi for k, c in enumerate(cols)}
    table.update(S=values, error=errors, index=index, copy=copy.astype(np.int64))
    return table


def _zone_points(q, lattice, recip):
    """The points drawn for `q`: measured ones, plus copies of zone-boundary
    momenta at their unmeasured images (one site per cell only). Returns
    `(points, index into q, is_copy, zone scale or None)`."""
    scale = 1.0 if in_zone(q, recip).all() else 2.0 if in_zone(q, recip, 2.0).all() else None
    if scale is None:
        return q, np.arange(len(q)), np.zeros(len(q), dtype=bool), None
    points, index = zone_images(q, recip, scale)
    copy = np.ones(len(points), dtype=bool)
    copy[np.r_[0, np.flatnonzero(np.diff(index)) + 1]] = False  # the first image of each is its own q (or nearest)
    # an image that is itself a measured q is drawn as that q, not as a copy
    measured = np.round(q, _DECIMALS)
    keys = {tuple(v): k for k, v in enumerate(measured)}
    own = np.array([keys.get(tuple(np.round(p, _DECIMALS)), -1) for p in points])
    keep = ~copy | (own < 0)
    if lattice.n_basis > 1:  # S(q + G) != S(q) with a basis: no copies
        keep &= ~copy
    points, index, copy = points[keep], index[keep], copy[keep]
    # measured q's that are images of each other are all in `points` already; drop repeats
    _, first = np.unique(np.round(points, _DECIMALS), axis=0, return_index=True)
    first = np.sort(first)
    return points[first], index[first], copy[first], scale


def _cells(points, grid, recip, scale):
    """The Voronoi cell of each point among all momenta of the cluster (the
    Wigner-Seitz cell of the momentum lattice `grid` around it), clipped to the zone."""
    cell = brillouin_zone(grid)
    zone = brillouin_zone(recip) * scale
    edges = [(zone[k] + zone[(k + 1) % len(zone)]) / 2 for k in range(len(zone))]
    out = []
    for p in points:
        poly = cell + p
        for m in edges:  # the zone's faces, x . m <= |m|^2
            poly = _clip(poly, m, float(m @ m)) if len(poly) else poly
        out.append(poly if len(poly) >= 3 else np.zeros((0, 2)))
    return out


def _zone_outline(ax, recip, scale) -> None:
    zone = brillouin_zone(recip)
    closed = np.vstack([zone, zone[:1]]) / np.pi
    ax.plot(closed[:, 0], closed[:, 1], color="k", lw=1.2, zorder=4)
    if scale != 1.0:
        big = closed * scale
        ax.plot(big[:, 0], big[:, 1], color="k", lw=0.9, ls="--", zorder=4)
    radius = float(np.max(np.linalg.norm(zone, axis=1))) / np.pi
    for label, k in high_symmetry_points(recip).items():
        k = k / np.pi
        norm = float(np.linalg.norm(k))
        if norm == 0:
            ax.annotate(_LABELS[label], k, xytext=(4, 4), textcoords="offset points", fontsize=11, zorder=5,
                        color="k", bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
            ax.plot(*k, "k+", ms=7, zorder=5)
        else:
            at = k * (1 + 0.13 * radius / norm * scale)
            ax.text(at[0], at[1], _LABELS[label], ha="center", va="center", fontsize=11, zorder=5)
            ax.plot(*k, "ko", ms=2.5, zorder=5)
    lim = radius * scale * 1.2
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)


def _line_1d(ax, points, values, errors, recip, name) -> None:
    order = np.argsort(points[:, 0], kind="stable")
    ax.errorbar(points[order, 0] / np.pi, values[order], yerr=errors[order], marker="o", ms=4, capsize=2, lw=1)
    if recip is not None:
        for label, k in high_symmetry_points(recip).items():
            for x in {float(k[0]), -float(k[0])}:
                ax.axvline(x / np.pi, color="0.6", lw=0.8, ls="--" if label != "Gamma" else ":")
            ax.annotate(_LABELS[label], (float(k[0]) / np.pi, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
    ax.set_xlabel(r"$q/\pi$")
    ax.set_ylabel(name)


def _bars(ax, q, mean, error, recip, lattice, name) -> dict[str, np.ndarray]:
    """A few wave vectors: one bar each, with its error bar and value."""
    names = []
    special = high_symmetry_points(recip) if recip is not None and q.shape[1] in (1, 2) else {}
    for v in q:
        label = ""
        for key, k in special.items():
            same = np.allclose(v, k, atol=1e-9)
            if not same and lattice.n_basis == 1:  # one site per cell: S is periodic in G
                shift = (v - k) @ np.asarray(lattice.basis_vectors, dtype=np.float64).T / (2 * np.pi)
                same = np.allclose(shift, np.round(shift), atol=1e-9)
            if same:
                label = _LABELS[key] + " "
                break
        names.append(label + "(" + ", ".join(f"{x:.3g}" for x in v / np.pi) + r")$\pi$")
    x = np.arange(len(q))
    ax.bar(x, mean, yerr=error, capsize=6, color="C0", alpha=0.8, width=0.6)
    tiny = 1e-12 * max(1.0, float(np.max(np.abs(mean))))
    for k in range(len(q)):
        ax.annotate(f"{0.0 if abs(mean[k]) < tiny else mean[k]:.5g}" + (f" ± {error[k]:.2g}" if error[k] > 0 else ""), (x[k], mean[k] + error[k]),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, names)
    ax.set_xlim(-0.7, len(q) - 0.3)
    ax.set_ylabel(name)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.margins(y=0.15)
    return _q_table(q, mean, error, np.arange(len(q)), np.zeros(len(q), dtype=bool))


# -- C(r) ------------------------------------------------------------------------------


def _directions(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each displacement its direction class (`-1` for `r = 0`), `r` and `-r`
    in the same class, and the representative (shortest) vector of each class."""
    norms = np.linalg.norm(r, axis=1)
    keys: dict[tuple, int] = {}
    cls = np.full(len(r), -1, dtype=np.int64)
    reps: list[np.ndarray] = []
    for k in np.argsort(norms, kind="stable"):
        if norms[k] < 1e-9:
            continue
        u = r[k] / norms[k]
        nz = np.flatnonzero(np.abs(u) > 1e-9)
        if u[nz[0]] < 0:
            u = -u
        key = tuple(np.round(u, _DECIMALS) + 0.0)
        if key not in keys:
            keys[key] = len(reps)
            reps.append((r[k] if r[k][nz[0]] > 0 else -r[k]) + 0.0)
        cls[k] = keys[key]
    return cls, np.asarray(reps).reshape(-1, r.shape[1])


def draw_correlation(ax, r, mean, error=None, log: bool = False, name: str = "C(r)") -> dict[str, np.ndarray]:
    """Draw `C(r)` against `|r|`: every displacement as a grey point with its
    error bar ("all r"), and one line per lattice direction that holds
    displacements at two or more distances (`r` and `-r` are one direction; at most
    `MAX_DIRECTIONS`, the shortest first), labelled by its shortest vector.
    `log=True` draws `|C(r)|` on a logarithmic scale.

    **Arguments:**

    - `ax`: a matplotlib `Axes`.
    - `r`: displacement vectors, `(n, ndim)`; `mean`, `error`: `C(r)`, `(n,)`.
    - `log`: plot `|C|` on a log scale.
    - `name`: the quantity's label.

    **Returns:** the drawn table: the components of `r`, `distance`,
    `direction` (the representative vector of the direction, `""` for `r = 0`),
    `C` (or `|C|` with `log`), `error`, `line` (1 where the point is on a direction's line).
    """
    r = np.asarray(r, dtype=np.float64)
    r = r.reshape(len(r), -1)
    mean = np.real(np.asarray(mean)).reshape(-1)
    error = np.zeros_like(mean) if error is None else np.asarray(error, dtype=np.float64).reshape(-1)
    y = np.abs(mean) if log else mean
    dist = np.linalg.norm(r, axis=1)
    cls, reps = _directions(r)
    # a direction gets a line when it holds displacements at two or more distances
    counts = [len(np.unique(np.round(dist[cls == d], _DECIMALS))) for d in range(len(reps))]
    lines = [d for d in range(len(reps)) if counts[d] >= 2][:MAX_DIRECTIONS]
    order = np.argsort(dist, kind="stable")
    shown = order[y[order] > 0] if log else order
    ax.errorbar(dist[shown], y[shown], yerr=error[shown], ls="none", marker="o", ms=5, mfc="none", color="0.55",
                capsize=2, lw=0.8, label="all r", zorder=2)
    for c, d in enumerate(lines):
        members = order[cls[order] == d]
        members = members[y[members] > 0] if log else members
        label = "r ∥ (" + ", ".join(f"{v:.3g}" for v in reps[d]) + ")"
        # open markers of different shapes and sizes: directions equal by symmetry stay visible
        ax.errorbar(dist[members], y[members], yerr=error[members], marker="osD^vP"[c], ms=8 - c, mfc="none", mew=1.2,
                    capsize=2, lw=1.2, ls=("-", "--", "-.", ":", "-", "--")[c], color=f"C{c}", label=label, zorder=3)
    if log:
        ax.set_yscale("log")
        ax.set_ylabel(f"|{name}|")
    else:
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_ylabel(name)
    ax.set_xlabel("|r|")
    ax.legend(fontsize=8, loc="best")
    cols = ("r",) if r.shape[1] == 1 else ("r_x", "r_y", "r_z")[: r.shape[1]]
    table: dict[str, Any] = {c: r[order, k] for k, c in enumerate(cols)}
    on_line = np.isin(cls, lines)
    table.update(
        distance=dist[order],
        direction=np.array(["" if cls[k] < 0 else "(" + " ".join(f"{v:.6g}" for v in reps[cls[k]]) + ")" for k in order]),
        **{("|C|" if log else "C"): y[order]},
        error=error[order],
        line=on_line[order].astype(np.int64),
    )
    return table


# -- energy ----------------------------------------------------------------------------


def draw_energy(axes, steps, energy, error, exact: float | None = None) -> dict[str, np.ndarray]:
    """Draw the energy against the step (a ±1σ band, the running mean) and,
    with an exact value, a dashed line at it and (in `axes[1]`, when given) the
    relative error `|E - E_exact| / |E_exact|` on a log scale.

    **Arguments:**

    - `axes`: one `Axes` or a sequence of one or two.
    - `steps`, `energy`, `error`: the records, `(n,)` each.
    - `exact`: the exact (reference) energy, or `None`.

    **Returns:** the drawn table: `step`, `energy`, `error`, `running_mean`
    (NaN before the window fills), and with `exact` `exact` and `relative_error`.
    """
    axes = list(axes) if isinstance(axes, (list, tuple, np.ndarray)) else [axes]
    steps = np.asarray(steps)
    e = np.asarray(energy, dtype=np.float64)
    err = np.asarray(error, dtype=np.float64)
    ax = axes[0]
    ax.fill_between(steps, e - err, e + err, alpha=0.3, label="±1σ")
    ax.plot(steps, e, lw=0.8, alpha=0.7, label="VMC energy")
    window = max(1, len(e) // 40)
    running = np.full(len(e), np.nan)
    if window > 1:
        running[window - 1 :] = np.convolve(e, np.ones(window) / window, mode="valid")
        ax.plot(steps, running, color="C3", lw=1.5, label=f"running mean ({window} steps)")
    table: dict[str, Any] = {"step": steps, "energy": e, "error": err, "running_mean": running}
    if exact is not None:
        ax.axhline(exact, color="k", ls="--", lw=1, label=f"exact {exact:.8g}")
        lo = min(exact, float(np.nanmin(e)))
        span = float(np.nanpercentile(e, 90)) - lo
        if span > 0:
            ax.set_ylim(lo - 0.1 * span, lo + 1.1 * span)
        rel = np.abs((e - exact) / exact) if exact != 0 else np.full(len(e), np.nan)
        table.update(exact=np.full(len(e), float(exact)), relative_error=rel)
        if len(axes) > 1 and exact != 0:
            ax2 = axes[1]
            ax2.semilogy(steps, rel, lw=0.8, alpha=0.7, label="|E - E_exact| / |E_exact|")
            ax2.semilogy(steps, err / abs(exact), lw=0.8, color="0.5", ls=":", label="σ / |E_exact|")
            if window > 1:
                ax2.semilogy(steps, np.abs((running - exact) / exact), color="C3", lw=1.5, label="running mean")
            ax2.set_ylabel("relative error")
            ax2.legend(fontsize=8, loc="upper right")
    ax.set_ylabel("energy")
    ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("step")
    return table


def plot_energy(records: Sequence[Mapping], exact: float | None, path) -> list[pathlib.Path]:
    """The energy against the step (`draw_energy`) into the PNG `path`, with
    a second panel of the relative error when `exact` is known and non-zero;
    the drawn numbers into `path` with the suffix `.csv`.

    **Arguments:**

    - `records`: log records with `step`, `energy`, `energy_error`.
    - `exact`: the exact energy, or `None`.
    - `path`: the PNG file.

    **Returns:** the paths written (PNG, CSV).
    """
    path = pathlib.Path(path)
    steps = np.array([r["step"] for r in records])
    e = np.array([r["energy"] for r in records], dtype=np.float64)
    err = np.array([r.get("energy_error", math.nan) for r in records], dtype=np.float64)
    n = 2 if exact not in (None, 0) else 1
    fig = Figure(figsize=(7, 3.2 * n), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    table = draw_energy(list(axes), steps, e, err, exact)
    fig.savefig(path, dpi=120)
    return [path, write_csv(path.with_suffix(".csv"), table)]


# -- observables -----------------------------------------------------------------------


def plot_observables(values: Mapping, observables: Mapping, path, lattice: AbstractLattice | None = None,
                     log: bool = False) -> list[pathlib.Path]:
    """One panel per `structure_factor`-like observable (a `q` coordinate:
    `draw_structure_factor`) and per correlation (a `distance` coordinate:
    `draw_correlation`), side by side in the PNG `path`; each panel's numbers
    into `PATH_STEM_NAME.csv` next to it.

    **Arguments:**

    - `values`: `{name: Stats}` (`mean`, `error_of_mean`).
    - `observables`: `{name: observable}` (their `coordinates()`).
    - `path`: the PNG file.
    - `lattice`: the run's lattice (the Brillouin zone); `None` draws markers only.
    - `log`: `|C(r)|` on a log scale.

    **Returns:** the paths written (the PNG first). Raises `ValueError` when
    no observable has a `q` or `distance` coordinate.
    """
    path = pathlib.Path(path)
    panels = []
    for name, obs in observables.items():
        coords = obs.coordinates()
        if "q" in coords or ("distance" in coords and "r" in coords):
            panels.append((name, coords))
    if not panels:
        raise ValueError("nothing to plot: pictures are drawn of structure_factor (q) and correlation (r) observables")
    fig = Figure(figsize=(5.6 * len(panels), 4.6), layout="constrained")
    fig.get_layout_engine().set(wspace=0.08)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    written = []
    for ax, (name, coords) in zip(axes, panels):
        stats = values[name]
        mean, err = np.asarray(stats.mean), np.asarray(stats.error_of_mean)
        if "q" in coords:
            table = draw_structure_factor(ax, coords["q"], mean, err, lattice, name="S(q)")
            ax.set_title(f"{name}: S(q)")
        else:
            table = draw_correlation(ax, coords["r"], mean, err, log=log)
            ax.set_title(f"{name}: C(r)")
        written.append(write_csv(path.with_name(f"{path.stem}_{name}.csv"), table))
    fig.savefig(path, dpi=120)
    return [path, *written]


# -- time evolution --------------------------------------------------------------------

#: at most this many entries of an array observable get a line of their own against t
MAX_ENTRIES = 10


def _record_values(records: Sequence[Mapping], observable: str) -> tuple[np.ndarray, np.ndarray]:
    """`(mean, error)` of `observable` per record, `(n, n_entries)` each (real part; NaN where missing)."""
    means, errors = [], []
    for r in records:
        if observable == "energy":
            m, e = r.get("energy"), r.get("energy_error")
        else:
            d = (r.get("observables") or {}).get(observable) or {}
            m, e = d.get("mean"), d.get("error")
        m = np.atleast_1d(np.asarray(np.nan if m is None else m, dtype=np.float64))
        e = np.atleast_1d(np.asarray(np.nan if e is None else e, dtype=np.float64))
        means.append(m.reshape(-1))
        errors.append(np.broadcast_to(e.reshape(-1), m.reshape(-1).shape) if e.size in (1, m.size) else np.full(m.size, np.nan))
    width = max(len(m) for m in means)
    pad = lambda rows: np.array([np.pad(x, (0, width - len(x)), constant_values=np.nan) for x in rows])  # noqa: E731
    return pad(means), pad(errors)


def draw_evolution(axes, records: Sequence[Mapping], observable: str = "energy",
                   exact: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Draw a quantity of a time-evolution log against `t`: the records' means
    with their error bars, the exact curve when given, and (in `axes[1]`, when
    given and the records carry `"residual"`) the TDVP residual on a log scale.

    **Arguments:**

    - `axes`: one `Axes` or a sequence of one or two.
    - `records`: log records with `t`, `energy`, `energy_error`, `residual`,
      `observables` (`{name: {"mean", "error"}}`).
    - `observable`: `"energy"` or the name of an observable of the records
      (an array one draws one line per entry, at most `MAX_ENTRIES`).
    - `exact`: `(times, values)` of the exact evolution (`values` shaped
      `(len(times), *entries)`), or `None`.

    **Returns:** the drawn table: `t`, then per entry `NAME` (`NAME[k]`), its
    `_error` and (with `exact`) `exact_` column at the records' times, and `residual`.
    """
    axes = list(axes) if isinstance(axes, (list, tuple, np.ndarray)) else [axes]
    t = np.array([float(r["t"]) for r in records])
    mean, err = _record_values(records, observable)
    n_entries = mean.shape[1]
    if n_entries > MAX_ENTRIES:
        raise ValueError(f"{observable} has {n_entries} entries; at most {MAX_ENTRIES} are drawn against t")
    keys = [observable] if n_entries == 1 else [f"{observable}[{k}]" for k in range(n_entries)]
    ax = axes[0]
    table: dict[str, Any] = {"t": t}
    ex_t = ex_v = None
    if exact is not None and exact[1] is not None:
        ex_t = np.asarray(exact[0], dtype=np.float64)
        ex_v = np.real(np.asarray(exact[1])).reshape(len(ex_t), -1)
    for k, key in enumerate(keys):
        color = f"C{k % 10}"
        ax.errorbar(t, mean[:, k], yerr=np.nan_to_num(err[:, k]), fmt="o", ms=3.5, capsize=2, lw=0.8, color=color,
                    label=f"TDVP {key}" if n_entries > 1 else "TDVP")
        table[key] = mean[:, k]
        table[f"{key}_error"] = err[:, k]
        if ex_v is not None and k < ex_v.shape[1]:
            ax.plot(ex_t, ex_v[:, k], "-", lw=1.1, color="k" if n_entries == 1 else color, alpha=0.8,
                    label="exact" if k == 0 else None)
            table[f"exact_{key}"] = np.interp(t, ex_t, ex_v[:, k])
    ax.set_ylabel(observable)
    ax.legend(fontsize=8, loc="best")
    residual = np.array([float(r["residual"]) if isinstance(r.get("residual"), (int, float)) else np.nan for r in records])
    table["residual"] = residual
    if len(axes) > 1:
        ax2 = axes[1]
        positive = np.isfinite(residual) & (residual > 0)
        if positive.any():
            ax2.semilogy(t[positive], residual[positive], "o-", ms=3, lw=0.8, color="C3", label="TDVP residual r²")
        else:
            ax2.plot(t, residual, "o-", ms=3, lw=0.8, color="C3", label="TDVP residual r²")
        ax2.set_ylabel("residual r²")
        ax2.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("t")
    return table


def plot_evolution_records(records: Sequence[Mapping], observable: str, path,
                           exact: tuple[np.ndarray, np.ndarray] | None = None, title: str | None = None) -> list[pathlib.Path]:
    """A quantity of a time-evolution log against `t` (`draw_evolution`) into the
    PNG `path`, with a second panel of the TDVP residual when the records carry
    one; the drawn numbers into `path` with the suffix `.csv`.

    **Returns:** the paths written (PNG, CSV).
    """
    path = pathlib.Path(path)
    with_residual = any(isinstance(r.get("residual"), (int, float)) for r in records)
    n = 2 if with_residual else 1
    fig = Figure(figsize=(7, 3.4 + 2.4 * (n - 1)), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False, height_ratios=[3, 2][:n])[:, 0]
    table = draw_evolution(list(axes), records, observable, exact)
    if title:
        axes[0].set_title(f"{observable} against t ({title})", fontsize="medium")
    fig.savefig(path, dpi=120)
    return [path, write_csv(path.with_suffix(".csv"), table)]
