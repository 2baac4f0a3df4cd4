"""The spin-1/2 binding of the operator language: `SpinOperator` and the
`AbstractSpinHamiltonian` protocol of the spin Hamiltonians (the algebra is in
`nqs_core._operator`, the builders and the parser in `nqs_core._operator_text`)."""

from __future__ import annotations

import abc

import nqs_core

from nqs_core.operators import Operator, bind_operator


class AbstractSpinHamiltonian(nqs_core.AbstractDiscreteHamiltonian):
    """A spin-1/2 Hamiltonian of nqs_spins with an operator-language form.

    Observables measured with such a Hamiltonian must be written in its basis:
    `marshall_sites` are the sites where the basis is rotated by `Z` (the
    Marshall sign), so an observable `O` is measured as
    `O.rotate_z(H.marshall_sites)`.
    """

    @property
    @abc.abstractmethod
    def marshall_sites(self) -> tuple[int, ...]:
        """Sites whose `S^x`, `S^y` change sign under the basis rotation (the
        Marshall sign); empty when the basis is not rotated."""

    @abc.abstractmethod
    def to_operator(self) -> Operator:
        """The Hamiltonian as an `Operator`, in the same (possibly rotated) basis."""


class SpinOperator(AbstractSpinHamiltonian):
    """An `Operator` bound to a spin space, in the basis it was written in
    (`marshall_sites` is empty): the compiled connected elements of
    `nqs_core.bind_operator` (a `PauliOperator` for spin 1/2, one connected
    element per distinct flip pattern; a `LocalOperator` for spin S).

    **Arguments:**

    - `space`: a spin space (`SpinHalf`, or `Spin` for any S).
    - `operator`: the `Operator`.
    """

    space: nqs_core.AbstractDiscreteSpace
    compiled: nqs_core.AbstractDiscreteHamiltonian

    def __init__(self, space, operator: Operator):
        if not isinstance(operator, Operator):
            raise TypeError(f"SpinOperator needs an Operator, got {operator!r}")
        self.space = space
        self.compiled = bind_operator(operator, space)

    @property
    def operator(self) -> Operator:
        """The `Operator`."""
        return self.compiled.operator

    @property
    def marshall_sites(self) -> tuple[int, ...]:
        return ()

    def to_operator(self) -> Operator:
        return self.compiled.operator

    @property
    def max_conn_size(self) -> int:
        return self.compiled.max_conn_size

    def connected(self, x):
        return self.compiled.connected(x)
