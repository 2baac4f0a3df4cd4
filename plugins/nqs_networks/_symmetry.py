"""Quantum-number projection: symmetrise any ansatz over a group of site permutations (Rende et al. 2024, Eq. 12)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from nqs_core import AbstractAnsatz, AbstractBravaisLattice, AbstractLattice, load_parameters, parameters

from ._vit import ViT

#: One-dimensional irreducible representations of C4v on the eight elements in
#: the order of `point_group_maps` (E, C4, C2, C4^3, sigma_x, sigma_y, sigma_d, sigma_d').
#: Classes: E | 2 C4 | C2 | 2 sigma_v (axis reflections) | 2 sigma_d (diagonal reflections).
C4V_CHARACTERS: dict[str, tuple[int, ...]] = {
    "A1": (1, 1, 1, 1, 1, 1, 1, 1),
    "A2": (1, 1, 1, 1, -1, -1, -1, -1),
    "B1": (1, -1, 1, -1, 1, 1, -1, -1),
    "B2": (1, -1, 1, -1, -1, -1, 1, 1),
}
GROUPS = (
    "translations",
    "patch_translations",
    "c4",
    "c4v",
    "translations+c4",
    "translations+c4v",
    "patch_translations+c4",
    "patch_translations+c4v",
    "point_group",
    "translations+point_group",
    "none",
)


def _site_maps_to_perms(maps: np.ndarray) -> np.ndarray:
    """Site maps `f` (`f[i]` = image of site `i`) -> gather permutations `P` with
    `(g x)[i] = x[P[i]]`, i.e. `P = f^{-1}`: the spin on site `i` moves to `f(i)`."""
    return np.argsort(maps, axis=-1).astype(np.int32)


def _bravais(lattice: AbstractLattice, what: str) -> AbstractBravaisLattice:
    if not isinstance(lattice, AbstractBravaisLattice):
        raise ValueError(f"{what} needs a Bravais lattice with an extent (chain, square, triangular, ...); got {lattice!r}")
    return lattice


#: The C4v elements as orthogonal matrices, in the order of `C4V_CHARACTERS`.
_C4V_MATRICES = np.array(
    [
        [[1, 0], [0, 1]],
        [[0, -1], [1, 0]],
        [[-1, 0], [0, -1]],
        [[0, 1], [-1, 0]],
        [[-1, 0], [0, 1]],
        [[1, 0], [0, -1]],
        [[0, 1], [1, 0]],
        [[0, -1], [-1, 0]],
    ],
    dtype=np.float64,
)


def translation_maps(lattice: AbstractLattice, step: int = 1, within: int | None = None) -> np.ndarray:
    """Site maps of the periodic translations of a lattice (`lattice.translations`).

    **Arguments:**

    - `lattice`: a Bravais lattice, periodic in every direction.
    - `step`: translate by multiples of `step` cells along every direction.
    - `within`: only displacements with every component `< within` (the `b^d`
      translations inside a patch of side `b`).

    **Returns:** an `int64` array `(n_translations, n_sites)`, `maps[t, i]` the
    site that site `i` is moved to; translation 0 is the identity.
    """
    lattice = _bravais(lattice, "symmetry groups")
    if not all(lattice.periodic):
        raise ValueError(f"translations are a symmetry only of periodic lattices; {lattice!r} is not periodic")
    return lattice.translations(step=step, within=within)


def point_group_maps(lattice: AbstractLattice) -> np.ndarray:
    """Site maps of the eight C4v elements about the centre of an `L x L` lattice.

    In centred coordinates `(u, v) = (x - (L-1)/2, y - (L-1)/2)` the elements are,
    in order: identity, rotation by 90 degrees `(u, v) -> (-v, u)`, 180, 270,
    the axis reflections `(u, v) -> (-u, v)` and `(u, -v)` (class sigma_v), and the
    diagonal reflections `(u, v) -> (v, u)` and `(-v, -u)` (class sigma_d). Valid
    with open or periodic boundaries; `C4V_CHARACTERS` gives the characters in
    this order. Taken from `lattice.point_group()` (matched by their matrices).

    **Returns:** an `int64` array `(8, n_sites)`.
    """
    lattice = _bravais(lattice, "C4v")
    maps, mats = lattice.point_group(), lattice.point_group_matrices()
    found = [np.flatnonzero(np.all(np.abs(mats - m) < 1e-9, axis=(1, 2))) for m in _C4V_MATRICES] if lattice.ndim == 2 else []
    if len(maps) != 8 or not all(len(f) for f in found):
        raise ValueError(f"C4v needs a square L x L lattice; got extent {lattice.extent}")
    return maps[[int(f[0]) for f in found]]


def symmetry_group(
    lattice: AbstractLattice, symmetries: str = "translations", character: str = "A1", patch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Permutations and characters of a named group of lattice symmetries.

    **Arguments:**

    - `lattice`: a Bravais lattice (C4v needs a square `L x L`).
    - `symmetries`: `"translations"` (all periodic translations), `"patch_translations"`
      (the `b^d` translations inside a `b`-patch, for a model already exactly
      invariant under patch translations), `"c4v"` (8 point-group elements),
      `"c4"` (its 4 rotations), `"translations+c4v"` (`8 L^2` elements `T R`),
      `"patch_translations+c4v"` (`8 b^2`, the sum of Rende et al. 2024, Eq. 12),
      likewise `"translations+c4"` and `"patch_translations+c4"`,
      `"point_group"` (the whole `lattice.point_group()`, e.g. C6v of a
      triangular, honeycomb or kagome cluster; trivial character only),
      `"translations+point_group"`, and `"none"` (identity only).
    - `character`: a one-dimensional irrep: `"A1"` (alias `"trivial"`), `"A2"`,
      `"B1"`, `"B2"` of C4v (see `C4V_CHARACTERS`); on the `c4` groups its
      restriction to the rotations is used (A1, A2: +1 under C4; B1, B2: -1).
      Translations always carry momentum zero (character 1).
    - `patch_size`: `b`, needed for the `patch_translations` groups.

    **Returns:** `(perms, characters)`: `int32` arrays of shapes `(G, n_sites)` and
    `(G,)`, with `(g x)[i] = x[perms[g, i]]`. Element `g = T R` applies `R` first.
    """
    if symmetries not in GROUPS:
        raise ValueError(f"unknown symmetries {symmetries!r}; valid: {', '.join(GROUPS)}")
    character = "A1" if character == "trivial" else character
    if character not in C4V_CHARACTERS:
        raise ValueError(f"unknown character {character!r}; valid: trivial (= A1), {', '.join(C4V_CHARACTERS)}")
    point_part = symmetries.rsplit("+", 1)[-1] if symmetries.endswith(("c4", "c4v")) else None
    if character != "A1" and point_part is None:
        raise ValueError(f"character {character!r} needs a group with C4 or C4v; {symmetries!r} has only the trivial character")
    n = lattice.n_sites
    identity = np.arange(n, dtype=np.int64)[None]
    if symmetries.startswith("patch_translations"):
        if patch_size is None:
            raise ValueError("patch_translations needs a patch size: a vit inner ansatz, or patch_size = b")
        trans = translation_maps(lattice, within=patch_size)
    elif symmetries.startswith("translations"):
        trans = translation_maps(lattice)
    else:
        trans = identity
    if point_part is not None:
        point = point_group_maps(lattice)[: 4 if point_part == "c4" else 8]
    elif symmetries.endswith("point_group"):
        point = _bravais(lattice, "the point group").point_group()
    else:
        point = identity
    chi_point = np.asarray(C4V_CHARACTERS[character][: len(point)] if point_part else np.ones(len(point)), dtype=np.int32)
    # element (t, r) moves site i to t(r(i)); its character is chi(r) (momentum zero)
    maps = trans[:, point]  # (T, R, n): maps[t, r, i] = t(r(i))
    chars = np.broadcast_to(chi_point[None, :], maps.shape[:2])
    return _site_maps_to_perms(maps.reshape(-1, n)), np.ascontiguousarray(chars.reshape(-1))


def _signed_logsumexp(logs: Array, weights: Array) -> Array:
    """`log sum_g w_g exp(l_g)` for complex `l_g` and real weights, shifted by
    `max Re l` for stability; complex result (its imaginary part is the phase)."""
    shift = jax.lax.stop_gradient(jnp.max(jnp.real(logs))).astype(logs.dtype)
    terms = jnp.exp(logs - shift) * weights.astype(logs.dtype)
    return jnp.log(jnp.sum(terms)) + shift


class Symmetrized(AbstractAnsatz):
    """Projection of an ansatz onto a symmetry sector (Rende et al. 2024, Eq. 12).

    `psi_sym(x) = sum_g chi(g) [psi(g x) + p psi(-g x)]` over a group of site
    permutations `g` with one-dimensional characters `chi`, and spin parity
    `p = spin_parity` (the `-g x` terms are left out when `p = 0`). Evaluated in
    log space: `log psi_sym = m + log sum_g chi_g exp(log psi(g x) - m)` with
    `m = max Re log psi(g x)`; the output is complex.

    With `symmetries = "patch_translations+c4v"`, `spin_parity = 1` and a `vit`
    inside, this is exactly Eq. (12): the ViT is already invariant under
    translations by whole patches, so the `b^2` translations inside a patch
    give the full translation group (up to a factor `n_p`).

    The only parameters are those of `inner` (the permutations and characters
    are integer arrays), in the same order, so a checkpoint of the inner
    ansatz, or of another `Symmetrized` around the same inner ansatz, seeds it:
    `with_inner_params`, or `init_from` in a config.

    **Arguments:**

    - `inner`: the ansatz to project (a nested `[ansatz.inner]` table in a config).
    - `lattice`: the lattice (injected from `[lattice]`).
    - `symmetries`: the group, see `symmetry_group`: `"translations"` (default),
      `"patch_translations"`, `"c4"`, `"c4v"`, `"translations+c4"`,
      `"translations+c4v"`, `"patch_translations+c4"`, `"patch_translations+c4v"`,
      `"point_group"`, `"translations+point_group"`, `"none"`.
    - `character`: `"trivial"` (= `"A1"`, default), `"A2"`, `"B1"`, `"B2"` (C4v irreps:
      B1 is even under the axis reflections and odd under the diagonal ones, like
      `x^2 - y^2`; B2 the reverse, like `x y`; A2 odd under all reflections).
    - `spin_parity`: `+1` or `-1` to project onto that eigenvalue of the global
      spin flip `x -> -x`; `0` (default) leaves it out.
    - `init_from`: a run directory; its last checkpoint's parameters (of a run of
      `inner`, or of a `Symmetrized` around the same inner ansatz) replace the
      freshly initialised ones.
    - `patch_size`: the patch side `b` of the `patch_translations` groups; by
      default the `patch_size` of a `vit` inner ansatz (needed for any other).

    The protocol of Rende et al. 2024, Fig. 1 (optimise the ViT, then restore
    translations, then rotations, then reflections and spin parity, each stage
    starting from the last one's parameters) as configs: `vit` -> `symmetrized`
    with `"patch_translations"` -> `"patch_translations+c4"` ->
    `"patch_translations+c4v"` and `spin_parity = 1`, each with `init_from` the
    previous run directory.
    """

    inner: AbstractAnsatz
    perms: Array
    characters: Array
    spin_parity: int = eqx.field(static=True)
    symmetries: str = eqx.field(static=True)
    character: str = eqx.field(static=True)

    def __init__(
        self,
        inner: AbstractAnsatz,
        lattice: AbstractLattice,
        symmetries: str = "translations",
        character: str = "trivial",
        spin_parity: int = 0,
        init_from: str | None = None,
        patch_size: int | None = None,
    ):
        if spin_parity not in (-1, 0, 1):
            raise ValueError(f"spin_parity must be +1, -1 or 0 (no projection), got {spin_parity!r}")
        if patch_size is None and isinstance(inner, ViT):
            patch_size = inner.patch_size
        perms, chars = symmetry_group(lattice, symmetries, character, patch_size)
        if init_from:
            inner = load_inner_params(inner, init_from)
        self.inner = inner
        self.perms = jnp.asarray(perms)
        self.characters = jnp.asarray(chars)
        self.spin_parity = int(spin_parity)
        self.symmetries = symmetries
        self.character = "A1" if character == "trivial" else character

    @property
    def n_terms(self) -> int:
        """Number of evaluations of `inner` per configuration."""
        return self.perms.shape[0] * (2 if self.spin_parity else 1)

    def __call__(self, x):
        xs = x.reshape(-1)[self.perms].reshape((-1,) + x.shape)
        chars = self.characters
        if self.spin_parity:
            xs = jnp.concatenate([xs, -xs])
            chars = jnp.concatenate([chars, self.spin_parity * chars])
        logs = jax.vmap(self.inner)(xs)
        if not jnp.iscomplexobj(logs):
            logs = jax.lax.complex(logs, jnp.zeros_like(logs))
        return _signed_logsumexp(logs, chars)


def with_inner_params(symmetrized: Symmetrized, params) -> Symmetrized:
    """`symmetrized` with the inner ansatz's parameters replaced.

    **Arguments:**

    - `symmetrized`: a `Symmetrized` ansatz.
    - `params`: the parameters to use: an ansatz of the same architecture as
      `symmetrized.inner`, its parameter partition (`nqs_core.parameters(m)[0]`,
      e.g. `state.params` of a checkpointed run), or the partition of another
      `Symmetrized` around the same inner ansatz.

    **Returns:** a new `Symmetrized`; the group and characters are unchanged.
    """
    if isinstance(params, Symmetrized):  # a Symmetrized or its parameter partition
        params = params.inner
    new_params = parameters(params)[0]
    old_params, static = parameters(symmetrized.inner)
    if jax.tree.structure(new_params) != jax.tree.structure(old_params) or any(
        a.shape != b.shape or a.dtype != b.dtype for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(old_params))
    ):
        raise ValueError("the parameters do not match the inner ansatz (different architecture or sizes)")
    return eqx.tree_at(lambda s: s.inner, symmetrized, eqx.combine(new_params, static))


def load_inner_params(inner: AbstractAnsatz, run_dir) -> AbstractAnsatz:
    """`inner` with the parameters of the last checkpoint in `run_dir`.

    The run may have optimised `inner` itself or a `Symmetrized` around it: the
    parameter leaves are the same, in the same order. Relies on the checkpoint
    holding the VMC state with the parameters first (`nqs_core.VMCState`).
    """
    params, static = parameters(inner)
    try:
        loaded = load_parameters(run_dir, params)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"init_from: {exc}") from None
    return eqx.combine(loaded, static)
