"""Symmetrised autoregressive models (Roth 2020, Appendix B, Eqs. 22-23)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from nqs_core import AbstractBravaisLattice, AbstractDirectSamplingAnsatz, AbstractDiscreteSpace, AbstractLattice, AbstractSpace

GROUPS = ("reflection", "point_group", "none")


#: The elements as orthogonal matrices, in the order `lattice_permutations` lists them:
#: 1D: identity, mirror; 2D: identity, the mirrors x -> -x and y -> -y, the rotation by
#: 180 degrees (D2), then the diagonal mirror (x, y) -> (y, x), the rotations by 90 and
#: 270 degrees and the anti-diagonal mirror (the rest of D4).
_ORDER = {
    1: np.array([[[1.0]], [[-1.0]]]),
    2: np.array(
        [
            [[1, 0], [0, 1]],
            [[-1, 0], [0, 1]],
            [[1, 0], [0, -1]],
            [[-1, 0], [0, -1]],
            [[0, 1], [1, 0]],
            [[0, -1], [1, 0]],
            [[0, 1], [-1, 0]],
            [[0, -1], [-1, 0]],
        ],
        dtype=np.float64,
    ),
}


def lattice_permutations(lattice: AbstractLattice, group: str) -> np.ndarray:
    """Site permutations of a symmetry group of a chain or rectangle, from
    `lattice.point_group()` (about the centre of an open cluster).

    `"reflection"`: identity and the mirror `x -> L-1-x` (1D), or identity and the
    mirror along every axis and both (2D, a rectangle's D2). `"point_group"`: the
    same in 1D; in 2D the full D4 (8 elements) of a square, D2 of a rectangle
    (and the whole point group of any other lattice, in its own order after
    these). `"none"`: the identity only. Rows `perm` act as
    `(tau x)_i = x[perm[i]]`, with `perm` the lattice's site map.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    if group == "none":
        return np.arange(lattice.n_sites, dtype=np.int32)[None]
    if not isinstance(lattice, AbstractBravaisLattice) or lattice.ndim not in _ORDER:
        raise ValueError(f"symmetry groups are defined for 1D and 2D Bravais lattices (chain, square, ...), got {lattice!r}")
    maps, mats = lattice.point_group(), lattice.point_group_matrices()
    order = _ORDER[lattice.ndim][: 4 if group == "reflection" else None]
    picked = [k for m in order for k in np.flatnonzero(np.all(np.abs(mats - m) < 1e-9, axis=(1, 2)))]
    if group == "point_group":
        picked += [k for k in range(len(maps)) if k not in picked]
    return maps[picked].astype(np.int32)


class SymmetrizedAR(AbstractDirectSamplingAnsatz):
    """An autoregressive model averaged over a symmetry group (Roth 2020, Eqs. 22-23).

    `|psi(s)|^2 = (1/G) sum_tau |psi_base(tau s)|^2` and the phase is the circular
    mean of the phases of the transformed configurations weighted by their
    probabilities, `phi(s) = arg sum_tau |psi_base(tau s)|^2 exp(i phi_base(tau s))`.
    The result stays normalised, and exact samples are drawn by sampling the base
    model and applying a uniformly random group element, so the `direct`
    sampler works with it. It is a mixture over the group and has no
    single-site conditionals in closed form: it is an
    `AbstractDirectSamplingAnsatz`, not an autoregressive one (`sample` and
    `log psi` are exact; `base.conditionals` are the base model's).

    **Arguments:**

    - `base`: the autoregressive (or any direct-sampling) model, a table
      `{name = "ar_gru", ...}` in TOML.
    - `space`, `lattice`: injected; the lattice gives the site permutations.
    - `group`: `"reflection"` (mirror images), `"point_group"` (D4 on a square,
      D2 on a rectangle, the mirror in 1D) or `"none"`.
    - `spin_flip`: also average over the global spin flip (doubles the group;
      needs a space without `total_sz` or with `total_sz = 0`).
    """

    base: AbstractDirectSamplingAnsatz
    perms: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    flips: tuple[float, ...] = eqx.field(static=True)

    def __init__(
        self,
        base: AbstractDirectSamplingAnsatz,
        space: AbstractSpace,
        lattice: AbstractLattice,
        group: str = "reflection",
        spin_flip: bool = False,
    ):
        if not isinstance(base, AbstractDirectSamplingAnsatz):
            raise TypeError(f"base must be an autoregressive (direct-sampling) ansatz, got {type(base).__name__}")
        perms = lattice_permutations(lattice, group)
        if perms.shape[1] != space.shape[0]:
            raise ValueError(f"inconsistent sizes: lattice has {perms.shape[1]} sites, space {space.shape[0]}")
        flips = np.ones(len(perms))
        if spin_flip:
            constraint = space.constraint if isinstance(space, AbstractDiscreteSpace) else None
            if constraint is not None and constraint.total != 0:
                raise ValueError(f"spin_flip needs total_sz = 0 or None, got total_sz={constraint.total / 2:g}")
            perms = np.concatenate([perms, perms])
            flips = np.concatenate([flips, -flips])
        self.base = base
        self.perms = tuple(tuple(int(i) for i in row) for row in perms)
        self.flips = tuple(float(f) for f in flips)

    @property
    def group_size(self) -> int:
        return len(self.perms)

    def _transformed(self, x: Array) -> Array:
        return x[jnp.asarray(self.perms)] * jnp.asarray(self.flips, x.dtype)[:, None]

    def __call__(self, x):
        logs = jax.vmap(self.base)(self._transformed(x))
        lp = 2.0 * jnp.real(logs)
        log_mean_p = jax.scipy.special.logsumexp(lp) - float(np.log(self.group_size))
        if not jnp.iscomplexobj(logs):
            return 0.5 * log_mean_p
        w = jnp.exp(lp - jnp.max(lp))
        phase = jnp.angle(jnp.sum(jax.lax.complex(w * jnp.cos(jnp.imag(logs)), w * jnp.sin(jnp.imag(logs)))))
        return jax.lax.complex(0.5 * log_mean_p, phase)

    def sample(self, key, n):
        k1, k2 = jax.random.split(key)
        x = self.base.sample(k1, n)
        g = jax.random.randint(k2, (n,), 0, self.group_size)
        perms = jnp.asarray(self.perms)[g]  # (n, N)
        flips = jnp.asarray(self.flips, x.dtype)[g]
        return jnp.take_along_axis(x, perms, axis=1) * flips[:, None]
