"""Lattice phi^4 in 1+1 D with neural control variates (seed 001)."""
