"""Symmetry projection (Rende et al. 2024, Eq. 12): group structure, invariance, dense projector, exact ground-state sector."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_core import build, log_psi_batch, n_real_parameters, parameters, save_checkpoint
from nqs_networks import (
    C4V_CHARACTERS,
    RBM,
    Symmetrized,
    ViT,
    point_group_maps,
    symmetry_group,
    translation_maps,
    with_inner_params,
)
from nqs_networks._symmetry import _signed_logsumexp
from nqs_spins import J1J2, Chain, Honeycomb, Kagome, SpinHalf, Square, Triangular, ground_state

L4 = Square(4)
SZ0 = SpinHalf(lattice=L4, total_sz=0.0)


def rbm(dtype="complex128", seed=0, space=SZ0):
    return RBM(space, alpha=1, param_dtype=dtype, init_std=0.3, key=jax.random.PRNGKey(seed))


def generic_configs(n, seed=3):
    """Random S^z=0 configurations that no element of translations+c4v maps to
    themselves or to their spin flip (on the others a projection may vanish
    identically, see `test_projection_vanishes_on_symmetric_configurations`)."""
    perms, _ = symmetry_group(L4, "translations+c4v")
    xs = np.asarray(SZ0.random_state(jax.random.PRNGKey(seed), 8 * n))
    moved = xs[:, perms]  # (n, G, N)
    fixed = np.all(moved[:, 1:] == xs[:, None], axis=-1).any(-1) | np.all(moved == -xs[:, None], axis=-1).any(-1)
    return jnp.asarray(xs[~fixed][:n])


def basis_maps(space, perms):
    """`idx[g, k]`: index of the configuration `g x_k` in `space.all_states()`."""
    states = space.all_states()
    codes = space.all_codes()
    out = np.stack([np.searchsorted(codes, space.states_to_codes(states[:, p])) for p in perms])
    assert np.all(codes[out] == np.stack([space.states_to_codes(states[:, p]) for p in perms]))
    return out


def flip_map(space):
    states = space.all_states()
    return np.searchsorted(space.all_codes(), space.states_to_codes(-states))


@pytest.mark.parametrize(
    "symmetries,size",
    [
        ("none", 1),
        ("translations", 16),
        ("patch_translations", 4),
        ("c4", 4),
        ("c4v", 8),
        ("translations+c4", 64),
        ("translations+c4v", 128),
        ("patch_translations+c4", 16),
        ("patch_translations+c4v", 32),
    ],
)
def test_group_sizes_and_permutations(symmetries, size):
    perms, chars = symmetry_group(L4, symmetries, patch_size=2)
    assert perms.shape == (size, 16) and chars.shape == (size,)
    assert perms.dtype == chars.dtype == np.int32
    assert np.all(np.sort(perms, axis=1) == np.arange(16))
    assert np.all(perms[0] == np.arange(16)) and np.all(chars == 1)


@pytest.mark.parametrize("group", ["translations+c4v", "translations+c4"])
@pytest.mark.parametrize("character", list(C4V_CHARACTERS))
def test_characters_are_homomorphisms(group, character):
    """The group is closed under composition and chi(g h) = chi(g) chi(h)."""
    perms, chars = symmetry_group(L4, group, character)
    n = len(perms)
    assert len({p.tobytes() for p in perms}) == n
    index = {p.tobytes(): g for g, p in enumerate(perms)}
    for g in range(0, n, 7):
        for h in range(0, n, 5):
            gh = perms[h][perms[g]]  # (g (h x))[i] = (h x)[P_g[i]] = x[P_h[P_g[i]]]
            assert chars[index[gh.tobytes()]] == chars[g] * chars[h]


def test_point_group_elements():
    maps = point_group_maps(L4)
    site = L4.site
    assert maps[1][site(0, 0)] == site(3, 0)  # (u, v) -> (-v, u) about the centre
    assert maps[4][site(0, 1)] == site(3, 1)  # x -> L - 1 - x
    assert maps[6][site(0, 1)] == site(1, 0)  # diagonal
    assert np.all(maps[2][maps[2]] == np.arange(16))
    assert np.all(translation_maps(L4, within=2)[:, site(0, 0)] == [site(0, 0), site(0, 1), site(1, 0), site(1, 1)])


@pytest.mark.parametrize("character,parity", [("A1", 1), ("B1", -1), ("B2", 0), ("A2", 1)])
def test_invariance_under_every_element(character, parity):
    model = Symmetrized(rbm(), L4, "translations+c4v", character=character, spin_parity=parity)
    xs = generic_configs(3)
    perms, chars = np.asarray(model.perms), np.asarray(model.characters)
    f = jax.jit(jax.vmap(model))
    for x in xs:
        moved = jnp.concatenate([x[perms], -x[None]])
        ratio = np.exp(np.asarray(f(moved)) - complex(f(x[None])[0]))
        expected = np.concatenate([chars, [parity if parity else np.nan]])
        np.testing.assert_allclose(ratio[:-1], expected[:-1], atol=1e-12)
        if parity:
            assert abs(ratio[-1] - parity) < 1e-12


def test_differs_from_unsymmetrised_and_has_inner_parameters():
    inner = rbm()
    model = Symmetrized(inner, L4, "translations+c4v", spin_parity=1)
    xs = SZ0.random_state(jax.random.PRNGKey(4), 4)
    a, b = jax.vmap(model)(xs), jax.vmap(inner)(xs)
    diff = (a - b) - jnp.mean(a - b)  # beyond a constant normalisation
    assert float(jnp.max(jnp.abs(diff))) > 1e-3
    sym_params = parameters(model)[0]
    assert eqx.tree_equal(sym_params.inner, parameters(inner)[0])
    assert len(jax.tree.leaves(sym_params)) == len(jax.tree.leaves(parameters(inner)[0]))
    assert n_real_parameters(model) == n_real_parameters(inner)


def test_projection_vanishes_on_symmetric_configurations():
    """A stripe configuration is fixed by elements with character -1 in B2 and
    mapped to its flip by an element with character +1: its B2 and its
    (A1, parity -1) projections vanish identically (to rounding)."""
    x = jnp.array([[-1, 1, -1, 1], [1, 1, 1, 1], [-1, 1, -1, 1], [-1, -1, -1, -1]], dtype=jnp.float64).reshape(-1)
    inner = rbm()
    scale = float(jnp.max(jnp.real(jax.vmap(inner)(x[symmetry_group(L4, "translations+c4v")[0]]))))
    for character, parity in [("B2", 0), ("A1", -1)]:
        model = Symmetrized(inner, L4, "translations+c4v", character=character, spin_parity=parity)
        assert float(jnp.real(model(x))) < scale - 25.0
    assert float(jnp.real(Symmetrized(inner, L4, "translations+c4v", spin_parity=1)(x))) > scale


def test_real_inner_ansatz_gets_signs():
    """A positive (real) inner ansatz projected on B1 changes sign under C4."""
    model = Symmetrized(rbm("float64"), L4, "c4v", character="B1")
    x = generic_configs(1, seed=5)[0]
    out0, out1 = model(x), model(x[model.perms[1]])
    assert out0.dtype == jnp.complex128
    assert abs(np.exp(complex(out1 - out0)) + 1.0) < 1e-12


def test_signed_logsumexp_is_stable():
    logs = jax.lax.complex(jnp.array([900.0, 899.0, 10.0]), jnp.array([0.3, -1.0, 2.0]))
    w = jnp.array([1, -1, 1], dtype=jnp.int32)
    expected = 900.0 + np.log(np.exp(0.3j) - np.exp(-1.0 - 1.0j) + np.exp(-890.0 + 2.0j))
    np.testing.assert_allclose(complex(_signed_logsumexp(logs, w)), expected, rtol=1e-14)


@pytest.mark.parametrize("character,parity", [("A1", 1), ("B2", -1)])
def test_equals_dense_projection(character, parity):
    """On the 4x4 S^z=0 sector psi_sym = sum_g chi_g psi(g x) equals P psi with
    the projector P = (1/|G|) sum_g chi_g U_g (U_g psi)(x) = psi(g^-1 x), up to normalisation."""
    inner = rbm(seed=2)
    model = Symmetrized(inner, L4, "translations+c4v", character=character, spin_parity=parity)
    states = jnp.asarray(SZ0.all_states())
    psi = np.exp(np.asarray(jax.jit(jax.vmap(inner))(states)))
    idx = basis_maps(SZ0, np.asarray(model.perms))
    chars = np.asarray(model.characters)
    flip = flip_map(SZ0)
    # (U_g psi)[k] = psi(g^-1 x_k); g^-1 x_k = x_j  <=>  x_k = g x_j, i.e. k = idx[g, j]

    def project(v):
        out = np.zeros_like(v)
        for g in range(len(chars)):
            ug = np.empty_like(v)
            ug[idx[g]] = v
            out += chars[g] * ug
        return (out + parity * out[flip]) / (2 * len(chars))

    p_psi = project(psi)
    np.testing.assert_allclose(project(p_psi), p_psi, atol=1e-12 * np.abs(p_psi).max())  # P^2 = P
    sym = np.exp(np.asarray(eqx.filter_jit(log_psi_batch)(model, states, chunk_size=512)))
    k = np.argmax(np.abs(p_psi))
    np.testing.assert_allclose(sym * (p_psi[k] / sym[k]), p_psi, atol=1e-10 * np.abs(p_psi).max())


def test_exact_ground_state_sector():
    """The J1-J2 ground state (J2/J1 = 0.5, 4x4 PBC, S^z = 0, no Marshall sign)
    is invariant under all translations and C4v (A1) and under the spin flip."""
    system = J1J2(SZ0, L4, J1=1.0, J2=0.5, marshall_sign=False)
    energy, v = ground_state(system)
    assert energy == pytest.approx(-8.4579233520, abs=1e-8)
    perms, chars = symmetry_group(L4, "translations+c4v", "A1")
    idx = basis_maps(SZ0, perms)
    tol = 1e-8
    for g in range(len(perms)):
        # (U_g v)[idx[g, k]] = v[k]; invariance: v[idx[g]] = chi_g v
        assert np.max(np.abs(v[idx[g]] - chars[g] * v)) < tol
    assert np.max(np.abs(v[flip_map(SZ0)] - v)) < tol
    for other in ("A2", "B1", "B2"):
        _, chi = symmetry_group(L4, "c4v", other)
        pg = symmetry_group(L4, "c4v")[0]
        proj = sum(c * v[i] for c, i in zip(chi, basis_maps(SZ0, pg)))
        assert np.linalg.norm(proj) < 1e-6


def test_vit_eq12_is_fully_translation_invariant():
    """Eq. (12): a ViT summed over the b^2 translations inside a patch and C4v
    (and parity) is invariant under every translation and point-group element."""
    vit = ViT(SZ0, L4, n_layers=1, d_model=8, n_heads=2, key=jax.random.PRNGKey(1))
    vit = eqx.tree_at(lambda m: m.out_w, vit, vit.out_w * 30.0)  # make the test sensitive
    model = Symmetrized(vit, L4, "patch_translations+c4v", spin_parity=1)
    assert model.n_terms == 64
    perms, _ = symmetry_group(L4, "translations+c4v")
    x = SZ0.random_state(jax.random.PRNGKey(6), 1)[0]
    out = jax.jit(jax.vmap(model))(jnp.concatenate([x[perms], -x[None]]))
    np.testing.assert_allclose(np.exp(out - out[0]), 1.0, atol=1e-12)


def test_patch_size_from_the_vit_or_given():
    """`patch_translations` takes the patch side from a ViT inner ansatz, or from
    `patch_size` for any other (the same group either way)."""
    vit = ViT(SZ0, L4, patch_size=2, n_layers=1, d_model=8, n_heads=2, key=jax.random.PRNGKey(1))
    from_vit = Symmetrized(vit, L4, "patch_translations")
    given = Symmetrized(rbm(), L4, "patch_translations", patch_size=2)
    assert from_vit.n_terms == given.n_terms == 4
    np.testing.assert_array_equal(from_vit.perms, given.perms)
    np.testing.assert_array_equal(given.perms, symmetry_group(L4, "patch_translations", patch_size=2)[0])


def test_invalid_groups():
    with pytest.raises(ValueError, match="C4v needs a square"):
        symmetry_group(Square(4, width=2), "c4v")
    with pytest.raises(ValueError, match="periodic"):
        symmetry_group(Square(4, pbc=False), "translations")
    symmetry_group(Square(4, pbc=False), "c4v")  # the point group needs no PBC
    with pytest.raises(ValueError, match="unknown symmetries"):
        symmetry_group(L4, "rotations")
    with pytest.raises(ValueError, match="unknown character"):
        symmetry_group(L4, "c4v", "E")
    assert np.all(symmetry_group(L4, "c4", "B2")[1] == [1, -1, 1, -1])
    with pytest.raises(ValueError, match="only the trivial character"):
        symmetry_group(L4, "translations", "B1")
    with pytest.raises(ValueError, match="patch size"):
        Symmetrized(rbm(), L4, "patch_translations")
    with pytest.raises(ValueError, match="spin_parity"):
        Symmetrized(rbm(), L4, spin_parity=2)
    assert symmetry_group(Chain(6), "translations")[0].shape == (6, 6)


def config(ansatz):
    return {
        "run": {"n_steps": 2, "seed": 3, "exact_energy": "none"},
        "lattice": {"name": "square", "length": 4},
        "space": {"name": "spin_half", "total_sz": 0.0},
        "system": {"name": "j1j2", "J2": 0.5},
        "ansatz": ansatz,
        "sampler": {"name": "metropolis_exchange", "n_samples": 16, "n_chains": 4},
    }


VIT = {"name": "vit", "patch_size": 2, "n_layers": 1, "d_model": 8, "n_heads": 2}


def test_build_from_nested_config():
    calc = build(config({"name": "symmetrized", "symmetries": "translations+c4v", "spin_parity": 1, "inner": VIT}), exact=False, stop_after="ansatz")
    model = calc["ansatz"]
    assert isinstance(model, Symmetrized) and isinstance(model.inner, ViT)
    assert model.n_terms == 256 and model.inner.d_model == 8
    assert calc.config["ansatz"]["inner"]["name"] == "vit" and calc.config["ansatz"]["symmetries"] == "translations+c4v"


def test_with_inner_params_and_init_from(tmp_path):
    """Stage 0 (plain ViT) -> stage 1 (translations) -> stage 2 (all symmetries):
    each stage starts from the last one's checkpoint."""
    shake = lambda m, s: jax.tree.map(lambda a: a + s, parameters(m)[0])  # noqa: E731
    calc0 = build(config(VIT), exact=False)
    state0 = calc0.driver.init(jax.random.PRNGKey(0))
    trained = shake(calc0["ansatz"], 0.25)
    (tmp_path / "stage0").mkdir()
    (tmp_path / "stage1").mkdir()
    save_checkpoint(tmp_path / "stage0", eqx.tree_at(lambda s: s.params, state0, trained), {"step": 7})

    stage1 = {"name": "symmetrized", "symmetries": "patch_translations", "init_from": str(tmp_path / "stage0"), "inner": VIT}
    calc1 = build(config(stage1), exact=False)
    assert eqx.tree_equal(parameters(calc1["ansatz"].inner)[0], trained)
    state1 = calc1.driver.init(jax.random.PRNGKey(1))
    trained1 = jax.tree.map(lambda a: a * 1.5, state1.params)
    save_checkpoint(tmp_path / "stage1", eqx.tree_at(lambda s: s.params, state1, trained1), {"step": 7})

    stage2 = dict(stage1, symmetries="patch_translations+c4v", spin_parity=1, init_from=str(tmp_path / "stage1"))
    model2 = build(config(stage2), exact=False, stop_after="ansatz")["ansatz"]
    assert eqx.tree_equal(parameters(model2)[0].inner, trained1.inner)

    # the same by hand
    fresh = build(config(dict(stage2, init_from=None)), exact=False, stop_after="ansatz")["ansatz"]
    assert not eqx.tree_equal(parameters(fresh)[0], parameters(model2)[0])
    by_hand = with_inner_params(fresh, trained1)
    assert eqx.tree_equal(parameters(by_hand)[0], parameters(model2)[0])
    assert eqx.tree_equal(with_inner_params(fresh, model2.inner), by_hand)
    with pytest.raises(ValueError, match="do not match"):
        with_inner_params(fresh, rbm())
    bad = config({"name": "symmetrized", "init_from": str(tmp_path / "stage0"), "inner": dict(VIT, d_model=4)})
    with pytest.raises(Exception, match="does not fit"):
        build(bad, exact=False, stop_after="ansatz")


@pytest.mark.parametrize("lattice,size", [(Triangular(3), 108), (Honeycomb(2), 48), (Kagome(2), 48), (Chain(6), 12)], ids=repr)
def test_lattice_point_group_projection(lattice, size):
    """`translations+point_group` takes the whole space group from the lattice: a
    group of permutations, and the projected ansatz is invariant under every element."""
    perms, chars = symmetry_group(lattice, "translations+point_group")
    assert perms.shape == (size, lattice.n_sites) and np.all(chars == 1)
    assert len({p.tobytes() for p in perms}) == size
    index = {p.tobytes() for p in perms}
    assert all(perms[h][perms[g]].tobytes() in index for g in range(0, size, 5) for h in range(0, size, 3))
    space = SpinHalf(lattice.n_sites)
    model = Symmetrized(rbm(space=space, seed=4), lattice, "translations+point_group")
    x = space.random_state(jax.random.PRNGKey(2), 1)[0]
    out = jax.jit(jax.vmap(model))(x[perms])
    np.testing.assert_allclose(np.exp(out - out[0]), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="only the trivial character"):
        symmetry_group(lattice, "point_group", "B1")
