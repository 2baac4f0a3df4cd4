"""Deep ViT (Rende et al. 2024, Eq. 11 and Algorithm 1): direct formula, parameter count, patch-translation invariance."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_core import n_real_parameters
from nqs_networks import ViT, patch_displacements, vit_parameter_count
from nqs_spins import Chain, SpinHalf, Square


def make(length=4, width=None, key=jax.random.PRNGKey(0), **kw):
    lattice = Square(length, width=width)
    space = SpinHalf(lattice=lattice)
    return ViT(space, lattice, key=key, **kw), space, lattice


def grid_roll(x, shift, extent):
    return jnp.asarray(np.roll(np.asarray(x).reshape(extent), shift, axis=(0, 1)).reshape(-1))


def randomise(model, seed, std=0.3):
    """Give every parameter (LayerNorm scales, biases, output layer) a random
    value, so the direct-formula test sees all of them."""
    rng = np.random.default_rng(seed)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def shake(a):
        noise = rng.standard_normal(a.shape) + (1j * rng.standard_normal(a.shape) if jnp.iscomplexobj(a) else 0.0)
        return jnp.asarray(np.asarray(a) + std * noise)

    return eqx.combine(jax.tree.map(shake, params), static)


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * g + b


def reference(m, x):
    """Algorithm 1 with Eq. (11) written out with explicit patch and head indices."""
    p = {k: np.asarray(v) for k, v in vars(m).items() if isinstance(v, jax.Array)}
    length, width = m.extent
    b, h = m.patch_size, m.n_heads
    rows, cols = length // b, width // b
    grid = np.asarray(x).reshape(length, width)
    patches = np.array([grid[P * b : (P + 1) * b, Q * b : (Q + 1) * b].reshape(-1) for P in range(rows) for Q in range(cols)])
    X = patches @ p["embed_w"] + p["embed_b"]
    n_p, d = X.shape
    head = np.arange(d) // (d // h)  # mu(q)
    for l in range(m.n_layers):
        v = layer_norm(X, p["ln1_scale"][l], p["ln1_bias"][l]) @ p["v_w"][l] + p["v_b"][l]
        mixed = np.zeros_like(v)
        for i in range(n_p):
            for j in range(n_p):
                disp = ((i // cols - j // cols) % rows) * cols + (i % cols - j % cols) % cols
                mixed[i] += p["alpha"][l][head, disp] * v[j]
        X = X + mixed @ p["w_w"][l] + p["w_b"][l]
        hidden = np.maximum(layer_norm(X, p["ln2_scale"][l], p["ln2_bias"][l]) @ p["ff1_w"][l] + p["ff1_b"][l], 0.0)
        X = X + hidden @ p["ff2_w"][l] + p["ff2_b"][l]
    z = layer_norm(X, p["final_scale"], p["final_bias"]).sum(0)
    t = z @ p["out_w"] + p["out_b"]
    if m.out_norm_scale is not None:
        g, c = p["out_norm_scale"], p["out_norm_bias"]
        t = layer_norm(t.real, g[0], c[0]) + 1j * layer_norm(t.imag, g[1], c[1])
    return np.sum(np.log(np.cosh(t)))


@pytest.mark.parametrize(
    "length,width,kw",
    [(4, None, {}), (6, 4, dict(patch_size=2, n_layers=3, d_model=12, n_heads=3, output_norm=True)), (6, None, dict(patch_size=3, n_heads=2))],
)
def test_direct_formula(length, width, kw):
    m, space, _ = make(length, width, **kw)
    m = randomise(m, 7)
    xs = space.random_state(jax.random.PRNGKey(3), 3)
    out = jax.jit(jax.vmap(m))(xs)
    np.testing.assert_allclose(np.exp(out), [np.exp(reference(m, x)) for x in xs], rtol=1e-11)


def test_output_shape_dtype_and_batching():
    m, space, _ = make()
    xs = space.random_state(jax.random.PRNGKey(1), 5)
    single = jax.jit(lambda x: m(x))
    out = single(xs[0])
    assert out.shape == () and out.dtype == jnp.complex128
    batched = jax.jit(jax.vmap(m))(xs)
    assert batched.shape == (5,) and batched.dtype == jnp.complex128
    np.testing.assert_allclose(batched, [complex(single(x)) for x in xs], rtol=1e-13)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array)) if a is not m.out_w and a is not m.out_b)
    assert m.out_w.dtype == m.out_b.dtype == jnp.complex128


def test_gradients_finite():
    m, space, _ = make(output_norm=True)
    xs = space.random_state(jax.random.PRNGKey(2), 4)
    for part in (jnp.real, jnp.imag):
        grads = eqx.filter_jit(eqx.filter_grad(lambda mm: jnp.sum(part(jax.vmap(mm)(xs)))))(m)
        leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
        assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
        assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def test_parameter_count_formula_matches_model():
    for length, width, kw in [(4, None, {}), (6, 4, dict(n_layers=3, d_model=12, n_heads=3)), (6, None, dict(patch_size=3, output_norm=True))]:
        m, _, _ = make(length, width, **kw)
        args = dict(patch_size=2, n_layers=2, d_model=16, n_heads=4, output_norm=False) | kw
        assert n_real_parameters(m) == vit_parameter_count(length, width=width, **args)


def test_parameter_count_against_paper():
    """Rende et al. 2024: b=2, n_l=8, d=72, h=12 on 10x10 has 267720 real parameters.

    Algorithm 1 as printed gives 4d = 288 fewer; the difference is one
    LayerNorm (scale + bias) on each of the real and imaginary parts of the
    output pre-activations (`output_norm=True`). The same 4d closes the gap for
    every architecture of Fig. 4."""
    lattice = Square(10)
    space = SpinHalf(lattice=lattice)
    plain = ViT(space, lattice, patch_size=2, n_layers=8, d_model=72, n_heads=12, key=jax.random.PRNGKey(0))
    normed = ViT(space, lattice, patch_size=2, n_layers=8, d_model=72, n_heads=12, output_norm=True, key=jax.random.PRNGKey(0))
    assert n_real_parameters(plain) == 267720 - 4 * 72 == 267432
    assert n_real_parameters(normed) == 267720
    for (h, d), paper in {(10, 40): 85400, (10, 60): 187100, (12, 72): 267720, (14, 140): 994700}.items():
        assert vit_parameter_count(10, 2, 8, d, h, output_norm=True) == paper
        assert vit_parameter_count(10, 2, 8, d, h) == paper - 4 * d


@pytest.mark.parametrize("kw", [{}, dict(output_norm=True, n_layers=1)])
def test_patch_translation_invariance(kw):
    m, space, _ = make(4, **kw)
    m = randomise(m, 5)
    xs = space.random_state(jax.random.PRNGKey(4), 4)
    f = jax.jit(jax.vmap(m))
    ref = f(xs)
    for shift in [(2, 0), (0, 2), (2, 2)]:
        moved = f(jnp.stack([grid_roll(x, shift, (4, 4)) for x in xs]))
        np.testing.assert_allclose(moved, ref, atol=1e-12, rtol=0)
    # translations by less than a patch change the amplitude
    for shift in [(1, 0), (0, 1), (1, 1)]:
        moved = f(jnp.stack([grid_roll(x, shift, (4, 4)) for x in xs]))
        assert float(jnp.max(jnp.abs(moved - ref))) > 1e-4


def test_patch_translation_invariance_rectangular():
    m, space, _ = make(6, 4, patch_size=2, d_model=8, n_heads=2)
    m = randomise(m, 6)
    x = space.random_state(jax.random.PRNGKey(4), 1)[0]
    shifts = [(0, 0), (2, 0), (4, 2), (0, 2)]
    out = jax.jit(jax.vmap(m))(jnp.stack([grid_roll(x, s, (6, 4)) for s in shifts]))
    np.testing.assert_allclose(out[1:], out[0], atol=1e-12, rtol=0)


def test_patches_and_displacements():
    m, _, lattice = make(4)
    x = jnp.arange(16.0)
    patches = np.asarray(m.patches(x))
    site = lattice.site
    assert patches[1].tolist() == [site(0, 2), site(0, 3), site(1, 2), site(1, 3)]
    assert patches[2].tolist() == [site(2, 0), site(2, 1), site(3, 0), site(3, 1)]
    D = patch_displacements(2, 3)
    assert D.shape == (6, 6) and np.all(np.diag(D) == 0)
    # row i of D is a permutation: every displacement appears once
    assert all(sorted(row) == list(range(6)) for row in D)


def test_invalid_arguments():
    lattice = Square(4)
    space = SpinHalf(lattice=lattice)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="patch_size=3 does not divide"):
        ViT(space, lattice, patch_size=3, key=key)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ViT(space, lattice, d_model=10, n_heads=4, key=key)
    with pytest.raises(ValueError, match="two-dimensional"):
        ViT(SpinHalf(n_sites=8), Chain(8), key=key)
    with pytest.raises(ValueError, match="inconsistent sizes"):
        ViT(SpinHalf(n_sites=8), lattice, key=key)


def test_build_from_config(small_config):
    from nqs_core import build

    cfg = dict(small_config)
    cfg["lattice"] = {"name": "square", "length": 4}
    cfg["system"] = {"name": "heisenberg"}
    cfg["space"] = {"name": "spin_half", "total_sz": 0.0}
    cfg["sampler"] = {"name": "metropolis_exchange", "n_samples": 16, "n_chains": 4}
    cfg["ansatz"] = {"name": "vit", "n_layers": 1, "d_model": 8, "n_heads": 2}
    calc = build(cfg, exact=False, stop_after="ansatz")
    model = calc["ansatz"]
    assert isinstance(model, ViT) and model.n_layers == 1 and model.d_model == 8
    assert calc.config["ansatz"] == {"name": "vit", "patch_size": 2, "n_layers": 1, "d_model": 8, "n_heads": 2, "output_norm": False,
                                     "encoding": "value"}
