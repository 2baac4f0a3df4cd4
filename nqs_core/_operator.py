"""The operator language: sums of products of local operators on numbered
sites, for a local Hilbert space of any dimension `d` (space-free algebra).

An `Operator` is space-free data. Every term is a coefficient times a product,
over sites, of one Weyl (clock-and-shift) matrix `X^a Z^b` per site, where on a
site of local dimension `d` the shift `X|j> = |j+1 mod d>` and the clock
`Z|j> = w^j |j>` with `w = exp(2 pi i / d)`. These `d^2` matrices are a basis of
all `d x d` matrices, orthogonal under the trace, and closed under products up
to a phase (`Z^b X^c = w^(b c) X^c Z^b`), so a product of sums is again a sum of
such strings and merging equal strings is exact: this is the normal form. For
`d = 2` they are the Pauli matrices (`Y = i X Z`). The local basis states
`j = 0 .. d-1` are those of an `nqs_core.AbstractLocalSpace` (spin S:
`m = S .. -S`; spin 1/2: `(up, down)`).

Binding to a space (connected elements) is in `_operator_bind.py`; the builders
and the text form in `_operator_text.py`.
"""

from __future__ import annotations

import itertools
import operator as _op
from numbers import Number

import numpy as np

from ._operator_bind import bind_operator, check_binding
from ._weyl import _phase, _site

#: Relative tolerance of the normal form: after an operation, a coefficient
#: (or its real or imaginary part) smaller than `ZERO_RTOL` times the largest
#: coefficient of the operands is set to zero.
ZERO_RTOL = 1e-14
#: Relative tolerance of `Operator.is_hermitian`.
HERMITIAN_RTOL = 1e-12
#: `Operator.to_dense` refuses spaces with more states than this.
DENSE_MAX_STATES = 1 << 14

def _clean(terms: dict, scale: float) -> dict:
    """Drop coefficients below `ZERO_RTOL * scale` and snap tiny real or
    imaginary parts to zero."""
    tol = ZERO_RTOL * scale
    out = {}
    for key, c in terms.items():
        c = complex(c)
        re_, im = c.real, c.imag
        if abs(re_) <= tol:
            re_ = 0.0
        if abs(im) <= tol:
            im = 0.0
        if re_ != 0.0 or im != 0.0:
            out[key] = complex(re_, im)
    return out


def _mul_keys(k1: tuple, k2: tuple, d: int) -> tuple[tuple, complex]:
    """Product of two Weyl strings (each a tuple of `(site, a, b)` sorted by
    site): the resulting string and its phase."""
    phase = 1
    out = []
    i = j = 0
    while i < len(k1) or j < len(k2):
        if j == len(k2) or (i < len(k1) and k1[i][0] < k2[j][0]):
            out.append(k1[i])
            i += 1
        elif i == len(k1) or k2[j][0] < k1[i][0]:
            out.append(k2[j])
            j += 1
        else:
            s, a1, b1 = k1[i]
            _, a2, b2 = k2[j]
            # X^a1 Z^b1 X^a2 Z^b2 = w^(b1 a2) X^(a1+a2) Z^(b1+b2)
            phase = phase * _phase(d, b1 * a2)
            a, b = (a1 + a2) % d, (b1 + b2) % d
            if a or b:
                out.append((s, a, b))
            i += 1
            j += 1
    return tuple(out), phase


def _weyl_matrix(d: int, a: int, b: int) -> np.ndarray:
    """`X^a Z^b` as a `d x d` matrix: column `j` has `w^(b j)` in row `j + a`."""
    m = np.zeros((d, d), dtype=complex)
    for j in range(d):
        m[(j + a) % d, j] = _phase(d, b * j)
    return m


class Operator:
    """A sum of products of local operators on numbered sites (space-free).

    Build operators from `sx, sy, sz, sp, sm, X, Y, Z` (spin 1/2), `identity`,
    `local_operator` (any `d`) and `parse` (in `nqs_core.operators`) with `+`, `-`, `*` (operator
    product, in the written order; `@` is the same), multiplication and
    division by (complex) scalars and integer powers. Every result is kept in
    normal form: a sum of distinct Weyl strings (Pauli strings for spin 1/2)
    with non-zero coefficients, so products of sums never multiply the number
    of connected elements (`(sum_i X_i) * (sum_j X_j)` has `1 + n(n-1)/2`).
    Coefficients smaller than `ZERO_RTOL` (1e-14) times the largest
    coefficient of the operands are dropped, and real or imaginary parts that
    small are set to zero.

    `H` is the Hermitian conjugate, `is_hermitian()` checks it, `to_dense(space)`
    gives the matrix (reference, small spaces), `on(space)` binds the operator
    to a space (an `nqs_core.AbstractLocalSpace`) as an
    `nqs_core.AbstractDiscreteHamiltonian`, and `rotate_z(sites)`
    conjugates it by `prod_i Z_i` (the Marshall sublattice rotation).

    Operators are immutable and hashable; `==` compares normal forms exactly.

    **Arguments:**

    - `terms`: mapping from a Weyl string (a tuple of `(site, a, b)` triples
      sorted by site, meaning `X^a Z^b` on that site, `(a, b) != (0, 0)`) to its
      coefficient. Usually built through the functions above.
    - `local_dim`: local dimension `d` of every site (2 for spin 1/2, `2S + 1`
      for spin S).
    """

    __slots__ = ("_terms", "_d", "_hash")

    def __init__(self, terms=None, local_dim: int = 2):
        d = _op.index(local_dim)
        if d < 2:
            raise ValueError(f"local_dim must be >= 2, got {local_dim}")
        clean = {}
        for key, c in dict(terms or {}).items():
            key = tuple((_site(s), int(a) % d, int(b) % d) for s, a, b in key)
            sites = [s for s, _, _ in key]
            if sites != sorted(set(sites)):
                raise ValueError(f"a Weyl string must list distinct sites in ascending order, got {key}")
            key = tuple(f for f in key if f[1] or f[2])
            clean[key] = clean.get(key, 0) + complex(c)
        scale = max((abs(c) for c in clean.values()), default=0.0)
        self._terms = _clean(clean, scale)
        self._d = d
        self._hash = None

    # -- data ------------------------------------------------------------------
    @property
    def local_dim(self) -> int:
        """Local dimension of every site."""
        return self._d

    @property
    def terms(self) -> dict[tuple, complex]:
        """A copy of the normal form: Weyl string -> coefficient."""
        return dict(self._terms)

    @property
    def sites(self) -> tuple[int, ...]:
        """The sites the operator acts on non-trivially, ascending."""
        return tuple(sorted({s for key in self._terms for s, _, _ in key}))

    @property
    def scale(self) -> float:
        """The largest absolute coefficient (0 for the zero operator)."""
        return max((abs(c) for c in self._terms.values()), default=0.0)

    def __len__(self) -> int:
        return len(self._terms)

    def __eq__(self, other):
        if not isinstance(other, Operator):
            return NotImplemented
        return self._d == other._d and self._terms == other._terms

    def __hash__(self):
        if self._hash is None:
            self._hash = hash((self._d, frozenset(self._terms.items())))
        return self._hash

    def pauli_strings(self) -> dict[str, complex]:
        """Spin 1/2 only: the operator as Pauli strings, e.g.
        `{"X0 X1": 0.25, "Y0 Y1": 0.25, "": -1.0}` (`""` is the identity)."""
        self._need_spin_half("pauli_strings")
        out = {}
        for key, c in self._terms.items():
            words = []
            for s, a, b in key:
                if a and b:  # X Z = -i Y
                    c = c * -1j
                words.append(("Y" if a and b else "X" if a else "Z") + str(s))
            out[" ".join(words)] = c
        return out

    def __repr__(self):
        if not self._terms:
            return "Operator(0)"
        if self._d != 2:
            return f"Operator({self._terms!r}, local_dim={self._d})"
        parts = []
        for word, c in sorted(self.pauli_strings().items()):
            cs = f"{c.real:g}" if c.imag == 0 else f"({c:g})"
            parts.append(f"{cs} {word}" if word else cs)
        return "Operator(" + " + ".join(parts) + ")"

    # -- algebra ---------------------------------------------------------------
    def _coerce(self, other) -> Operator | None:
        if isinstance(other, Operator):
            if other._d != self._d:
                raise ValueError(
                    f"cannot combine operators of local dimension {self._d} and {other._d}"
                )
            return other
        if isinstance(other, Number) and not isinstance(other, bool):
            return Operator({(): complex(other)}, self._d)
        return None

    @classmethod
    def _raw(cls, terms: dict, local_dim: int, scale: float) -> Operator:
        """An operator from trusted Weyl strings (sorted, no identity factors)."""
        out = cls.__new__(cls)
        out._terms = _clean(terms, scale)
        out._d = local_dim
        out._hash = None
        return out

    @staticmethod
    def sum(operators, local_dim: int = 2) -> Operator:
        """The sum of many operators in one pass (`sum(ops)` copies the
        accumulated terms at every step, quadratic in the number of terms).

        **Arguments:**

        - `operators`: an iterable of `Operator`s (and numbers).
        - `local_dim`: local dimension of the result (when it is empty).

        **Returns:** the `Operator`.
        """
        terms: dict = {}
        scale = 0.0
        d = local_dim
        for op in operators:
            if not isinstance(op, Operator):
                op = Operator({}, d)._coerce(op)
                if op is None:
                    raise TypeError("Operator.sum needs operators or numbers")
            d = op._d
            scale = max(scale, op.scale)
            for key, c in op._terms.items():
                terms[key] = terms.get(key, 0) + c
        return Operator._raw(terms, d, scale)

    def _new(self, terms: dict, scale: float) -> Operator:
        return Operator._raw(terms, self._d, scale)

    def __add__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        terms = dict(self._terms)
        for key, c in other._terms.items():
            terms[key] = terms.get(key, 0) + c
        return self._new(terms, max(self.scale, other.scale))

    __radd__ = __add__

    def __neg__(self):
        return self._new({k: -c for k, c in self._terms.items()}, self.scale)

    def __pos__(self):
        return self

    def __sub__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        return other + (-self)

    def __mul__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        terms: dict = {}
        for k1, c1 in self._terms.items():
            for k2, c2 in other._terms.items():
                key, phase = _mul_keys(k1, k2, self._d)
                terms[key] = terms.get(key, 0) + c1 * c2 * phase
        return self._new(terms, self.scale * other.scale)

    def __rmul__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        return other * self

    __matmul__ = __mul__
    __rmatmul__ = __rmul__

    def __truediv__(self, other):
        if isinstance(other, Number) and not isinstance(other, bool):
            return self * (1.0 / complex(other))
        return NotImplemented

    def __pow__(self, n):
        n = _op.index(n)
        if n < 0:
            raise ValueError(f"operator powers must be >= 0, got {n}")
        out = Operator({(): 1.0}, self._d)
        for _ in range(n):
            out = out * self
        return out

    @property
    def H(self) -> Operator:
        """The Hermitian conjugate: `(c X^a Z^b)^dagger = conj(c) w^(a b) X^(-a) Z^(-b)`
        per site (for Pauli strings, `conj(c)` times the string)."""
        d = self._d
        terms = {}
        for key, c in self._terms.items():
            phase = 1
            new = []
            for s, a, b in key:
                phase = phase * _phase(d, a * b)
                new.append((s, (-a) % d, (-b) % d))
            terms[tuple(new)] = c.conjugate() * phase
        return self._new(terms, self.scale)

    def adjoint(self) -> Operator:
        """The Hermitian conjugate (same as `.H`)."""
        return self.H

    def is_hermitian(self, rtol: float = HERMITIAN_RTOL) -> bool:
        """Whether `self == self.H` to `rtol` times the largest coefficient."""
        adj = self.H._terms
        tol = rtol * self.scale
        keys = set(self._terms) | set(adj)
        return all(abs(self._terms.get(k, 0) - adj.get(k, 0)) <= tol for k in keys)

    def rotate_z(self, sites) -> Operator:
        """`U O U^dagger` with `U = prod_{i in sites} Z_i`: the string `X^a Z^b`
        on a rotated site picks up `w^a` (for spin 1/2, `X`, `Y`, `S^x`, `S^y`,
        `S^+`, `S^-` change sign there; `Z` is unchanged). With `sites` the
        sublattice-1 sites this is the Marshall rotation used by
        `Heisenberg(marshall_sign=True)`."""
        rot = {_site(s) for s in sites}
        terms = {}
        for key, c in self._terms.items():
            phase = 1
            for s, a, _ in key:
                if s in rot:
                    phase = phase * _phase(self._d, a)
            terms[key] = c * phase
        return self._new(terms, self.scale)

    def relabel(self, mapping) -> Operator:
        """The operator with site `i` moved to `mapping[i]` (a dict or a
        sequence; sites not in a dict stay). The images must be distinct.

        **Arguments:**

        - `mapping`: e.g. `(3, 4)` puts sites 0, 1 on sites 3, 4.

        **Returns:** the relabelled `Operator`.
        """
        if not isinstance(mapping, dict):
            mapping = dict(enumerate(mapping))
        image = {s: _site(mapping.get(s, s)) for s in self.sites}
        if len(set(image.values())) != len(image):
            raise ValueError(f"relabel: sites must map to distinct sites, got {image}")
        terms = {}
        for key, c in self._terms.items():
            terms[tuple(sorted((image[s], a, b) for s, a, b in key))] = c
        return self._new(terms, self.scale)


    # -- spaces ----------------------------------------------------------------
    def _need_spin_half(self, what: str) -> None:
        if self._d != 2:
            raise ValueError(f"{what} is implemented for spin 1/2 (local_dim 2), got local_dim {self._d}")

    def on(self, space):
        """The operator bound to `space` (an `nqs_core.AbstractLocalSpace`, or a
        spin-1/2 space): compiled connected elements, an
        `nqs_core.AbstractDiscreteHamiltonian` (see `nqs_core.bind_operator`)."""
        return bind_operator(self, space)

    def to_dense(self, space) -> np.ndarray:
        """The matrix in the basis `space.all_states()` (same order), built
        directly from the terms in NumPy (a reference for small spaces, at most
        `DENSE_MAX_STATES` states). Real dtype when every coefficient is real.

        **Arguments:**

        - `space`: a local space of the operator's local dimension (e.g.
          `SpinHalf`, or `Spin(S=1)` for `d = 3`); with a constraint (fixed
          `total_sz`) the operator must conserve it.

        **Returns:** a `(n_states, n_states)` NumPy array.
        """
        values = check_binding("to_dense", space, self)
        d = self._d
        n = space.n_states
        if n > DENSE_MAX_STATES:
            raise ValueError(f"to_dense: {n} states is too many (limit {DENSE_MAX_STATES})")
        states = np.asarray(space.all_states(), dtype=np.float64).reshape(n, -1)
        v = np.asarray(values)
        idx = np.argmax(states[..., None] == v, axis=-1)  # local basis index j
        rank = np.argsort(np.argsort(v))  # position of value j among the sorted values
        nsites = states.shape[1]
        weights = d ** np.arange(nsites - 1, -1, -1, dtype=np.int64)
        codes = rank[idx] @ weights
        order = np.argsort(codes)
        sorted_codes = codes[order]
        out = np.zeros((n, n), dtype=complex)
        cols = np.arange(n)
        leaks = []  # single strings may leave a constrained space; their sum must not
        for key, c in self._terms.items():
            # X^a Z^b |j'> = w^(b j') |j' + a>, site by site
            value = np.ones(n, dtype=complex) if d > 2 else np.ones(n)
            target = idx.copy()
            for s, a, b in key:
                if b:
                    value = value * np.array([_phase(d, b * j) for j in range(d)])[idx[:, s]]
                if a:
                    target[:, s] = (idx[:, s] + a) % d
            tcodes = rank[target] @ weights
            pos = np.minimum(np.searchsorted(sorted_codes, tcodes), n - 1)
            found = sorted_codes[pos] == tcodes
            leaks.append((tcodes[~found] * n + cols[~found], c * value[~found]))
            np.add.at(out, (order[pos[found]], cols[found]), c * value[found])
        if leaks:
            where = np.concatenate([w for w, _ in leaks])
            _, inverse = np.unique(where, return_inverse=True)
            total = np.zeros(inverse.max(initial=-1) + 1, dtype=complex)
            np.add.at(total, inverse, np.concatenate([v for _, v in leaks]))
            if np.any(np.abs(total) > HERMITIAN_RTOL * self.scale):
                raise ValueError(f"to_dense: the operator leaves the space {space!r}")
        if np.all(out.imag == 0):
            return out.real.copy()
        return out



def identity(local_dim: int = 2) -> Operator:
    """The identity operator (acts on no site)."""
    return Operator({(): 1.0}, local_dim)


def local_operator(matrix, sites) -> Operator:
    """Any `d^k x d^k` matrix acting on `k` sites, as an `Operator`.

    The single-site basis is that of the local space (`local_values`): for
    spin 1/2 (`d = 2`) it is `(up, down)`, so Pauli
    `sigma^z = [[1, 0], [0, -1]]` and `S^+ = [[0, 1], [0, 0]]`; on several
    sites the first site of `sites` is the most significant (leftmost)
    factor of `numpy.kron`. The matrix is expanded in Weyl (Pauli) strings
    with `c_P = tr(P^dagger M) / d^k`.

    **Arguments:**

    - `matrix`: a square array of side `d^k` (real or complex).
    - `sites`: `k` distinct site indices (an int for one site).

    **Returns:** the `Operator`.
    """
    if isinstance(sites, Number):
        sites = (sites,)
    sites = tuple(_site(s) for s in sites)
    k = len(sites)
    if k == 0 or len(set(sites)) != k:
        raise ValueError(f"local_operator needs distinct sites, got {sites}")
    m = np.asarray(matrix, dtype=complex)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"local_operator needs a square matrix, got shape {m.shape}")
    d = round(m.shape[0] ** (1.0 / k))
    if d < 2 or d**k != m.shape[0]:
        raise ValueError(
            f"local_operator: a matrix on {k} site(s) must have side d^{k} (e.g. {2**k} for spin 1/2), "
            f"got {m.shape[0]}"
        )
    basis = np.stack([_weyl_matrix(d, a, b) for a in range(d) for b in range(d)])
    bconj = basis.conj().reshape(d * d, d * d)  # (p, (row, col))
    t = m.reshape((d,) * (2 * k)).transpose([ax for s in range(k) for ax in (s, k + s)])
    t = t.reshape((d * d,) * k)
    for s in range(k):
        t = np.moveaxis(np.tensordot(bconj, t, axes=([1], [s])), 0, s)
    t = t / d**k
    order = np.argsort(sites)
    terms = {}
    for idx in itertools.product(range(d * d), repeat=k):
        c = t[idx]
        if c != 0:
            key = tuple((sites[j], idx[j] // d, idx[j] % d) for j in order)
            terms[key] = c
    terms = {tuple(f for f in k if f[1] or f[2]): c for k, c in terms.items()}
    return Operator._raw(terms, d, float(np.max(np.abs(m))))

