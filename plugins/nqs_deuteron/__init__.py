"""The deuteron in momentum space (seed 003): quadrature energy, S/D-wave network, Yamaguchi and Malfliet-Tjon potentials."""
