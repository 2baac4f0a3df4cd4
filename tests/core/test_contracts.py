"""Contract tests over every registered component (style.md: abstract-or-final,
one behavioural check per kind run over the registry table)."""

import abc
import inspect

import equinox as eqx
import pytest

import nqs_core
from nqs_core import (
    AbstractAnsatz,
    AbstractEstimator,
    AbstractLattice,
    AbstractPreconditioner,
    AbstractSampler,
    AbstractSpace,
    AbstractSystem,
    get_registry,
)

PROTOCOLS = {
    "lattice": AbstractLattice,
    "space": AbstractSpace,
    "system": AbstractSystem,
    "ansatz": AbstractAnsatz,
    "sampler": AbstractSampler,
    "estimator": AbstractEstimator,
    "preconditioner": AbstractPreconditioner,
    "observable": nqs_core.AbstractObservable,
}

REG = get_registry()
CLASS_ENTRIES = [e for kind in PROTOCOLS for e in REG.entries(kind)]


@pytest.mark.parametrize("entry", CLASS_ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_registered_classes_are_final_modules(entry):
    cls = entry.obj
    assert inspect.isclass(cls) and issubclass(cls, eqx.Module)
    assert issubclass(cls, PROTOCOLS[entry.kind]), f"{cls} must implement {PROTOCOLS[entry.kind].__name__}"
    assert not cls.__name__.startswith("Abstract")
    assert not getattr(cls, "__abstractmethods__", None), f"{cls} leaves {cls.__abstractmethods__} abstract"
    # final: no other registered concrete class derives from it
    for other in CLASS_ENTRIES:
        if other.obj is not cls:
            assert not issubclass(other.obj, cls), f"{other.obj} subclasses the concrete {cls}"
    assert inspect.getdoc(cls), "every component is documented (nqs info shows it)"


def test_every_kind_has_a_documented_entry():
    for kind in ("system", "ansatz", "sampler", "estimator", "preconditioner", "optimizer", "driver", "exact"):
        assert REG.names(kind), kind
        for e in REG.entries(kind):
            assert e.summary, f"{kind} {e.name} has no docstring summary"




# The descent-direction check of every preconditioner lives in
# tests/core/test_contract_suites.py (nqs_core.testing.check_preconditioner).

# -- abstract-or-final, checked (equinox's rule: only abstract methods are overridden) --

_PACKAGES = ["nqs_core", "nqs_spins", "nqs_networks", "nqs_optim", "nqs_autoregressive",
             "nqs_continuum", "nqs_deuteron", "nqs_phi4", "nqs_vq"]

#: Concrete methods of a protocol that are declared hooks with a default, each with the
#: reason it is one. Anything else an nqs class redefines must be abstract in its base.
HOOKS_WITH_DEFAULTS = {
    ("AbstractDiscreteSpace", "constraint"): "optional symmetry-sector constraint (NetKet's `constrained`); default: none",
    ("AbstractDiscreteSpace", "quantum_numbers"): "optional quantum numbers labelling the basis (S^z, N) for the "
                                                   "exact sector table; default: none",
    ("AbstractDiscreteHamiltonian", "marshall_sites"): "the sites of a diagonal basis rotation (the Marshall sign); "
                                                       "default: none (the physical basis)",
    ("AbstractDiscreteHamiltonian", "in_basis"): "bind a physical operator in the system's (rotated) basis; "
                                                 "default: no rotation",
    ("AbstractAnsatz", "holomorphic"): "declares a holomorphic log psi of complex parameters (halves the "
                                        "log-derivatives and the TDVP solve); default: False, no assumption",
    ("AbstractAnsatz", "product_state"): "optional exact product state for the TDVP driver's initial_state; default: refuse",
    ("AbstractIntegrator", "control"): "step-size control of an adaptive integrator; default: a fixed step",
    ("AbstractNaturalGradient", "solve_holomorphic"): "the solve in complex form for a holomorphic ansatz; default: "
                                                       "the real form through solve",
    ("AbstractObservable", "coordinates"): "optional plotting metadata of an observable's components; default: none",
    ("AbstractPreconditioner", "check_system"): "refuse a system the preconditioner cannot work on, at build; default: accept every system",
    ("AbstractPreconditioner", "memory_estimate"): "extra memory of a step for the memory guard; default: 0 (nothing beyond the samples)",
    ("AbstractHamiltonian", "local_energies"): "batched local energies; default: local_energy mapped over the batch, "
                                               "the discrete protocol declares the compacted evaluation",
    ("AbstractMetropolisRule", "draw"): "random numbers of a block of sweeps; default: one key per sweep "
                                        "(the symmetric-rule protocol draws moves and uniforms at once)",
    ("AbstractMetropolisRule", "sweep"): "one sweep from its slice of `draw`; default: `transition`",
}


def _nqs_classes():
    import importlib
    import pkgutil

    modules = []
    for pkg in _PACKAGES:
        package = importlib.import_module(pkg)
        modules += [importlib.import_module(f"{pkg}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return {c for mod in modules for c in vars(mod).values()
            if inspect.isclass(c) and issubclass(c, eqx.Module) and c.__module__.startswith("nqs_")}


def _overrides(classes):
    """`(base, method, class)` for every method a class redefines whose nearest
    definition in an nqs base is concrete (the scan of the 2026-12-07 review, section 2.3)."""
    found = set()
    for cls in classes:
        for attr, val in vars(cls).items():
            f = val.fget if isinstance(val, property) else val
            if attr.startswith("__") or not callable(f):
                continue
            for base in cls.__mro__[1:]:
                if base.__module__.startswith("nqs_") and attr in vars(base):
                    b = vars(base)[attr]
                    b = b.fget if isinstance(b, property) else b
                    if callable(b) and not getattr(b, "__isabstractmethod__", False):
                        found.add((base.__qualname__, attr, cls.__qualname__))
                    break
    return found


def test_no_class_overrides_a_concrete_method():
    classes = _nqs_classes()
    assert len(classes) > 100
    bad = sorted(f"{cls}.{attr} overrides the concrete {base}.{attr}"
                 for base, attr, cls in _overrides(classes) if (base, attr) not in HOOKS_WITH_DEFAULTS)
    assert not bad, "\n".join(bad)


def test_the_override_scan_finds_an_override():
    class Base(eqx.Module):
        @abc.abstractmethod
        def required(self): ...

        def concrete(self):
            return 0

    class Child(Base):
        def required(self):
            return 1

        def concrete(self):
            return 2

    Base.__module__ = Child.__module__ = "nqs_probe"
    assert _overrides({Base, Child}) == {("test_the_override_scan_finds_an_override.<locals>.Base", "concrete",
                                          "test_the_override_scan_finds_an_override.<locals>.Child")}
