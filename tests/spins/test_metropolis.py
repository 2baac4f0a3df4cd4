import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
import nqs_spins as ns

N = 6


class Quadratic(nqs_core.AbstractAnsatz):
    """A tiny explicit wave function: `log psi = a.x + x.W.x / 2` (real)."""

    a: jax.Array
    W: jax.Array

    def __call__(self, x):
        return x @ self.a + 0.5 * x @ (self.W @ x)


class Tempered(nqs_core.AbstractDistribution):
    """`p^t` of another distribution: a deliberately wrong target."""

    inner: nqs_core.AbstractDistribution
    t: float

    def log_prob(self, x):
        return self.t * self.inner.log_prob(x)


def ansatz(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(N, N)) * 0.2
    return Quadratic(jnp.asarray(rng.normal(size=N) * 0.25), jnp.asarray((w + w.T) / 2))


def exact_probs(dist, space):
    states = jnp.asarray(space.all_states())
    lp = np.asarray(jax.vmap(dist.log_prob)(states))
    p = np.exp(lp - lp.max())
    return p / p.sum()


def empirical_probs(samples, space):
    codes = np.asarray(space.all_codes())
    c = np.asarray(space.states_to_codes(np.asarray(samples).reshape(-1, space.n_sites)))
    idx = np.searchsorted(codes, c)
    assert np.array_equal(codes[idx], c), "samples outside the space"
    return np.bincount(idx, minlength=len(codes)) / len(c)


def tv(p, q):
    return 0.5 * np.abs(p - q).sum()


N_SAMPLES, N_CHAINS = 1 << 15, 16


def make_sampler(name, space=None):
    """The samplers under test; equal static settings share compiled code."""
    if name == "local":
        return ns.MetropolisLocal(space or ns.SpinHalf(N), n_samples=N_SAMPLES, n_chains=N_CHAINS)
    space = space or ns.SpinHalf(N, total_sz=0.0)
    lattice = ns.Chain(N) if name == "exchange-bonds" else None
    return ns.MetropolisExchange(space, lattice=lattice, n_samples=N_SAMPLES, n_chains=N_CHAINS)


@pytest.mark.parametrize("name", ["local", "exchange-pairs", "exchange-bonds"])
def test_samples_follow_born_distribution(name, key):
    sampler = make_sampler(name)
    space = sampler.space
    dist = nqs_core.BornDistribution(ansatz())
    p = exact_probs(dist, space)
    # the test has power: uniform sampling and sampling |psi| are far away
    assert tv(p, np.full_like(p, 1 / len(p))) > 0.4
    assert tv(p, exact_probs(Tempered(dist, 0.5), space)) > 0.2
    state = sampler.init(dist, key)
    samples, state, info = sampler.sample(dist, state)
    assert samples.shape == (N_CHAINS, N_SAMPLES // N_CHAINS, N)
    # empirical_probs also checks that every sample is in the space (fixed S^z)
    assert tv(empirical_probs(samples, space), p) < 0.03
    assert 0.0 < float(info["acceptance"]) <= 1.0


def test_wrong_target_is_detected(key):
    """Sampling `|psi|` instead of `|psi|^2` fails the same criterion."""
    sampler = make_sampler("local")
    dist = nqs_core.BornDistribution(ansatz())
    wrong = Tempered(dist, 0.5)
    samples, _, _ = sampler.sample(wrong, sampler.init(wrong, key))
    assert tv(empirical_probs(samples, sampler.space), exact_probs(dist, sampler.space)) > 0.15


def test_cached_log_prob_is_refreshed(key):
    """`sample` must not trust the cached log-probs (parameters change between
    calls): with a cache 50 too high and no refresh, no move would be accepted."""
    sampler = make_sampler("local")
    dist = nqs_core.BornDistribution(ansatz())
    state = sampler.init(dist, key)
    stale = eqx.tree_at(lambda s: s.log_prob, state, state.log_prob + 50.0)
    samples, _, info = sampler.sample(dist, stale)
    assert float(info["acceptance"]) > 0.1
    assert tv(empirical_probs(samples, sampler.space), exact_probs(dist, sampler.space)) < 0.03


def test_exchange_conserves_magnetisation(key):
    # unconstrained space: every chain keeps the magnetisation it starts with
    sampler = ns.MetropolisExchange(ns.SpinHalf(N), lattice=ns.Chain(N), n_samples=256, n_chains=8)
    dist = nqs_core.BornDistribution(ansatz(1))
    state = sampler.init(dist, key)
    m0 = state.x.sum(axis=1)
    assert len(np.unique(np.asarray(m0))) > 1
    samples, state, _ = sampler.sample(dist, state)
    np.testing.assert_array_equal(samples.sum(axis=2), jnp.broadcast_to(m0[:, None], samples.shape[:2]))


def test_state_contents_and_jit_roundtrip(key, tmp_path):
    space = ns.SpinHalf(N, total_sz=0.0)
    sampler = ns.MetropolisExchange(space, lattice=ns.Chain(N), n_samples=104, n_chains=8)
    assert sampler.n_samples_per_chain == 13
    assert sampler.n_discard_per_chain == 1 and sampler.sweep_size == N
    dist = nqs_core.BornDistribution(ansatz())
    state = sampler.init(dist, key)
    assert state.x.shape == (8, N) and state.log_prob.shape == (8,)
    assert state.key.dtype == jnp.uint32 and state.key.shape == (2,)
    np.testing.assert_allclose(state.log_prob, jax.vmap(dist.log_prob)(state.x))
    # through jit and back, and through npz
    same = jax.jit(lambda s: s)(state)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state, same))
    leaves, treedef = jax.tree.flatten(state)
    np.savez(tmp_path / "state.npz", *[np.asarray(a) for a in leaves])
    with np.load(tmp_path / "state.npz") as f:
        loaded = jax.tree.unflatten(treedef, [jnp.asarray(f[f"arr_{i}"]) for i in range(len(leaves))])
    # sampling inside an outer jit gives the same as outside; the state is reusable
    s1, st1, i1 = sampler.sample(dist, loaded)
    s2, st2, i2 = jax.jit(lambda d, s: sampler.sample(d, s))(dist, state)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(st1.x, st2.x)
    assert float(i1["acceptance"]) == pytest.approx(float(i2["acceptance"]))
    assert int(st1.n_steps) == (1 + 13) * N
    assert 0.0 <= float(st1.acceptance) <= 1.0
    # the final configurations are the last samples; log-probs stay consistent
    np.testing.assert_array_equal(st1.x, s1[:, -1])
    np.testing.assert_allclose(st1.log_prob, jax.vmap(dist.log_prob)(st1.x))
    # a second call continues from the new state with fresh randomness
    s3, _, _ = sampler.sample(dist, st1)
    assert not np.array_equal(s3, s1)


def test_typed_keys_are_accepted():
    sampler = make_sampler("local")
    dist = nqs_core.BornDistribution(ansatz())
    state = sampler.init(dist, jax.random.key(3))
    assert state.key.dtype == jnp.uint32


def test_local_rejects_fixed_sz():
    with pytest.raises(ValueError, match="MetropolisExchange"):
        ns.MetropolisLocal(ns.SpinHalf(N, total_sz=0.0))


def test_exchange_checks_lattice_size():
    with pytest.raises(ValueError, match="inconsistent sizes"):
        ns.MetropolisExchange(ns.SpinHalf(N, total_sz=0.0), lattice=ns.Chain(N + 2))


def test_sampler_validation():
    with pytest.raises(ValueError):
        ns.MetropolisLocal(ns.SpinHalf(N), n_chains=0)
    with pytest.raises(ValueError):
        ns.MetropolisLocal(ns.SpinHalf(N), sweep_size=0)
    with pytest.raises(ValueError, match="use n_samples = 992 or 1008"):  # refused, not rounded up
        ns.MetropolisLocal(ns.SpinHalf(N), n_samples=1000, n_chains=16)
    sampler = ns.MetropolisLocal(ns.SpinHalf(N), n_samples=1008, n_chains=16)
    assert sampler.n_samples_per_chain == 63 and sampler.n_discard_per_chain == 6
    assert isinstance(sampler, nqs_core.AbstractSampler)


class _Field(nqs_core.AbstractDistribution):
    """`log p = beta * sum(x)`: nearly all weight on the all-up state."""

    beta: float

    def log_prob(self, x):
        return self.beta * jnp.sum(x)


def test_fresh_chains_are_thermalised_once():
    """The first call on fresh chains runs `n_thermalize` extra sweeps (many chains,
    one sample each, no discards: without them the samples are the nearly random
    initial states); later calls are unchanged by the option."""
    space = ns.SpinHalf(12)
    dist = _Field(3.0)
    kw = dict(n_samples=64, n_chains=64, n_discard_per_chain=0, sweep_size=4)
    cold, hot = ns.MetropolisLocal(space, n_thermalize=0, **kw), ns.MetropolisLocal(space, n_thermalize=30, **kw)
    key = jax.random.PRNGKey(3)
    s0, st0, _ = cold.sample(dist, cold.init(dist, key))
    s1, st1, info = hot.sample(dist, hot.init(dist, key))
    assert float(jnp.mean(s0)) < 0.7 and float(jnp.mean(s1)) > 0.98
    assert 0.0 < float(info["acceptance"]) <= 1.0
    # not fresh any more: the same chains give the same samples with or without the option
    a, _, _ = cold.sample(dist, st1)
    b, _, _ = hot.sample(dist, st1)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="n_thermalize"):
        ns.MetropolisLocal(space, n_thermalize=-1)
