"""Autoregressive RNN wave functions: normalisation, exact sampling, U(1), symmetrisation (Roth 2020)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_autoregressive import GRU1D, LSTM2D, SymmetrizedAR, transfer_parameters
from nqs_spins import Chain, SpinHalf, Square


_log_psi = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
_conditionals = eqx.filter_jit(lambda m, x: jax.vmap(m.conditionals)(x))
_sample = eqx.filter_jit(lambda m, k, n: m.sample_with_log_psi(k, n))


def _roughen(model, key, scale=3.0):
    """Scale every parameter up so the distribution is far from uniform."""
    params, static = nqs_core.parameters(model)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [a * scale + 0.3 * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, leaves), static)


def _probs(model, space):
    states = jnp.asarray(space.all_states())
    log_psi = _log_psi(model, states)
    return states, np.exp(2.0 * np.real(np.asarray(log_psi)))


def _tv(samples, states, p):
    codes = {tuple(s): i for i, s in enumerate(np.asarray(states).tolist())}
    counts = np.zeros(len(states))
    for s in np.asarray(samples).reshape(-1, states.shape[1]).tolist():
        counts[codes[tuple(s)]] += 1
    return 0.5 * np.abs(counts / counts.sum() - p).sum()


def _models(tsz, key):
    k1, k2, k3 = jax.random.split(key, 3)
    gru = _roughen(GRU1D(SpinHalf(6, total_sz=tsz), hidden=6, key=k1), k3)
    lstm = _roughen(LSTM2D(SpinHalf(6, total_sz=tsz), Square(2, pbc=False, width=3), hidden=5, n_layers=2, key=k2), k3, 2.0)
    return gru, lstm


@pytest.fixture(scope="module", params=[None, 0.0], ids=["free", "sz0"])
def models(request):
    space = SpinHalf(6, total_sz=request.param)
    return space, _models(request.param, jax.random.PRNGKey(7))


def test_normalised_and_u1(models):
    space, (gru, lstm) = models
    full = SpinHalf(6)
    for model in (gru, lstm):
        states, p = _probs(model, full)
        np.testing.assert_allclose(p.sum(), 1.0, atol=1e-10)
        if space.total_sz is not None:  # weight only on the constrained sector
            sz = states.sum(axis=1) / 2
            assert np.all(p[np.asarray(sz) != space.total_sz] == 0.0)
        # the conditionals are normalised at every site
        c = _conditionals(model, jnp.asarray(space.all_states()))
        np.testing.assert_allclose(np.asarray(jax.scipy.special.logsumexp(c, axis=-1)), 0.0, atol=1e-12)
        assert not np.allclose(p[p > 0], p[p > 0].mean(), rtol=0.05)  # a non-trivial distribution


def test_log_psi_is_complex_with_phase(models):
    space, (gru, lstm) = models
    x = jnp.asarray(space.all_states())
    for model in (gru, lstm):
        lp = _log_psi(model, x)
        assert jnp.iscomplexobj(lp) and float(jnp.std(jnp.imag(lp))) > 1e-3


def test_sampling_path_agrees_with_evaluation(models):
    """The site-by-site sampler and the parallel evaluation give the same log psi
    (so the 2D shifts keep causality: sampling sees exactly the evaluated context)."""
    space, (gru, lstm) = models
    for model in (gru, lstm):
        x, lp = _sample(model, jax.random.PRNGKey(3), 64)
        assert x.shape == (64, 6)
        np.testing.assert_allclose(np.asarray(lp), np.asarray(_log_psi(model, x)), atol=1e-12)
        if space.total_sz is not None:
            np.testing.assert_array_equal(np.asarray(x.sum(axis=1)) / 2, space.total_sz)


def test_direct_samples_match_exact_distribution(models):
    space, (gru, lstm) = models
    n = 20000
    for model in (gru, lstm):
        sampler = nqs_core.DirectSampler(space, n_samples=n, n_chains=4)
        dist = nqs_core.BornDistribution(model)
        x, _, info = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(11)))
        states, p = _probs(model, space)
        # statistical TV ~ 0.5 * sum sqrt(p (1-p) / n) <= 0.5 sqrt(K / n) ~ 0.028 for K = 64
        assert _tv(x, states, p) < 0.035


def test_parameter_shapes_independent_of_size(key):
    def shapes(m):
        return [a.shape for a in jax.tree.leaves(nqs_core.parameters(m)[0])]

    assert shapes(GRU1D(SpinHalf(6), key=key)) == shapes(GRU1D(SpinHalf(12, total_sz=0.0), key=key))
    a = LSTM2D(SpinHalf(6), Square(2, pbc=False, width=3), key=key)
    b = LSTM2D(SpinHalf(16), Square(4, pbc=False), key=key)
    assert shapes(a) == shapes(b)
    moved = transfer_parameters(nqs_core.parameters(a)[0], nqs_core.parameters(b)[0])
    assert jax.tree.structure(moved) == jax.tree.structure(nqs_core.parameters(b)[0])
    with pytest.raises(ValueError, match="shapes"):
        transfer_parameters(nqs_core.parameters(a)[0], nqs_core.parameters(LSTM2D(SpinHalf(6), Square(2, width=3), hidden=3, key=key))[0])


def test_bad_input_is_rejected(key):
    with pytest.raises(ValueError, match="hidden"):
        GRU1D(SpinHalf(4), hidden=0, key=key)
    with pytest.raises(TypeError, match="two-dimensional"):
        LSTM2D(SpinHalf(4), Chain(4), key=key)
    with pytest.raises(ValueError, match="inconsistent"):
        LSTM2D(SpinHalf(6), Square(2, width=2), key=key)


@pytest.mark.parametrize("dim", [1, 2])
def test_symmetrized_model(dim, key):
    if dim == 1:
        space, lattice = SpinHalf(6), Chain(6, pbc=False)
        base = _roughen(GRU1D(space, hidden=6, key=key), key)
        sym = SymmetrizedAR(base, space, lattice, group="reflection", spin_flip=True)
        assert sym.group_size == 4
    else:
        space, lattice = SpinHalf(4), Square(2, pbc=False)
        base = _roughen(LSTM2D(space, lattice, hidden=4, n_layers=1, key=key), key, 2.0)
        sym = SymmetrizedAR(base, space, lattice, group="point_group")
        assert sym.group_size == 8
    states, p = _probs(sym, space)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-10)
    # Eq. 22-23 by hand for a few configurations
    _, p_base = _probs(base, space)
    index = {tuple(s): i for i, s in enumerate(np.asarray(states).tolist())}
    sym_psi = eqx.filter_jit(lambda m, x: m(x))
    for x in np.asarray(states)[:: max(1, len(states) // 7)]:
        tx = jnp.asarray(x[np.asarray(sym.perms)] * np.asarray(sym.flips)[:, None])
        lb = np.asarray(_log_psi(base, tx))
        w = np.exp(2 * lb.real)
        expect = 0.5 * np.log(w.mean()) + 1j * np.angle(np.sum(w * np.exp(1j * lb.imag)))
        np.testing.assert_allclose(complex(sym_psi(sym, jnp.asarray(x))), expect, atol=1e-10)
        # invariance of |psi|^2 under the group
        for t in np.asarray(tx):
            assert abs(p[index[tuple(t.tolist())]] - p[index[tuple(x.tolist())]]) < 1e-12
    sampler = nqs_core.DirectSampler(space, n_samples=20000, n_chains=4)
    dist = nqs_core.BornDistribution(sym)
    # the permutations form a group: closed under composition
    perms = {tuple(q) for q in np.asarray(sym.perms).tolist()}
    assert all(tuple(np.asarray(a)[np.asarray(b)].tolist()) in perms for a in perms for b in perms)
    x, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(5)))
    bound = 0.5 * np.sqrt(len(states) / 20000) * 1.3
    assert _tv(x, states, p) < bound
    # a mixture: direct-sampling, declared without single-site conditionals
    assert isinstance(sym, nqs_core.AbstractDirectSamplingAnsatz)
    assert not isinstance(sym, nqs_core.AbstractAutoregressiveAnsatz) and not hasattr(sym, "conditionals")
