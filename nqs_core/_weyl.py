"""The phases of the Weyl (clock-and-shift) basis of the operator language,
shared by the algebra (`_operator.py`) and the bindings (`_operator_bind.py`)."""

from __future__ import annotations

import cmath
import math

from ._validate import check_int


def _phase(d: int, k: int) -> complex | int:
    """`w^k` for `w = exp(2 pi i / d)`, exact for d = 1, 2, 4."""
    k %= d
    if d <= 2:
        return -1 if k else 1
    if d == 4:
        return (1, 1j, -1, -1j)[k]
    return cmath.exp(2j * math.pi * k / d)




def _site(i) -> int:
    return check_int("a site", i, minimum=0)
