"""Continuum systems (seed 003): 1D trapped fermions, permutation-equivariant determinant ansatz, grid solvers, observables."""
