"""Behavioural contract suites for components: one call checks that a sampler,
an ansatz, a system or a preconditioner keeps the contract of its protocol.

nqs runs these suites over every registered component
(`tests/core/test_contract_suites.py`); a plugin author runs them over their
own in one line, e.g.

```python
from nqs_core import testing

def test_my_ansatz_keeps_the_contract():
    testing.check_ansatz(MyAnsatz(space, key=jax.random.PRNGKey(0)), space, jax.random.PRNGKey(1))
```

Each `check_*` function raises `AssertionError` with a message naming the
component and the broken rule, and returns nothing when the contract holds.
The checks use small systems: a discrete space up to `max_states`
configurations is enumerated (exact probabilities, exact diagonalisation).

- `check_sampler`: sample shapes, samples in the space, same key gives the
  same samples, statistics of a known distribution (total-variation distance
  to the exact probabilities on a discrete space; exact moments of a Gaussian
  on a continuous one).
- `check_ansatz`: `log psi` is a finite scalar of the declared dtype, equal
  under `jit`, `vmap` and chunking; parameters are a pytree of arrays;
  log-derivatives have one column per real parameter; the capabilities
  (`AbstractConnectedAnsatz`, `AbstractDirectSamplingAnsatz`,
  `AbstractAutoregressiveAnsatz`) agree with it.
- `check_system`: a discrete Hamiltonian is Hermitian and keeps the space, and
  the local energy of its exact ground state is constant (`E0`); a continuum
  Hamiltonian gives a known eigenstate its eigenvalue; an action is real with
  a gradient equal to autodiff.
- `check_preconditioner`: the direction is shaped like the parameters and is a
  descent direction; the state after a step has the shape of the initial one
  and survives a checkpoint round trip.
- `registered`: `(name, factory)` pairs over a registry kind, for
  `pytest.mark.parametrize`, refusing registered names without a factory or a
  reason.

Helpers with exactly known distributions: `TableAnsatz` (a wave function
given by its values on every configuration) and `Gaussian` (a normal
density on a continuous space).
"""


from ._ansatz import check_ansatz as check_ansatz
from ._common import MAX_STATES as MAX_STATES
from ._common import Gaussian as Gaussian
from ._common import TableAnsatz as TableAnsatz
from ._common import gaussian_moments as gaussian_moments
from ._preconditioner import check_preconditioner as check_preconditioner
from ._registry import registered as registered
from ._sampler import check_sampler as check_sampler
from ._sampler import expected_tv_distance as expected_tv_distance
from ._system import check_system as check_system
from ._system import dense_matrix as dense_matrix
