"""Built-in spin-1/2 observables: magnetisations, correlation functions C(r),
the static structure factor S(q), dimer-dimer correlations and any user operator.

Operators are written in the operator language (`nqs_spins.operators`) and
measured in the basis of the Hamiltonian: for a system with a Marshall
rotation (`marshall_sites`), every operator `O` is measured as
`O.rotate_z(marshall_sites)`, so expectation values equal those of the
unrotated model. Spin units throughout: `S = sigma / 2`.
"""

from __future__ import annotations

import itertools
import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import nqs_core
from nqs_core import AbstractLattice

from nqs_core.operators import Operator, parse, sx, sy, sz

from ._spin_operator import AbstractSpinHamiltonian, SpinOperator
from ._space import check_spin_space
from ._system import _term_operator

COMPONENTS = ("zz", "ss")
_DECIMALS = 6  # displacements equal to 1e-6 belong to the same class


def _marshall_sites(system) -> tuple[int, ...]:
    return tuple(system.marshall_sites) if isinstance(system, AbstractSpinHamiltonian) else ()


def _bind(op: Operator, system) -> SpinOperator:
    """`op` in the basis of `system` (Marshall-rotated where it is), bound to its space."""
    return op.rotate_z(_marshall_sites(system)).on(system.space)


def _pair(i: int, j: int, component: str, space=None) -> Operator:
    """`S^z_i S^z_j` or `S_i . S_j`; spin S on a `Spin` space of `d > 2`."""
    if _dim(space) > 2:
        return parse("SzSz" if component == "zz" else "SxSx + SySy + SzSz", (i, j), space)
    if component == "zz":
        return sz(i) * sz(j)
    return sx(i) * sx(j) + sy(i) * sy(j) + sz(i) * sz(j)


def _dim(space) -> int:
    return space.local_dim if isinstance(space, nqs_core.AbstractLocalSpace) else 2


def _check_spin_values(owner: str, space) -> None:
    """Spin 1/2, or a local space of spin S with values `2m` (so that
    `S^z = x / 2` for every S)."""
    if isinstance(space, nqs_core.AbstractLocalSpace) and len(space.shape) == 1 and _dim(space) > 2:
        values = np.asarray(space.local_values)
        if np.allclose(values, values[0] - 2 * np.arange(len(values))) and np.isclose(values[0], -values[-1]):
            return
    check_spin_space(owner, space)


def _static(a: np.ndarray) -> tuple:
    """A NumPy array as nested tuples of floats (hashable static data)."""
    return tuple(map(_static, a)) if np.ndim(a) else float(a)


def _check_component(owner: str, component: str) -> None:
    if component not in COMPONENTS:
        raise ValueError(f"{owner}: component must be one of {', '.join(COMPONENTS)}, got {component!r}")


def _exact_displacements(owner: str, lattice: AbstractLattice) -> np.ndarray:
    """`lattice.site_displacements()` as they are (minimum image, float64), after
    the checks that the lattice has positions."""
    if not isinstance(lattice, AbstractLattice):
        raise TypeError(f"{owner} needs a lattice, got {lattice!r}")
    if lattice.positions is None:
        raise ValueError(
            f"{owner} needs site positions to define displacements r, but the lattice "
            f"{type(lattice).__name__} has none (a graph without coordinates)"
        )
    return np.asarray(lattice.site_displacements(), dtype=np.float64)


def _displacements(owner: str, lattice: AbstractLattice) -> np.ndarray:
    """The displacements rounded to `_DECIMALS`: keys that group equal vectors
    (and labels), never used in a phase."""
    return np.round(_exact_displacements(owner, lattice), _DECIMALS) + 0.0


def _classes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique vectors sorted by length, then lexicographically, and the class
    index of every input vector."""
    flat = vectors.reshape(-1, vectors.shape[-1])
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    order = np.lexsort(tuple(uniq[:, k] for k in range(uniq.shape[1] - 1, -1, -1)) + (np.round(np.linalg.norm(uniq, axis=1), _DECIMALS),))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse.reshape(-1)].reshape(vectors.shape[:-1])


def _canonical_sign(vectors: np.ndarray) -> np.ndarray:
    """`+1` or `-1` per vector (last axis) so that `sign * v` has its first
    non-zero component positive (`+1` for the zero vector)."""
    flat = vectors.reshape(-1, vectors.shape[-1])
    nz = flat != 0
    first = np.where(nz.any(axis=1), flat[np.arange(len(flat)), np.argmax(nz, axis=1)], 1.0)
    return np.where(first < 0, -1.0, 1.0).reshape(vectors.shape[:-1])


def _merge_reversed(vectors: np.ndarray, cls: np.ndarray, reverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge each class `cls[p]` with the class `reverse[p]` of the reversed
    pair (`d_ji` next to `d_ij`: on a torus `d_ji` is `-d_ij` up to a period,
    e.g. `(-2, 1)` and `(-2, -1)` on 4 x 4 with minimum images in `[-2, 2)`).
    A merged class is labelled by the largest (lexicographic) of its vectors
    and their negatives whose first non-zero component is positive.

    **Returns:** `(vectors, cls)` of the merged classes, sorted as `_classes`."""
    parent = list(range(len(vectors)))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(cls.ravel(), reverse.ravel()):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = sorted({root(a) for a in range(len(vectors))})
    label = {}
    for g in roots:
        members = vectors[[a for a in range(len(vectors)) if root(a) == g]]
        cands = np.concatenate([members, -members]) + 0.0
        cands = cands[_canonical_sign(cands) > 0]
        label[g] = max(map(tuple, cands))
    reps = np.array([label[g] for g in roots], dtype=np.float64)
    merged, index = _classes(reps)
    new_of_root = dict(zip(roots, index))
    return merged, np.vectorize(lambda a: new_of_root[root(int(a))])(cls)


def _pair_class_operators(system, lattice, component, owner):
    """One operator per displacement class `r`: `sum_{(i, j): d_ij = r} O_ij`
    over ordered pairs (`i = j` included), with its number of pairs.

    **Returns:** `(operators, vectors, counts, exact)`: `vectors` are the class
    keys (displacements rounded to `_DECIMALS` decimals, the labels), `exact`
    the mean of the unrounded displacements of each class's pairs (equal to
    every member to rounding, ~1e-15), for phases."""
    exact = _exact_displacements(owner, lattice)
    vectors, cls = _classes(np.round(exact, _DECIMALS) + 0.0)
    n = lattice.n_sites
    space = system.space
    ops = [Operator({}, _dim(space)) for _ in vectors]
    for i in range(n):
        for j in range(n):
            ops[cls[i, j]] = ops[cls[i, j]] + _pair(i, j, component, space)
    counts = np.bincount(cls.ravel(), minlength=len(vectors)).astype(np.float64)
    flat = exact.reshape(-1, exact.shape[-1])
    sums = np.zeros_like(vectors)
    np.add.at(sums, cls.ravel(), flat)
    return tuple(_bind(o, system) for o in ops), vectors, counts, sums / counts[:, None]


class Magnetization(nqs_core.AbstractSampleObservable):
    """Magnetisation per site `m = (1/N) sum_i S^z_i` and its square `m^2`.

    A vector of two entries, `[m, m^2]` (`coordinates()["quantity"]`). Diagonal
    in the spin basis, so it needs no evaluation of the wave function. In a
    space with fixed `total_sz` it is the constant `total_sz / N`.

    **Arguments:**

    - `space`: the spin-1/2 space.
    """

    n_sites: int = eqx.field(static=True)

    def __init__(self, space):
        _check_spin_values("magnetization", space)
        self.n_sites = int(space.size)

    @property
    def shape(self):
        return (2,)

    def function(self, x):
        m = 0.5 * jnp.sum(x) / self.n_sites
        return jnp.stack([m, m * m])

    def coordinates(self):
        return {"quantity": np.array(["m", "m^2"])}


class StaggeredMagnetization(nqs_core.AbstractSampleObservable):
    """Staggered magnetisation per site `m_s = (1/N) sum_i eps_i S^z_i` with
    `eps_i = +1` on sublattice 0 and `-1` on sublattice 1, and its square
    `m_s^2`.

    A vector `[m_s, m_s^2]` of the z component. For an SU(2)-symmetric state
    the full order parameter `<(sum_i eps_i S_i)^2> / N^2` is `3 m_s^2`, which
    is also `S(pi, pi) / N` of the `structure_factor`. Needs a bipartite lattice.

    **Arguments:**

    - `space`: the spin-1/2 space.
    - `lattice`: a bipartite lattice (its `sublattice(i)`).
    """

    signs: Array

    def __init__(self, space, lattice):
        _check_spin_values("staggered_magnetization", space)
        if not lattice.is_bipartite:
            raise ValueError(
                f"staggered_magnetization needs a bipartite lattice; {type(lattice).__name__} "
                "with these boundary conditions is not (an odd cycle of nearest-neighbour bonds)"
            )
        self.signs = jnp.asarray([1.0 - 2.0 * lattice.sublattice(i) for i in range(lattice.n_sites)])

    @property
    def shape(self):
        return (2,)

    def function(self, x):
        m = 0.5 * jnp.sum(self.signs.astype(x.dtype) * x) / x.shape[-1]
        return jnp.stack([m, m * m])

    def coordinates(self):
        return {"quantity": np.array(["m_s", "m_s^2"])}


class Correlation(nqs_core.AbstractOperatorObservable):
    """Spin-spin correlation function `C(r) = (1/N_r) sum_{(i,j): r_j - r_i = +-r} <S^z_i S^z_j>`
    (`component = "zz"`) or `<S_i . S_j>` (`component = "ss"`).

    The average runs over the `N_r` ordered pairs of sites whose minimum-image
    displacement is `r` or `-r` (`lattice.site_displacements()`): the sum over
    ordered pairs at `r` equals that at `-r`, so each symmetry-distinct
    displacement is listed once, as the vector whose first non-zero component
    is positive, and `N_r` counts the ordered pairs of both (`i = j` is the
    class `r = 0`, with `C(0) = 1/4` for zz and `3/4` for ss). Entries are
    sorted by `|r|`; `coordinates()` gives `r` (vectors), `distance` (`|r|`),
    `n_pairs` (`N_r`), `direction` (`r / |r|`, zero for `r = 0`) and, in two
    or more dimensions, `angle` (of `r` to the first axis, degrees in
    `(-90, 90]`): the entries of one `direction` are `C(r)` along that
    lattice direction. Measured in the basis of the Hamiltonian (Marshall
    rotation applied to `S^x S^x + S^y S^y`).

    **Arguments:**

    - `system`: the Hamiltonian (its space and basis rotation).
    - `lattice`: a lattice with site positions.
    - `component`: `"zz"` (default) or `"ss"`.
    """

    operators: tuple[SpinOperator, ...]
    transform: Array
    vectors: tuple = eqx.field(static=True)
    counts: tuple = eqx.field(static=True)

    def __init__(self, system, lattice, component: str = "zz"):
        _check_component("correlation", component)
        # the operators are those of the displacement classes (shared with structure_factor, so
        # that a measurement of both evaluates them once); the transform sums r and -r
        self.operators, _, _, _ = _pair_class_operators(system, lattice, component, "correlation")
        vectors, cls = _classes(np.round(_exact_displacements("correlation", lattice), _DECIMALS) + 0.0)
        merged, mcls = _merge_reversed(vectors, cls, cls.T)
        counts = np.bincount(mcls.ravel(), minlength=len(merged)).astype(np.float64)
        transform = np.zeros((len(merged), len(vectors)))
        transform[mcls.ravel(), cls.ravel()] = 1.0 / counts[mcls.ravel()]
        self.transform = jnp.asarray(transform)
        self.vectors, self.counts = _static(merged), _static(counts)

    def coordinates(self):
        r = np.asarray(self.vectors)
        distance = np.linalg.norm(r, axis=1)
        direction = np.round(r / np.where(distance > 0, distance, 1.0)[:, None], _DECIMALS) + 0.0
        out = {"r": r, "distance": distance, "n_pairs": np.asarray(self.counts), "direction": direction}
        if r.shape[1] >= 2:
            out["angle"] = np.round(np.degrees(np.arctan2(r[:, 1], r[:, 0])), _DECIMALS) + 0.0
        return out


#: `structure_factor` `q` names: the cluster's momenta in the first zone with
#: every zone-boundary image, or in the extended zone (twice as large)
Q_SETS = {"zone": 1.0, "extended": 2.0}


def _q_vectors(q, lattice, owner) -> np.ndarray:
    ndim = lattice.ndim
    if isinstance(q, str):
        if q not in Q_SETS:
            raise ValueError(f'{owner}: q must be "zone", "extended", a vector in units of pi or a list of them, got {q!r}')
        if not isinstance(lattice, nqs_core.AbstractBravaisLattice):
            raise ValueError(f'{owner}: q = "{q}" needs a Bravais lattice (a Brillouin zone); give the wave vectors explicitly')
        return _zone_momenta(lattice, Q_SETS[q])
    if q is None:
        try:
            return np.asarray(lattice.momenta(), dtype=np.float64).reshape(-1, ndim)
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}; give q explicitly") from None
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != ndim:
        raise ValueError(f"{owner}: q must be a vector of {ndim} numbers (in units of pi) or a list of them, got {q!r}")
    return np.pi * arr


def _zone_momenta(lattice, scale: float) -> np.ndarray:
    """The momenta of the cluster in the closed zone `scale` times the first one,
    every zone-boundary momentum at each of its images, sorted by `|q|`, then by angle."""
    recip = nqs_core.reciprocal_vectors(lattice)
    grid = nqs_core.momentum_lattice(lattice)
    reach = int(np.ceil(scale)) * np.asarray(lattice.extent)
    ranges = [range(-int(r), int(r) + 1) for r in reach]
    ns = np.array(list(itertools.product(*ranges)), dtype=np.float64)
    qs = ns @ grid
    qs = qs[nqs_core.in_zone(qs, recip, scale)]
    qs[np.abs(qs) < 1e-12] = 0.0
    key = (np.round(np.arctan2(qs[:, -1], qs[:, 0]) % (2 * np.pi), 9), np.round(np.linalg.norm(qs, axis=1), 9))
    return qs[np.lexsort(key)]


def _not_momenta_warning(qs: np.ndarray, lattice) -> str:
    """The one-line warning for wave vectors that are not momenta of the cluster."""
    listed = ", ".join("(" + ", ".join(f"{v:.4g}" for v in row) + ")" for row in qs[:4] / np.pi)
    more = f" and {len(qs) - 4} more" if len(qs) > 4 else ""
    return (
        f"structure_factor: q/pi = {listed}{more} is not a momentum of the {lattice.n_sites}-site "
        f"{type(lattice).__name__.lower()} cluster (q . L is not a multiple of 2 pi for its periodic "
        "translation vectors L): S(q) then depends on the minimum-image convention for displacements "
        "half way round the cluster (ties) and may be complex (nqs reports the real part); use a "
        'cluster whose momenta include q (q = "zone" lists them)'
    )


class ClusterMomentumWarning(UserWarning):
    """A `structure_factor` wave vector that is not a momentum of the periodic cluster."""


class StructureFactor(nqs_core.AbstractOperatorObservable):
    """Static structure factor `S(q) = (1/N) sum_{i,j} exp(i q . d_ij) <S_i . S_j>`
    (`component = "ss"`, default) or with `S^z_i S^z_j` (`"zz"`).

    `d_ij = r_j - r_i` is the minimum-image displacement, so at the momenta of
    the cluster this is the usual `(1/N) <S_q . S_-q>`. `q` in units of pi:
    `q = [1, 1]` is `(pi, pi)`, a list of vectors gives several, and no `q`
    gives every allowed momentum of the cluster (`lattice.momenta()`, folded
    into the first Brillouin zone, each once). `q = "zone"` gives the same
    momenta with every one on the zone boundary at each of its zone-equivalent
    images (for pictures: on a lattice with a basis, such as kagome, `S(q + G)`
    differs from `S(q)`, so the images are measured, not copied); `q =
    "extended"` every momentum in the zone twice as large. Always an array
    (one entry per `q`); `coordinates()` gives `q` (absolute), `q_over_pi` and
    `cluster_momentum` (whether `q` is a momentum of the periodic cluster).
    Needs site positions.

    A `q` that is not a momentum of the cluster (`q . L_d` not a multiple of
    `2 pi` for a periodic supercell vector `L_d`, e.g. K on the 12-site kagome
    cluster) warns (`ClusterMomentumWarning`, one line): S(q) then depends on
    how the minimum image breaks ties and may be complex (the real part is
    reported).

    **Arguments:**

    - `system`: the Hamiltonian (its space and basis rotation).
    - `lattice`: a lattice with site positions.
    - `q`: wave vector(s) in units of pi, `"zone"`, `"extended"`, or `None`
      for the momenta of the cluster.
    - `component`: `"ss"` (default) or `"zz"`.
    """

    operators: tuple[SpinOperator, ...]
    transform: Array
    q: tuple = eqx.field(static=True)
    momentum: tuple = eqx.field(static=True)

    def __init__(self, system, lattice, q: list | str | None = None, component: str = "ss"):
        _check_component("structure_factor", component)
        if lattice.positions is None:
            raise ValueError(
                "structure_factor needs site positions (S(q) sums exp(i q . r)), but the lattice "
                f"{type(lattice).__name__} has none (a graph without coordinates)"
            )
        qs = _q_vectors(q, lattice, "structure_factor")
        ok = nqs_core.cluster_momentum(qs, lattice)
        if not ok.all():
            warnings.warn(_not_momenta_warning(qs[~ok], lattice), ClusterMomentumWarning, stacklevel=2)
        # the phase of every class from its exact (unrounded) displacement: rounded
        # keys are only for grouping, and would put S(q) off by up to ~1e-6
        self.operators, _, _, exact = _pair_class_operators(system, lattice, component, "structure_factor")
        self.transform = jnp.asarray(np.cos(qs @ exact.T) / lattice.n_sites)
        self.q = _static(qs)
        self.momentum = tuple(bool(v) for v in ok)

    def coordinates(self):
        q = np.asarray(self.q)
        return {"q": q, "q_over_pi": q / np.pi, "cluster_momentum": np.asarray(self.momentum, dtype=bool)}


class Dimer(nqs_core.AbstractOperatorObservable):
    """Dimer-dimer correlation `D_a(r) = (1/N_{a,r}) sum <(S_i . S_j)(S_k . S_l)>`
    of nearest-neighbour bonds.

    Bonds are `lattice.edges(1)`; a bond `(i, j)` has the direction
    `a = d_ij` (minimum image, sign fixed so that its first non-zero component
    is positive, swapping `i` and `j`) and sits at its first site `i`. The sum
    runs over the ordered pairs of bonds `b = (i, j)`, `b' = (k, l)` with the
    same direction `a` and bond displacement `d_ik = r` (overlapping bonds
    included: `r = 0` gives `<(S_i . S_j)^2>`), `N_{a,r}` of them. The
    connected correlation is `D_a(r) - <S_i . S_j>_a^2`, where the bond
    energy `<S_i . S_j>_a` is `C(a)` of the `correlation` observable with
    `component = "ss"` (for a translation-invariant state). The pairs at `r`
    and at `-r` are one class (their operators are each other's adjoints),
    keyed by the vector whose first non-zero component is positive.
    `coordinates()` gives `direction` (`a`), `r` and `n_pairs`.

    **Arguments:**

    - `system`: the Hamiltonian (its space and basis rotation).
    - `lattice`: a lattice with site positions.
    """

    operators: tuple[SpinOperator, ...]
    transform: Array
    directions: tuple = eqx.field(static=True)
    vectors: tuple = eqx.field(static=True)
    counts: tuple = eqx.field(static=True)

    def __init__(self, system, lattice):
        disp = _displacements("dimer", lattice)
        bonds, dirs = [], []
        for i, j in lattice.edges(1):
            d = disp[i, j]
            nz = np.flatnonzero(d)
            if nz.size and d[nz[0]] < 0:
                i, j, d = j, i, -d
            bonds.append((i, j))
            dirs.append(d)
        if not bonds:
            raise ValueError("dimer: the lattice has no nearest-neighbour bonds")
        directions, kind = _classes(np.asarray(dirs))
        energy = [_pair(i, j, "ss") for i, j in bonds]
        keys: dict[tuple, Operator] = {}
        counts: dict[tuple, int] = {}
        vec_of: dict[tuple, np.ndarray] = {}
        for a in range(len(directions)):
            mine = [b for b in range(len(bonds)) if kind[b] == a]
            pairs = [(b, c) for b in mine for c in mine]
            # D_a at (b, c) and at the reversed (c, b) (r and -r) are one class: their
            # operators are each other's adjoints, their sum Hermitian
            forward = np.array([disp[bonds[b][0], bonds[c][0]] for b, c in pairs])
            vectors, cls = _classes(np.concatenate([forward, np.array([disp[bonds[c][0], bonds[b][0]] for b, c in pairs])]))
            vectors, cls = _merge_reversed(vectors, cls[: len(pairs)], cls[len(pairs):])
            for (b, c), m in zip(pairs, cls):
                key = (a, tuple(vectors[m]))
                keys[key] = keys.get(key, Operator({})) + energy[b] * energy[c]
                counts[key] = counts.get(key, 0) + 1
                vec_of[key] = vectors[m]
        # order: by direction, then |r|, then r
        order = sorted(keys, key=lambda k: (k[0], round(float(np.linalg.norm(vec_of[k])), _DECIMALS), k[1]))
        self.operators = tuple(_bind(keys[k], system) for k in order)
        n = np.array([counts[k] for k in order], dtype=np.float64)
        self.transform = jnp.diag(jnp.asarray(1.0 / n))
        self.directions = _static(np.asarray([directions[k[0]] for k in order]))
        self.vectors = _static(np.asarray([vec_of[k] for k in order]))
        self.counts = _static(n)

    def coordinates(self):
        return {"direction": np.asarray(self.directions), "r": np.asarray(self.vectors), "n_pairs": np.asarray(self.counts)}


class UserOperator(nqs_core.AbstractOperatorObservable):
    """The expectation value of any operator written like the terms of the
    `spin_model` system: `op` on `sites` or on the bonds of order `bonds`
    (summed, times `coupling`), or a list `terms` of such tables.

    ```toml
    [observables.xx01]
    name = "operator"
    op = "SxSx"
    sites = [[0, 1]]
    ```

    A scalar. The operator is measured in the basis of the Hamiltonian
    (Marshall rotation applied), must be Hermitian, and with a fixed
    `total_sz` must conserve S^z (one-line errors otherwise).

    **Arguments:**

    - `system`: the Hamiltonian (its space and basis rotation).
    - `lattice`: the lattice whose bonds `bonds` refers to.
    - `op`, `sites`, `bonds`, `color`, `coupling`: one term, as in `spin_model`.
    - `terms`: instead, a list of term tables.
    """

    operators: tuple[SpinOperator, ...]
    transform: Array | None

    def __init__(
        self,
        system,
        lattice,
        op: str | None = None,
        sites: str | list | None = None,
        bonds: int | None = None,
        color: int | None = None,
        coupling: float = 1.0,
        terms: list | None = None,
    ):
        given = {k: v for k, v in (("op", op), ("sites", sites), ("bonds", bonds), ("color", color)) if v is not None}
        if (terms is None) == (op is None):
            raise ValueError('operator needs either op = "..." (with sites or bonds) or terms = [...]')
        if terms is not None and (given or coupling != 1.0):
            raise ValueError("operator: give either terms = [...] or op/sites/bonds/coupling, not both")
        tables = list(terms) if terms is not None else [{**given, "coupling": coupling}]
        d = _dim(system.space)
        total = sum((_term_operator(f"operator term {k}", t, lattice, system.space if d > 2 else None)
                     for k, t in enumerate(tables)), Operator({}, d))
        if not total.is_hermitian():
            raise ValueError("operator: the operator is not Hermitian; write Hermitian sums such as \"SpSm + SmSp\"")
        self.operators = (_bind(total, system),)
        self.transform = None
