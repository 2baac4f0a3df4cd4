"""The checkerboard field update, registered by name (kind `rule`) for the
`metropolis` sampler."""

from __future__ import annotations

from ._sampler import CheckerboardRule, _check_space, _positive, _prob


def checkerboard(space, width: float = 1.0, target_acceptance: float = 0.5, adapt_rate: float = 0.05) -> CheckerboardRule:
    """Single-site phi^4 updates, `phi_x -> phi_x + width * U(-1, 1)` on one colour of the
    checkerboard at a time (needs the phi4 action; not temperable).

    **Arguments:**

    - `width`: initial proposal half-width (default 1.0).
    - `target_acceptance`: in (0, 1) (default 0.5).
    - `adapt_rate`: gain of the width adaptation (default 0.05).
    """
    _check_space("checkerboard", space)
    if space.shape[0] % 2 or space.shape[1] % 2:
        raise ValueError(f"rule 'checkerboard' needs even lattice sizes, got {space.shape}")
    if isinstance(adapt_rate, bool) or not isinstance(adapt_rate, (int, float)) or adapt_rate < 0:
        raise ValueError(f"adapt_rate must be a number >= 0, got {adapt_rate!r}")
    return CheckerboardRule(
        width=_positive("width", width),
        target_acceptance=_prob("target_acceptance", target_acceptance),
        adapt_rate=float(adapt_rate),
    )
