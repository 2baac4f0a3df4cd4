"""The operator language for spin 1/2 (public module).

    from nqs_spins.operators import sx, sy, sz, X, Z, local_operator

    h = sum(sx(i) * sx(i + 1) + sy(i) * sy(i + 1) + 0.5 * sz(i) * sz(i + 1) for i in range(7))
    h = h - 0.3 * sum(sz(i) for i in range(8))
    hamiltonian = h.on(SpinHalf(8))      # an nqs_core.AbstractDiscreteHamiltonian

See docs/operators.md for the algebra, the normal form and the TOML form.
"""

from ._operator import (
    AbstractSpinHamiltonian as AbstractSpinHamiltonian,
    Operator as Operator,
    SpinOperator as SpinOperator,
    X as X,
    Y as Y,
    Z as Z,
    identity as identity,
    local_operator as local_operator,
    parse as parse,
    sm as sm,
    sp as sp,
    sx as sx,
    sy as sy,
    sz as sz,
)
