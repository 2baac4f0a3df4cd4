"""The Gaussian random-walk rule, registered by name (kind `rule`) for the
`metropolis` and `parallel_tempering` samplers."""

from __future__ import annotations

import nqs_core

from ._common import as_float
from ._sampler import GaussianRule


def gaussian(space, step_size: float = 0.5, target_acceptance: float = 0.5, adapt_rate: float = 1.0) -> GaussianRule:
    """Move all coordinates at once, `x' = x + step_size * N(0, 1)`, with a width that
    adapts to `target_acceptance` (continuous spaces).

    **Arguments:**

    - `step_size`: initial width (default 0.5).
    - `target_acceptance`: in (0, 1) (default 0.5).
    - `adapt_rate`: gain of the width adaptation (default 1.0; 0 disables it).
    """
    if not isinstance(space, nqs_core.AbstractContinuousSpace):
        raise TypeError(f"rule 'gaussian' needs a continuous space (AbstractContinuousSpace), got {type(space).__name__}")
    adapt_rate = as_float("adapt_rate", adapt_rate)
    if adapt_rate < 0.0:
        raise ValueError(f"adapt_rate must be >= 0, got {adapt_rate}")
    return GaussianRule(
        step_size=as_float("step_size", step_size, positive=True),
        target_acceptance=as_float("target_acceptance", target_acceptance, lo=0.0, hi=1.0),
        adapt_rate=adapt_rate,
    )
