"""Time evolution: the TDVP driver (real and imaginary time) and its integrators."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy).
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._integrators": ["Euler", "Heun", "RK23", "RK4"],
        "._tdvp": ["NAMED_STATES", "ScheduledHamiltonian", "TDVP", "TDVPState"],
    },
)
