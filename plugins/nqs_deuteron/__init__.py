"""The deuteron in momentum space (Keeble and Rios 2020): quadrature energy, S/D-wave network, Yamaguchi and Malfliet-Tjon potentials."""

from nqs_core import lazy_exports as _lazy_exports

# Public names, imported on first use (see nqs_core._lazy): importing the
# package, as the plugin registration does, imports none of its models.
__getattr__, __dir__, __all__ = _lazy_exports(
    __name__,
    {
        "._cli": ["deuteron_config", "plot_wave_functions"],
        "._driver": ["DeuteronDriver", "DeuteronState"],
        "._system": ["DeuteronHamiltonian", "MeshSolution"],
        "._mesh": ["HBAR2_2MU", "HBARC", "Mesh", "tangent_mesh"],
        "._ansatz": ["DeuteronNetwork"],
        "._potentials": ["AbstractPotential", "MalflietTjon", "POTENTIALS", "TabulatedPotential", "Yamaguchi", "load_potential_table", "make_potential"],
        "._train": ["gaussian_targets", "pretrain"],
    },
)
