"""Variational wave functions (and other parametrised functions of a configuration)."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray, Scalar


class AbstractAnsatz(eqx.Module):
    """A parametrised `log psi(x)` of one configuration.

    The parameters are the inexact (float or complex) arrays of the module;
    everything else is static. Batch with `jax.vmap` or with
    `nqs_core.log_psi_batch`, which also chunks.

    **Arguments of `__call__`:**

    - `x`: one configuration, shape `space.shape`.

    **Returns:** a real or complex scalar `log psi(x)`. Complex output encodes
    the phase in the imaginary part.
    """

    @abc.abstractmethod
    def __call__(self, x: Array) -> Scalar:
        raise NotImplementedError

    @property
    def holomorphic(self) -> bool:
        """Whether every parameter is complex and `log psi` is a holomorphic
        function of them (the RBM with complex parameters: sums of `log cosh`
        of linear functions). Then the log-derivative of a parameter's
        imaginary part is `i` times that of its real part, and
        `nqs_core.log_derivatives` computes one complex derivative per
        parameter instead of two real ones, and the TDVP driver solves the
        complex `P/2 x P/2` equation instead of the real `P x P` one
        (`AbstractNaturalGradient.solve_holomorphic`), as NetKet's
        `holomorphic=True` does. Default: `False` (no assumption; always
        correct). Declare it only when it holds: a wrong `True` gives wrong
        derivatives."""
        return False

    def product_state(self, space, amplitudes) -> "AbstractAnsatz":
        """This ansatz with parameters that represent the product state
        `psi(x) = prod_i amplitudes[j(x_i)]` exactly (up to normalisation and a
        global phase), where `j(v)` is the index of the value `v` in
        `space.local_values` (spin 1/2: `(up, down)`); the TDVP driver's
        `initial_state`. The parameters should leave the state's tangent
        space non-degenerate (no derivative identically zero), so that an
        evolution can leave the product manifold.

        **Arguments:** `space` (a discrete space with `local_values`),
        `amplitudes` (complex, one per local state, none zero).

        **Raises:** `ValueError` when this ansatz cannot represent it (the
        default: start from a run's parameters with `[run] init_from`)."""
        raise ValueError(
            f"the {type(self).__name__} ansatz cannot represent a product state exactly; "
            "start from another run's parameters ([run] init_from) or use an ansatz that can (rbm)"
        )


class AbstractConnectedAnsatz(AbstractAnsatz):
    """Capability: evaluate many nearly equal configurations at once.

    Local energies of discrete Hamiltonians need `log psi` at a configuration
    `x` and at all configurations `x'` connected to it, which differ from `x` on
    a few sites. Models that can reuse work between them (cached activations,
    vector-quantised transformers) implement `log_psi_connected`; discrete
    Hamiltonians call it instead of `vmap(model)(x')`.
    """

    @abc.abstractmethod
    def log_psi_connected(self, x: Array, xps: Array) -> tuple[Scalar, Array]:
        """Return `(log psi(x), log psi(xps))` with `xps` of shape `(K, *x.shape)`."""
        raise NotImplementedError


class AbstractDirectSamplingAnsatz(AbstractAnsatz):
    """Capability: normalised, with exact independent samples from `|psi|^2`.

    `sum_x |psi(x)|^2 = 1` and `sample` draws exact samples without a Markov
    chain; the `direct` sampler works with every such ansatz. Autoregressive
    models are the usual case; mixtures of them (a symmetrised autoregressive
    model) are direct-sampling without having single-site conditionals.
    """

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, n: int) -> Array:
        """`n` exact independent samples from `|psi|^2`, shape `(n, *shape)`."""
        raise NotImplementedError


class AbstractAutoregressiveAnsatz(AbstractDirectSamplingAnsatz):
    """Capability: normalised conditionals and exact direct sampling.

    `psi(x) = prod_i psi(x_i | x_<i)` with every conditional normalised, so
    `sum_x |psi(x)|^2 = 1` and samples can be drawn exactly, site by site
    (`sample`, from `AbstractDirectSamplingAnsatz`).
    """

    @abc.abstractmethod
    def conditionals(self, x: Array) -> Array:
        """Log-probabilities `log |psi(s | x_<i)|^2` for every site `i` and local
        state `s`, shape `(n_sites, n_local_states)`."""
        raise NotImplementedError
