"""Draw the bonds of every built-in lattice (the pictures in docs/components/lattices.md).

    python docs/make_lattice_images.py [OUTPUT_FOLDER]   # default docs/img/lattices

One PNG per lattice: sites with their index, nearest-neighbour bonds (order 1)
solid, next-nearest (order 2) dashed, coloured by bond kind (`edge_colors`).
Periodic clusters draw a bond that wraps around to the periodic image of its
end site (a faded circle outside the cluster).
"""

from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nqs_spins as ns  # noqa: E402

#: colour of each bond kind, and of order 2 bonds
KIND_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple")
ORDER2_COLOUR = "tab:gray"

LATTICES = {
    "chain": (ns.Chain(8), "chain, length = 8, pbc = true"),
    "square": (ns.Square(4), "square, length = 4, pbc = true"),
    "triangular": (ns.Triangular(4), "triangular, length = 4, pbc = true"),
    "honeycomb": (ns.Honeycomb(3), "honeycomb, length = 3, pbc = true"),
    "kagome": (ns.Kagome(3), "kagome, length = 3, pbc = true"),
    "ladder": (ns.Ladder(6), "ladder, length = 6, pbc = true (legs: kind 0, rungs: kind 1)"),
    "square_open": (ns.Square(4, pbc=False), "square, length = 4, pbc = false"),
    "honeycomb_open": (ns.Honeycomb(3, pbc=False), "honeycomb, length = 3, pbc = false"),
    "graph": (
        ns.Graph(
            [[0, 1], [1, 2], [2, 3], [3, 0], [0, 4], [2, 4]],
            colors=[0, 0, 0, 0, 1, 1],
            positions=[[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]],
        ),
        "graph with colors and positions",
    ),
}


def draw(lattice, title: str, path: pathlib.Path) -> None:
    """Draw `lattice` (which must have positions) into the PNG file `path`."""
    pos = lattice.positions
    if pos.shape[1] == 1:
        pos = np.concatenate([pos, np.zeros_like(pos)], axis=1)
    disp = lattice.site_displacements()
    if disp.shape[-1] == 1:
        disp = np.concatenate([disp, np.zeros_like(disp)], axis=-1)
    orders = (1,) if isinstance(lattice, ns.Graph) else (1, 2)
    extent = np.ptp(pos, axis=0)
    fig, ax = plt.subplots(figsize=(2.2 + 0.8 * (extent[0] + 2), 0.8 + 0.8 * (extent[1] + 2)))
    for order in reversed(orders):
        for (i, j), kind in zip(lattice.edges(order), lattice.edge_colors(order)):
            colour = KIND_COLOURS[kind % len(KIND_COLOURS)] if order == 1 else ORDER2_COLOUR
            style = dict(color=colour, lw=2.2 if order == 1 else 1.0, ls="-" if order == 1 else "--", zorder=order == 1)
            # draw from each end towards the (minimum) image of the other: one segment inside the
            # cluster, or two half-open segments for a bond that wraps around
            wraps = not np.allclose(pos[i] + disp[i, j], pos[j])
            for a, b in ((i, j), (j, i)) if wraps else ((i, j),):
                end = pos[a] + disp[a, b]
                alpha = (0.45 if order == 1 else 0.3) if wraps else 1.0
                t = np.linspace(0.0, 1.0, 20)[:, None]
                line = pos[a] + t * (end - pos[a])
                if lattice.ndim == 1 and order > 1:  # on a line, order 2 bonds as arcs above it
                    line[:, 1] += 0.3 * np.sin(np.pi * t[:, 0])
                ax.plot(line[:, 0], line[:, 1], alpha=alpha, **style)
                if wraps and order == 1:
                    ax.scatter(*end, s=60, facecolor="white", edgecolor="0.7", zorder=3, clip_on=False)
    ax.scatter(pos[:, 0], pos[:, 1], s=170, color="white", edgecolor="black", zorder=4, clip_on=False)
    for i, (x, y) in enumerate(pos):
        ax.annotate(str(i), (x, y), ha="center", va="center", fontsize=7, zorder=5)
    ax.set_aspect("equal")
    if lattice.ndim == 1:
        ax.set_ylim(-0.6, 0.6)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    kinds = sorted(set(lattice.edge_colors(1)))
    handles = [
        plt.Line2D([], [], color=KIND_COLOURS[k % len(KIND_COLOURS)], lw=2.2, label="order 1" + (f", kind {k}" if len(kinds) > 1 else ""))
        for k in kinds
    ]
    if 2 in orders:
        handles.append(plt.Line2D([], [], color=ORDER2_COLOUR, lw=1.0, ls="--", label="order 2"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(folder: str = "docs/img/lattices") -> None:
    out = pathlib.Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, (lattice, title) in LATTICES.items():
        draw(lattice, title, out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main(*sys.argv[1:2])
