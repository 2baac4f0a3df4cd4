"""The operator language for spins (public module).

    from nqs_spins.operators import sx, sy, sz, X, Z, local_operator

    h = sum(sx(i) * sx(i + 1) + sy(i) * sy(i + 1) + 0.5 * sz(i) * sz(i + 1) for i in range(7))
    h = h - 0.3 * sum(sz(i) for i in range(8))
    hamiltonian = h.on(SpinHalf(8))      # an nqs_core.AbstractDiscreteHamiltonian

The algebra, the builders and the parser live in the core (`nqs_core.operators`)
for every local space; this module re-exports them with the spin binding.
See docs/operators.md for the algebra, the normal form and the TOML form.
"""

from nqs_core.operators import (
    LocalOperator as LocalOperator,
    Operator as Operator,
    PauliOperator as PauliOperator,
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

from ._spin_operator import AbstractSpinHamiltonian as AbstractSpinHamiltonian, SpinOperator as SpinOperator
