"""VQ-NQS (Sharir et al. 2022): autoregressive normalisation and sampling, the quantiser,
compressed == dense local energies, distillation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_spins import Chain, Heisenberg, Ising, SpinHalf, Square
from nqs_vq import (
    VQTransformer,
    calibrate_capacity,
    code_usage,
    codes,
    distill,
    log_amplitude_mismatch,
    lookup,
    quantize,
    replace_dead_codes,
    revive_dead_codes,
    straight_through_reference,
    vq_from_baseline,
)


def sharpen(model, factor):
    """Scale the output heads so the random model is far from uniform."""
    m = eqx.tree_at(lambda m: m.amp.head_w, model, model.amp.head_w * factor)
    if m.phase is not None:
        m = eqx.tree_at(lambda m: m.phase.head_w, m, m.phase.head_w * factor)
    return m


@eqx.filter_jit
def batch(model, xs):
    return jax.vmap(model)(xs)


@pytest.fixture(scope="module")
def chain8():
    lat = Chain(8, pbc=False)
    return lat, SpinHalf(lattice=lat)


@pytest.mark.parametrize("total_sz,patch,phase,final", [(None, 2, 1, False), (0.0, 2, 0, False), (1.0, 4, 1, False),
                                                         (0.0, 2, 1, True)])
def test_autoregressive_normalisation_and_conditionals(chain8, total_sz, patch, phase, final):
    lat, _ = chain8
    space = SpinHalf(lattice=lat, total_sz=total_sz)
    m = VQTransformer(space, patch_size=patch, d_model=8, n_heads=2, n_codes=4, phase_layers=phase,
                      final_attention=final, key=jax.random.PRNGKey(0))
    m = sharpen(m, 20.0)
    xs = space.all_states()
    lp = batch(m, xs)
    assert abs(float(jnp.sum(jnp.exp(2.0 * jnp.real(lp)))) - 1.0) < 1e-10
    if total_sz is not None:  # the whole weight sits on the sector
        full = SpinHalf(lattice=lat).all_states()
        outside = full[jnp.sum(full, axis=1) != 2.0 * total_sz]
        assert float(jnp.max(jnp.real(batch(m, outside)))) < -1e20
    cond = eqx.filter_jit(lambda m, xs: jax.vmap(m.conditionals)(xs))(m, xs)  # (M, n, 2)
    np.testing.assert_allclose(jnp.sum(jnp.exp(cond), axis=-1), 1.0, atol=1e-12)
    picked = jnp.take_along_axis(cond, (xs > 0).astype(jnp.int32)[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(jnp.sum(picked, axis=-1), 2.0 * jnp.real(lp), atol=1e-10)


def test_direct_sampler_matches_exact_distribution():
    lat = Chain(6, pbc=False)
    space = SpinHalf(lattice=lat)
    m = sharpen(VQTransformer(space, patch_size=2, d_model=8, n_heads=2, n_codes=4, key=jax.random.PRNGKey(3)), 30.0)
    xs = space.all_states()
    p = np.asarray(jnp.exp(2.0 * batch(m, xs)))
    sampler = nqs_core.DirectSampler(space, n_samples=20000, n_chains=4)
    dist = nqs_core.BornDistribution(m)
    samples, _, _ = sampler.sample(dist, sampler.init(dist, jax.random.PRNGKey(4)))
    codes_ = ((np.asarray(samples).reshape(-1, 6) > 0) * (2 ** np.arange(5, -1, -1))).sum(-1)
    emp = np.bincount(codes_, minlength=64) / codes_.size
    ref = np.zeros(64)
    ref[((np.asarray(xs) > 0) * (2 ** np.arange(5, -1, -1))).sum(-1)] = p
    assert p.max() > 3.0 / 64  # the test distribution is far from uniform
    assert 0.5 * np.abs(emp - ref).sum() < 0.03


def test_quantizer_forward_and_straight_through_gradient():
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (5, 3, 8))
    w = jax.random.normal(kw, (2, 6, 4))  # H = 2 heads, Q = 6 codes
    g = jax.random.normal(kg, (5, 3, 8))
    vals, idx = jax.jit(quantize)(x, w)
    assert idx.shape == (5, 3, 2)
    # forward: exactly the nearest code vectors (brute force)
    dist = jnp.linalg.norm(x.reshape(5, 3, 2, 1, 4) - w, axis=-1)
    np.testing.assert_array_equal(idx, jnp.argmin(dist, axis=-1))
    np.testing.assert_array_equal(vals, lookup(idx, w))
    # Eq. (7)-(8) written out: (onehot + s) - s equals onehot up to one rounding
    np.testing.assert_allclose(vals, jax.jit(straight_through_reference)(x, w), rtol=0, atol=1e-14)
    # backward: Eq. (8) (softmax straight-through), not the zero gradient of a lookup
    gx, gw = jax.jit(jax.grad(lambda x, w: jnp.sum(g * quantize(x, w)[0]), argnums=(0, 1)))(x, w)
    rx, rw = jax.jit(jax.grad(lambda x, w: jnp.sum(g * straight_through_reference(x, w)), argnums=(0, 1)))(x, w)
    np.testing.assert_allclose(gx, rx, atol=1e-12)
    np.testing.assert_allclose(gw, rw, atol=1e-12)
    assert float(jnp.max(jnp.abs(gx))) > 1e-3
    # chosen codes receive the full upstream gradient (one-hot part of Eq. 8) plus the softmax part
    onehot = jax.nn.one_hot(idx, 6).reshape(-1, 2, 6)
    direct = jnp.einsum("mhq,mhc->hqc", onehot, g.reshape(-1, 2, 4))
    assert float(jnp.max(jnp.abs(direct))) > 0
    assert codes(x, w).dtype == jnp.int32


def test_dead_code_removal_replaces_unused_codes():
    x = jax.random.normal(jax.random.PRNGKey(0), (50, 4))
    w = jnp.concatenate([x[:3], jnp.full((5, 4), 100.0)]).reshape(1, 8, 4)  # 5 codes far from the data
    usage = code_usage(codes(x, w).reshape(-1, 1), 8)
    assert int(jnp.sum(usage[0, 3:])) == 0
    new, n = replace_dead_codes(w, x, usage, jax.random.PRNGKey(1))
    assert n == 5
    np.testing.assert_array_equal(new[0, :3], w[0, :3])  # live codes untouched
    dists = jnp.min(jnp.linalg.norm(new[0, 3:, None] - x[None], axis=-1), axis=-1)
    np.testing.assert_allclose(dists, 0.0, atol=1e-12)  # replacements are data points
    assert int(jnp.sum(code_usage(codes(x, new).reshape(-1, 1), 8)[0] == 0)) < 5


def test_model_dead_code_revival(chain8):
    _, space = chain8
    m = VQTransformer(space, d_model=8, n_heads=2, n_codes=16, key=jax.random.PRNGKey(0))
    m = eqx.tree_at(lambda m: m.amp.codebook, m, m.amp.codebook.at[:, :, 8:].set(50.0))
    xs = eqx.filter_jit(m.sample)(jax.random.PRNGKey(1), 64)
    m2, n = revive_dead_codes(m, xs, jax.random.PRNGKey(2))
    assert n >= 2 * 8
    assert float(jnp.max(jnp.abs(m2.amp.codebook))) < 50.0


def _local_energies(system, model, xs):
    dense = eqx.filter_jit(jax.vmap(lambda x: system.local_energy(lambda y: model(y), x)))(xs)
    comp = eqx.filter_jit(jax.vmap(lambda x: system.local_energy(model, x)))(xs)
    return np.asarray(dense), np.asarray(comp)


@pytest.mark.parametrize("n_codes,n_code_heads", [(64, 1), (0, 1)])
def test_compressed_equals_dense_heisenberg_4x4(n_codes, n_code_heads):
    lat = Square(4, pbc=False)
    space = SpinHalf(lattice=lat, total_sz=0.0)
    system = Heisenberg(space, lat, marshall_sign=True)
    m = VQTransformer(space, patch_size=2, d_model=16, n_heads=2, n_codes=n_codes, n_code_heads=n_code_heads,
                      key=jax.random.PRNGKey(5))
    xs = eqx.filter_jit(m.sample)(jax.random.PRNGKey(6), 32)
    if n_codes:  # calibrated (smaller) capacity: same numbers, fewer per-location evaluations
        m, counts = calibrate_capacity(m, system, xs, margin=0.0)
        assert sum(m.capacity[0]) < 3 * 25 * 8
    dense, comp = _local_energies(system, m, xs)
    np.testing.assert_allclose(comp, dense, rtol=0, atol=1e-10)


@pytest.mark.parametrize("final", [False, True])
def test_compressed_equals_dense_tfim_with_phase(final):
    lat = Chain(16, pbc=True)
    space = SpinHalf(lattice=lat)
    system = Ising(space, lat, h=1.0)
    m = VQTransformer(space, patch_size=2, d_model=16, n_heads=2, n_codes=16, n_code_heads=2, phase_layers=1,
                      final_attention=final, key=jax.random.PRNGKey(7))
    xs = eqx.filter_jit(m.sample)(jax.random.PRNGKey(8), 32)
    dense, comp = _local_energies(system, m, xs)
    assert np.iscomplexobj(dense) and np.max(np.abs(dense.imag)) > 1e-6
    np.testing.assert_allclose(comp, dense, rtol=0, atol=1e-10)
    # too small a capacity is detected (NaN), never a silently wrong number
    tiny = m.with_capacity(((4, 4, 4), (4, 4)))
    comp_tiny = eqx.filter_jit(jax.vmap(lambda x: system.local_energy(tiny, x)))(xs)
    assert np.all(np.isnan(comp_tiny))


def test_distillation_reduces_log_amplitude_mismatch():
    space = SpinHalf(lattice=Chain(6, pbc=False))
    teacher = sharpen(VQTransformer(space, d_model=8, n_heads=2, n_codes=0, key=jax.random.PRNGKey(9)), 20.0)
    xs = eqx.filter_jit(teacher.sample)(jax.random.PRNGKey(5), 512)  # held-out teacher samples
    student = vq_from_baseline(teacher, xs, jax.random.PRNGKey(11), n_codes=8)
    before = log_amplitude_mismatch(student, teacher, xs)
    student, losses = distill(student, teacher, jax.random.PRNGKey(12), n_steps=40, n_samples=64,
                              learning_rate=1e-3, revive_every=0)
    after = log_amplitude_mismatch(student, teacher, xs)
    assert before > 1e-3, before  # the quantisers change the function
    assert after < 0.3 * before, (before, after)
    assert losses.shape == (40,)


def test_config_builds_and_rejects_bad_arguments():
    lat = Chain(8, pbc=False)
    space = SpinHalf(lattice=lat)
    with pytest.raises(ValueError, match="patch_size"):
        VQTransformer(space, patch_size=3, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_code_heads"):
        VQTransformer(space, d_model=16, n_code_heads=3, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="capacity"):
        VQTransformer(space, capacity=[[1, 2]], key=jax.random.PRNGKey(0))
    cfg = nqs_core.loads_config(
        """
[lattice]
name = "chain"
length = 8
[space]
name = "spin_half"
[system]
name = "ising"
[ansatz]
name = "vq_transformer"
d_model = 8
n_heads = 2
n_codes = 8
capacity = [[20, 40, 40], []]
[sampler]
name = "direct"
n_samples = 64
n_chains = 4
[optimizer]
name = "adam"
"""
    )
    calc = nqs_core.build(cfg)
    assert isinstance(calc.driver.ansatz, VQTransformer)
    assert calc.driver.ansatz.capacity == ((20, 40, 40), None)
