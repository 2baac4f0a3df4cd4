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
