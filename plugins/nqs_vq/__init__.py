"""VQ-NQS (seed 002): vector-quantised transformer wave functions with compressed local energies."""
