import inspect

import equinox as eqx
import pytest

import nqs_core
import nqs_spins
from nqs_spins import _plugin

EXPECTED = {
    "space": {"spin_half": nqs_spins.SpinHalf, "spin": nqs_spins.Spin},
    "system": {
        "ising": nqs_spins.Ising,
        "heisenberg": nqs_spins.Heisenberg,
        "j1j2": nqs_spins.J1J2,
        "spin_model": nqs_spins.SpinModel,
    },
    "sampler": {
        "metropolis_local": nqs_spins.MetropolisLocal,
        "metropolis_exchange": nqs_spins.MetropolisExchange,
    },
    "exact": {"exact_diagonalization": nqs_spins.exact_solver},
}
BASES = {
    "space": nqs_core.AbstractDiscreteSpace,
    "system": nqs_core.AbstractDiscreteHamiltonian,
    "sampler": nqs_core.AbstractSampler,
}
SIMPLE = (int, float, bool, str, type(None))


def test_entry_point_registers_everything():
    registry = nqs_core.load_registry()
    assert not [f for f in registry.failures if f.plugin == "spins"]
    for kind, table in EXPECTED.items():
        for name, obj in table.items():
            entry = registry.get(kind, name)
            assert entry.obj is obj and entry.plugin == "spins"
            assert entry.summary  # a one-line docstring summary


def test_in_process_registration():
    registry = nqs_core.Registry()
    registry.register_plugin(_plugin, name="spins-test")
    assert not registry.failures
    assert registry.names("system") == ["heisenberg", "ising", "j1j2", "spin_model"]


@pytest.mark.parametrize("kind", list(BASES))
def test_components_are_final_modules(kind):
    for obj in EXPECTED[kind].values():
        assert issubclass(obj, eqx.Module) and issubclass(obj, BASES[kind])
        assert not inspect.isabstract(obj)
        assert obj.__subclasses__() == []  # abstract-or-final


@pytest.mark.parametrize("kind", list(BASES))
def test_config_fields_are_simple(kind):
    """Constructor arguments are either injected (lattice, space, system) or
    have simple defaults a TOML file can express."""
    for obj in EXPECTED[kind].values():
        for name, p in inspect.signature(obj.__init__).parameters.items():
            if name in ("self", "lattice", "space", "system"):
                continue
            assert p.default is inspect.Parameter.empty or isinstance(p.default, SIMPLE), (obj, name)
