"""The spins plugin: registers the spin-1/2 and spin-S spaces, spin Hamiltonians,
Metropolis samplers and the exact-diagonalisation reference solver with nqs."""

import nqs_core


#: `(kind, config name, "module:Name")` for everything this plugin provides; the
#: references are imported when a component is first used (`Registry.add`).
COMPONENTS = (
    ("space", "spin_half", "nqs_spins._space:SpinHalf"),
    ("space", "spin", "nqs_spins._space:Spin"),
    ("system", "ising", "nqs_spins._system:Ising"),
    ("system", "heisenberg", "nqs_spins._system:Heisenberg"),
    ("system", "j1j2", "nqs_spins._system:J1J2"),
    ("system", "spin_model", "nqs_spins._system:SpinModel"),
    ("sampler", "metropolis_local", "nqs_spins._sampler:MetropolisLocal"),
    ("sampler", "metropolis_exchange", "nqs_spins._sampler:MetropolisExchange"),
    ("exact", "exact_diagonalization", "nqs_spins._exact:exact_solver"),
    ("observable", "magnetization", "nqs_spins._observables:Magnetization"),
    ("observable", "staggered_magnetization", "nqs_spins._observables:StaggeredMagnetization"),
    ("observable", "correlation", "nqs_spins._observables:Correlation"),
    ("observable", "structure_factor", "nqs_spins._observables:StructureFactor"),
    ("observable", "dimer", "nqs_spins._observables:Dimer"),
    ("observable", "operator", "nqs_spins._observables:UserOperator"),
    ("rule", "local", "nqs_spins._rules:local"),
    ("rule", "exchange", "nqs_spins._rules:exchange"),
    ("rule", "global_flip", "nqs_spins._rules:global_flip"),
    ("rule", "multi_flip", "nqs_spins._rules:multi_flip"),
    ("rule", "jump", "nqs_spins._rules:jump"),
)


@nqs_core.hookimpl
def nqs_register(registry):
    """Add the spin components to `registry`."""
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
