"""The behavioural contract suites of `nqs_core.testing` over every registered
sampler, ansatz, system and preconditioner (built from small configs, or
constructed from the registry where a config cannot express the test's
target distribution), and proof that each suite fails on a deliberately broken
component."""

import importlib.util
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import testing

REG = nqs_core.get_registry()


def spins(ansatz='name = "rbm"\nalpha = 1\nparam_dtype = "complex128"', sampler='name = "metropolis_local"',
          lattice='name = "chain"\nlength = 4', space='name = "spin_half"', system='name = "ising"\nh = 0.8',
          extra="", stop_after="sampler"):
    """A small spin calculation (4 sites unless told otherwise), built up to `stop_after`."""
    text = f"""
[run]
seed = 7
exact_energy = "none"
n_eval_batches = 0
[lattice]
{lattice}
[space]
{space}
[system]
{system}
[ansatz]
{ansatz}
[sampler]
{sampler}
{extra}
"""
    return nqs_core.build(nqs_core.loads_config(text), exact=False, stop_after=stop_after)


FERMIONS = """
[run]
seed = 3
exact_energy = "none"
n_eval_batches = 0
[space]
name = "particles_1d"
n_particles = 2
[system]
name = "trapped_fermions_1d"
V0 = {V0}
sigma0 = 0.5
[ansatz]
name = "equivariant_slater"
hidden = 4
n_layers = 1
init = "random"
[sampler]
name = "gaussian_metropolis"
n_samples = {n_samples}
n_chains = 8
{extra}
"""


def fermions(V0=-2.0, n_samples=64, extra="", stop_after="sampler"):
    text = FERMIONS.format(V0=V0, n_samples=n_samples, extra=extra)
    return nqs_core.build(nqs_core.loads_config(text), exact=False, stop_after=stop_after)


def phi4(lam=0.0, m2=1.0):
    """A 4x4 phi^4 field and its action (lam = 0: a Gaussian free field with exactly known moments)."""
    space = REG.get("space", "phi4_field").obj(L0=4, L1=4)
    return space, REG.get("system", "phi4").obj(space, L0=4, L1=4, m2=m2, lam=lam)


KEY = jax.random.PRNGKey(11)


def params(kind, factories=None, **options):
    """`testing.registered` as pytest parameters with the component name as the test id."""
    return [pytest.param(name, factory, id=name) for name, factory in testing.registered(kind, factories, **options)]

# -- samplers ------------------------------------------------------------------------


def table_target(calc):
    """A Born distribution with exactly known, far-from-uniform probabilities."""
    return nqs_core.BornDistribution(testing.TableAnsatz.random(calc["space"], jax.random.PRNGKey(3)))


def _metropolis_local():
    calc = spins(sampler='name = "metropolis_local"\nn_samples = 512\nn_chains = 16')
    return calc["sampler"], table_target(calc), {}


def _metropolis_exchange():
    calc = spins(space='name = "spin_half"\ntotal_sz = 0.0', system='name = "heisenberg"',
                 sampler='name = "metropolis_exchange"\nn_samples = 512\nn_chains = 16')
    return calc["sampler"], table_target(calc), {}


def _metropolis_mixture():
    calc = spins(sampler='name = "metropolis"\nrules = [{ name = "local", weight = 0.8 }, { name = "multi_flip", k = 2, weight = 0.1 }, '
                         '{ name = "global_flip", weight = 0.1 }]\nn_samples = 512\nn_chains = 16')
    return calc["sampler"], table_target(calc), {}


def _parallel_tempering():
    calc = spins(sampler='name = "parallel_tempering"\nrules = ["local"]\nn_replicas = 3\nn_samples = 512\nn_chains = 16')
    return calc["sampler"], table_target(calc), {}


def _exact():
    calc = spins(sampler='name = "exact"\nn_samples = 512\nn_chains = 8')
    return calc["sampler"], table_target(calc), {}


def _direct():
    calc = spins(ansatz='name = "ar_gru"\nhidden = 4', sampler='name = "direct"\nn_samples = 512\nn_chains = 8')
    # the initial GRU is almost uniform (TV 0.006); parameters x 30 give TV 0.55 from uniform, still normalised
    params, static = nqs_core.parameters(calc["ansatz"])
    model = eqx.combine(jax.tree.map(lambda p: 30.0 * p, params), static)
    return calc["sampler"], nqs_core.BornDistribution(model), {}


def _full_sum():
    # every configuration once, weighed by the full_sum estimator: no statistics to check
    calc = spins(sampler='name = "full_sum"')
    return calc["sampler"], table_target(calc), {"statistics_check": False}


def _gaussian_metropolis():
    calc = fermions(n_samples=256)
    return calc["sampler"], testing.Gaussian(calc["space"], mean=jnp.array([0.3, -0.5]), std=0.7), {}


def _hmc():
    space, _ = phi4()
    sampler = REG.get("sampler", "hmc").obj(space, n_samples=256, n_chains=8, n_leapfrog=5, n_thermalize=50, n_skip=2)
    return sampler, testing.Gaussian(space, mean=0.2, std=0.8), {}


def _metropolis_field():
    space, action = phi4()
    sampler = REG.get("sampler", "metropolis_field").obj(space, n_samples=256, n_chains=8, n_thermalize=100, n_sweeps=2)
    return sampler, nqs_core.BoltzmannDistribution(action), {}


SAMPLERS = {
    "metropolis_local": _metropolis_local,
    "metropolis_exchange": _metropolis_exchange,
    "metropolis": _metropolis_mixture,
    "parallel_tempering": _parallel_tempering,
    "exact": _exact,
    "direct": _direct,
    "full_sum": _full_sum,
    "gaussian_metropolis": _gaussian_metropolis,
    "hmc": _hmc,
    "metropolis_field": _metropolis_field,
}


@pytest.mark.parametrize("name, factory", params("sampler", SAMPLERS))
def test_sampler_contract(name, factory):
    sampler, distribution, options = factory()
    testing.check_sampler(sampler, distribution, KEY, **options)
    if not options.get("statistics_check", True):  # the full sum: the enumeration, weighted by p(x)
        samples, _, _ = sampler.sample(distribution, sampler.init(distribution, KEY))
        states = sampler.space.all_states()
        np.testing.assert_array_equal(np.asarray(samples.x[0]), states)
        log_p = np.array([float(distribution.log_prob(jnp.asarray(x))) for x in states])
        p = np.exp(log_p - log_p.max())
        assert samples.exact
        np.testing.assert_allclose(np.asarray(samples.weights[0]), p / p.sum(), rtol=1e-12, atol=0)


# -- ansatze -------------------------------------------------------------------------

SQUARE = 'name = "square"\nlength = 4'
SQUARE_2x2 = 'name = "square"\nlength = 2'


def _ansatz_case(dtype=None, eager=True, **fields):
    def make():
        calc = spins(stop_after="ansatz", **fields)
        return calc["ansatz"], calc["space"], {"dtype": dtype, "eager": eager}

    return make


def _equivariant_slater():
    calc = fermions(stop_after="ansatz")
    return calc["ansatz"], calc["space"], {"dtype": jnp.float64}


ANSATZE = {
    "rbm": _ansatz_case(jnp.complex128),
    "mlp": _ansatz_case(jnp.float64, ansatz='name = "mlp"\nhidden = [4]'),
    "jastrow": _ansatz_case(jnp.complex128, ansatz='name = "jastrow"\nparam_dtype = "complex128"'),
    "vit": _ansatz_case(lattice=SQUARE, ansatz='name = "vit"\nd_model = 8\nn_heads = 2\nn_layers = 1'),
    "symmetrized": _ansatz_case(jnp.complex128, ansatz='name = "symmetrized"\ninner = { name = "rbm", param_dtype = "complex128" }'),
    "ar_gru": _ansatz_case(ansatz='name = "ar_gru"\nhidden = 4'),
    "ar_lstm2d": _ansatz_case(lattice=SQUARE_2x2, ansatz='name = "ar_lstm2d"\nhidden = 4\nn_layers = 1'),
    "ar_symmetrized": _ansatz_case(ansatz='name = "ar_symmetrized"\nbase = { name = "ar_gru", hidden = 4 }'),
    # eager=False: the op-by-op evaluation of the transformer alone compiles ~100 operations (7 s on the
    # loaded CI machine); jit, vmap, chunking and the connected evaluation are still compared
    "vq_transformer": _ansatz_case(eager=False, ansatz='name = "vq_transformer"\nd_model = 8\nn_heads = 2\nn_layers = 1\nn_codes = 4'),
    "equivariant_slater": _equivariant_slater,
}


@pytest.mark.parametrize("name, factory", params("ansatz", ANSATZE))
def test_ansatz_contract(name, factory):
    ansatz, space, options = factory()
    testing.check_ansatz(ansatz, space, KEY, **options)


# -- systems -------------------------------------------------------------------------


class HOSlater(nqs_core.AbstractAnsatz):
    """The ground state of two free fermions in the harmonic trap (hbar = m = omega = 1):
    `psi = (x_1 - x_2) exp(-(x_1^2 + x_2^2) / 2)`, energy `1/2 + 3/2 = 2` (`A^2 / 2`)."""

    width: jax.Array

    def __call__(self, x):
        return jnp.log(jnp.abs(x[0] - x[1])) - 0.5 * jnp.sum(x * x) / self.width**2


def _discrete_system(**fields):
    return lambda: (spins(stop_after="system", **fields)["system"], {})


def _trapped_fermions():
    calc = fermions(V0=0.0, stop_after="system")
    return calc["system"], {"eigenstate": (HOSlater(jnp.ones(())), 2.0)}


SYSTEMS = {
    "ising": _discrete_system(),
    "heisenberg": _discrete_system(space='name = "spin_half"\ntotal_sz = 0.0', system='name = "heisenberg"',
                                   lattice='name = "chain"\nlength = 6', sampler='name = "metropolis_exchange"'),
    "j1j2": _discrete_system(system='name = "j1j2"\nJ2 = 0.4', lattice='name = "chain"\nlength = 6'),
    "spin_model": _discrete_system(system='name = "spin_model"\nterms = [ { op = "SxSx + SySy + 0.5 SzSz", bonds = 1, '
                                          'coupling = 1.0 }, { op = "Sz", sites = "all", coupling = -0.3 }, '
                                          '{ op = "Sx", sites = "all", coupling = 0.2 } ]'),
    "phi4": lambda: (phi4(lam=0.5, m2=0.3)[1], {}),
    "trapped_fermions_1d": _trapped_fermions,
}


@pytest.mark.parametrize("name, factory", params("system", SYSTEMS))
def test_system_contract(name, factory):
    system, options = factory()
    testing.check_system(system, KEY, **options)


# -- preconditioners -----------------------------------------------------------------

#: Preconditioners whose metric needs d/dx log psi (continuum systems only).
CONTINUUM_ONLY = {"dgd"}


@eqx.filter_jit
def _first_samples(sampler, distribution):
    return sampler.sample(distribution, sampler.init(distribution, KEY))[0]


def _step_inputs(calc):
    ansatz = calc["ansatz"]
    samples = _first_samples(calc["sampler"], nqs_core.BornDistribution(ansatz))
    return calc["system"], ansatz, samples, calc["estimator"]


def _preconditioner_case(name):
    table = f'[preconditioner]\nname = "{name}"'
    if name in CONTINUUM_ONLY:
        calc = fermions(extra=table, stop_after="preconditioner")
    else:
        calc = spins(sampler='name = "metropolis_local"\nn_samples = 32\nn_chains = 4', extra=table, stop_after="preconditioner")
    return (calc["preconditioner"],) + _step_inputs(calc)


@pytest.mark.parametrize("name, factory", params("preconditioner", default=_preconditioner_case))
def test_preconditioner_contract(name, factory):
    preconditioner, system, ansatz, samples, estimator = factory()
    testing.check_preconditioner(preconditioner, system, ansatz, samples, estimator=estimator)


# -- the suites fail on broken components --------------------------------------------


class ScaledSamples(nqs_core.AbstractSampler):
    """A broken sampler: the samples of `inner` times `factor` (out of a discrete space, or too wide)."""

    inner: nqs_core.AbstractSampler
    factor: float = eqx.field(static=True)
    space: nqs_core.AbstractSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)

    def __init__(self, inner, factor):
        self.inner, self.factor = inner, factor
        self.space, self.n_samples, self.n_chains = inner.space, inner.n_samples, inner.n_chains

    def init(self, distribution, key):
        return self.inner.init(distribution, key)

    def sample(self, distribution, state):
        x, state, info = self.inner.sample(distribution, state)
        return x * self.factor, state, info


class AbstractWrappedSampler(nqs_core.AbstractSampler):
    """The broken samplers below wrap a working `inner` sampler (same space and sizes)."""

    inner: nqs_core.AbstractSampler
    space: nqs_core.AbstractSpace
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)

    def __init__(self, inner):
        self.inner = inner
        self.space, self.n_samples, self.n_chains = inner.space, inner.n_samples, inner.n_chains


class FlipsFirstSpin(AbstractWrappedSampler):
    """A broken sampler: flips site 0 of every sample (breaks a fixed magnetisation)."""

    def init(self, distribution, key):
        return self.inner.init(distribution, key)

    def sample(self, distribution, state):
        x, state, info = self.inner.sample(distribution, state)
        return x.at[..., 0].multiply(-1.0), state, info


class IgnoresTarget(AbstractWrappedSampler):
    """A broken sampler: draws from the uniform distribution, whatever it is asked for."""

    def init(self, distribution, key):
        return self.inner.init(Uniform(), key)

    def sample(self, distribution, state):
        return self.inner.sample(Uniform(), state)


class IgnoresKey(AbstractWrappedSampler):
    """A broken sampler: `init` starts from a fixed key."""

    def init(self, distribution, key):
        return self.inner.init(distribution, jax.random.PRNGKey(0))

    def sample(self, distribution, state):
        return self.inner.sample(distribution, state)


class Uniform(nqs_core.AbstractDistribution):
    """The uniform distribution."""

    def log_prob(self, x):
        return jnp.zeros((), x.dtype)


def test_sampler_suite_catches_out_of_space_values():
    sampler, target, _ = _exact()
    with pytest.raises(AssertionError, match="are not local states"):
        testing.check_sampler(ScaledSamples(sampler, 2.0), target, KEY)


def test_sampler_suite_catches_a_broken_constraint():
    calc = spins(space='name = "spin_half"\ntotal_sz = 0.0', system='name = "heisenberg"',
                 sampler='name = "exact"\nn_samples = 64\nn_chains = 4')
    sampler, target = calc["sampler"], table_target(calc)
    with pytest.raises(AssertionError, match="break the space's constraint sum"):
        testing.check_sampler(FlipsFirstSpin(sampler), target, KEY)


def test_sampler_suite_catches_the_wrong_distribution():
    sampler, target, _ = _exact()
    with pytest.raises(AssertionError, match="total-variation distance"):
        testing.check_sampler(IgnoresTarget(sampler), target, KEY)


def test_sampler_suite_catches_an_ignored_key():
    sampler, target, _ = _exact()
    with pytest.raises(AssertionError, match="another key gave the same samples"):
        testing.check_sampler(IgnoresKey(sampler), target, KEY)


class IndependentGaussian(nqs_core.AbstractSampler):
    """Independent samples of a `testing.Gaussian`, with its width times `factor` (correct for `factor = 1`)."""

    space: nqs_core.AbstractSpace
    factor: float = eqx.field(static=True)
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)

    def init(self, distribution, key):
        return nqs_core.DirectState(nqs_core.legacy_key(key))

    def sample(self, distribution, state):
        key, sub = jax.random.split(state.key)
        z = jax.random.normal(sub, (self.n_chains, self.n_samples_per_chain) + self.space.shape, jnp.float64)
        return distribution.mean + self.factor * distribution.std * z, nqs_core.DirectState(key), {}


def test_sampler_suite_catches_a_wrong_width():
    space = fermions(stop_after="space")["space"]
    target = testing.Gaussian(space, mean=jnp.array([0.3, -0.5]), std=0.7)
    testing.check_sampler(IndependentGaussian(space, factor=1.0, n_samples=256, n_chains=8), target, KEY)
    with pytest.raises(AssertionError, match=r"\(x - mu\)\^2 / sigma\^2"):
        testing.check_sampler(IndependentGaussian(space, factor=1.2, n_samples=256, n_chains=8), target, KEY)


class MinusGradient(nqs_core.AbstractPreconditioner):
    """A broken preconditioner: minus the energy gradient (an ascent direction)."""

    def init(self, ansatz, samples):
        return None

    def __call__(self, context, state):
        return jax.tree.map(jnp.negative, context.gradient()), state, {}


class GrowingState(nqs_core.AbstractPreconditioner):
    """A broken preconditioner: `init` returns no state, the step returns one (its checkpoint has no template)."""

    def init(self, ansatz, samples):
        return None

    def __call__(self, context, state):
        return context.gradient(), jnp.zeros(3), {}


def test_preconditioner_suite_catches_an_ascent_direction():
    _, system, ansatz, samples, estimator = _preconditioner_case("identity")
    with pytest.raises(AssertionError, match="not a descent direction"):
        testing.check_preconditioner(MinusGradient(), system, ansatz, samples, estimator=estimator)


def test_preconditioner_suite_catches_a_state_without_template():
    _, system, ansatz, samples, estimator = _preconditioner_case("identity")
    with pytest.raises(AssertionError, match="differs from init's"):
        testing.check_preconditioner(GrowingState(), system, ansatz, samples, estimator=estimator)


class NumpyWeights(nqs_core.AbstractAnsatz):
    """A broken ansatz: its weights are a NumPy array (a constant under jit, not a parameter)."""

    weights: np.ndarray

    def __call__(self, x):
        return jnp.sum(jnp.asarray(self.weights) * x)


class DropsPhase(nqs_core.AbstractAnsatz):
    """A broken ansatz: complex parameters but a real log psi."""

    weights: jax.Array

    def __call__(self, x):
        return jnp.real(jnp.sum(self.weights * x.astype(self.weights.dtype)))


def test_ansatz_suite_catches_constant_weights_and_a_lost_phase():
    space = spins()["space"]
    with pytest.raises(AssertionError, match="parameters must be JAX arrays"):
        testing.check_ansatz(NumpyWeights(np.ones(4)), space, KEY)
    with pytest.raises(AssertionError, match="the phase is lost"):
        testing.check_ansatz(DropsPhase(jnp.ones(4, jnp.complex128)), space, KEY)
    with pytest.raises(AssertionError, match="declared complex128"):
        testing.check_ansatz(spins(ansatz='name = "rbm"')["ansatz"], space, KEY, dtype=jnp.complex128)


class LopsidedIsing(nqs_core.AbstractDiscreteHamiltonian):
    """A broken Hamiltonian: the off-diagonal elements of rows with site 0 up are doubled (not Hermitian)."""

    inner: nqs_core.AbstractDiscreteHamiltonian
    space: nqs_core.AbstractDiscreteSpace

    def __init__(self, inner):
        self.inner, self.space = inner, inner.space

    @property
    def max_conn_size(self):
        return self.inner.max_conn_size

    def connected(self, x):
        xps, mels = self.inner.connected(x)
        off = jnp.any(xps != x, axis=-1)
        return xps, jnp.where(off & (x[0] > 0), 2.0 * mels, mels)


def test_system_suite_catches_a_non_hermitian_matrix_and_a_wrong_eigenstate():
    with pytest.raises(AssertionError, match="not Hermitian"):
        testing.check_system(LopsidedIsing(spins()["system"]))
    system, _ = _trapped_fermions()
    with pytest.raises(AssertionError, match="are not constant"):
        testing.check_system(system, KEY, eigenstate=(HOSlater(jnp.asarray(1.1)), 2.0))


def test_registered_refuses_an_uncovered_component():
    with pytest.raises(ValueError, match="'ising' has no factory"):
        testing.registered("system", {"heisenberg": lambda: None})
    with pytest.raises(ValueError, match="not registered"):
        testing.registered("system", {"no_such_system": lambda: None}, default=lambda n: None)
    names = [n for n, _ in testing.registered("system", default=lambda n: n, uncovered={"phi4": "an action"})]
    assert "phi4" not in names and "ising" in names


# -- the docs' example plugins ---------------------------------------------------------

DOCS = pathlib.Path(__file__).parents[2] / "docs"


def _example_module(path, name):
    """Import an example plugin's package from docs/ without installing it."""
    spec = importlib.util.spec_from_file_location(name, DOCS / path / name / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_plugins_keep_the_contracts():
    """The one-line checks of the plugin guide, on the two example plugins."""
    mean_field = _example_module("example_plugin", "nqs_mean_field")
    xxz = _example_module("example_hamiltonian_plugin", "nqs_xxz")
    calc = spins(space='name = "spin_half"\ntotal_sz = 0.0', system='name = "heisenberg"', sampler='name = "metropolis_exchange"')
    testing.check_ansatz(mean_field.MeanField(calc["space"], key=jax.random.PRNGKey(0)), calc["space"], KEY, dtype=jnp.float64)
    testing.check_system(xxz.XXZ(calc["space"], calc["lattice"], delta=0.5))
