"""Time evolution: the TDVP driver (real and imaginary time) and its integrators."""
