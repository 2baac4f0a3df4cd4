"""The operator language (public module), for a local Hilbert space of any
dimension `d`: the space-free algebra (`Operator`, `local_operator`,
`identity`), the spin-1/2 and Pauli builders (`sx sy sz sp sm X Y Z`), the text
form (`parse`) and the bindings to a space (`bind_operator`, `PauliOperator`,
`LocalOperator`).

    from nqs_core.operators import local_operator, parse

    s = Spin(8, S=1)                                  # nqs_spins: a local space, d = 3
    h = sum(parse("SxSx + SySy + SzSz", (i, (i + 1) % 8), s) for i in range(8))
    hamiltonian = h.on(s)                             # an AbstractDiscreteHamiltonian

See docs/operators.md.
"""

from ._operator import (
    DENSE_MAX_STATES as DENSE_MAX_STATES,
    HERMITIAN_RTOL as HERMITIAN_RTOL,
    ZERO_RTOL as ZERO_RTOL,
    Operator as Operator,
    identity as identity,
    local_operator as local_operator,
)
from ._operator_bind import (
    LocalOperator as LocalOperator,
    PauliOperator as PauliOperator,
    bind_operator as bind_operator,
    check_binding as check_binding,
)
from ._operator_text import X as X, Y as Y, Z as Z, parse as parse, sm as sm, sp as sp, sx as sx, sy as sy, sz as sz
