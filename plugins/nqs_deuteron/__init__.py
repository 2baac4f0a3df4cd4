"""The deuteron in momentum space (Keeble and Rios 2020): quadrature energy, S/D-wave network, Yamaguchi and Malfliet-Tjon potentials."""

from ._cli import make_potential as make_potential, plot_wave_functions as plot_wave_functions
from ._driver import DeuteronDriver as DeuteronDriver, DeuteronState as DeuteronState
from ._system import DeuteronHamiltonian as DeuteronHamiltonian, MeshSolution as MeshSolution
from ._mesh import HBAR2_2MU as HBAR2_2MU, HBARC as HBARC, Mesh as Mesh, tangent_mesh as tangent_mesh
from ._ansatz import DeuteronNetwork as DeuteronNetwork
from ._potentials import (
    AbstractPotential as AbstractPotential,
    MalflietTjon as MalflietTjon,
    TabulatedPotential as TabulatedPotential,
    Yamaguchi as Yamaguchi,
    load_potential_table as load_potential_table,
)
from ._train import (
    DeuteronResult as DeuteronResult,
    gaussian_targets as gaussian_targets,
    pretrain as pretrain,
    train_deuteron as train_deuteron,
)
