"""Autoregressive RNN wave functions (seed 004): exact sampling, symmetrisation, annealing, iterative retraining."""
