"""Hamiltonian, exact Laplacian, ansatz symmetry and representability, pre-training."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_continuum import (
    EquivariantSlater,
    Particles1D,
    TrappedFermions1D,
    ho_orbitals,
    pretrain_to_ho,
)


def _local_energy_hessian(system, log_psi, x):
    """Reference local energy with the full Hessian (O(A^2) memory, A reverse passes)."""
    lap = jnp.trace(jax.hessian(log_psi)(x))
    g = jax.grad(log_psi)(x)
    return -0.5 * (lap + g @ g) + system.potential(x)


def _laplacian_fd(f, x, h=2e-3):
    """Sixth-order central finite-difference Laplacian from values of `f`
    (error ~ h^6 f^(8) + 10 eps |f| cond / h^2: about 1e-7 for log|det| near nodes)."""
    c = np.array([1 / 90, -3 / 20, 3 / 2, -49 / 18, 3 / 2, -3 / 20, 1 / 90])
    out = 0.0
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        vals = np.array([float(f(x + k * e)) for k in range(-3, 4)])
        out += float(c @ vals) / (h * h)
    return out


def _laplacian_fd_of_gradient(grad, x, h=1e-3):
    """Central differences of the exact gradient, `sum_i d(g_i)/dx_i`: the
    fourth-order stencil at `h` and `h/2`, Richardson-extrapolated (truncation
    O(h^6), round-off ~ eps |g| / h: about 1e-10 here)."""

    def stencil(h):
        out = 0.0
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h
            gm2, gm1, gp1, gp2 = (float(grad(x + k * e)[i]) for k in (-2, -1, 1, 2))
            out += (gm2 - 8 * gm1 + 8 * gp1 - gp2) / (12 * h)
        return out

    return (16.0 * stencil(0.5 * h) - stencil(h)) / 15.0


def test_potential(key):
    system = TrappedFermions1D(Particles1D(3), V0=2.0, sigma0=0.7)
    x = jnp.array([0.1, -0.4, 1.3])
    pref = 2.0 / (math.sqrt(2 * math.pi) * 0.7)
    d = [0.5, 1.2, 1.7]
    want = 0.5 * (0.01 + 0.16 + 1.69) + pref * sum(math.exp(-(t * t) / (2 * 0.49)) for t in d)
    assert abs(float(system.potential(x)) - want) < 1e-13


@pytest.fixture(scope="module")
def random_net():
    space = Particles1D(4)
    model = EquivariantSlater(space, hidden=8, n_layers=2, n_dets=2, init="random", key=jax.random.PRNGKey(3))
    system = TrappedFermions1D(space, V0=-3.0, sigma0=0.5)
    xs = jax.random.normal(jax.random.PRNGKey(4), (3, 4))
    return model, system, xs


def _signed(model):
    """The same network with the complex signed output."""
    space = Particles1D(model.n_particles)
    return EquivariantSlater(
        space, model.hidden, model.n_layers, model.n_dets, model.activation, model.init, signed=True, key=jax.random.PRNGKey(3)
    )


def test_laplacian_matches_full_hessian_and_finite_differences(random_net):
    model, system, xs = random_net
    fast = jax.jit(jax.vmap(lambda x: system.local_energy(model, x)))(xs)
    ref = jax.jit(jax.vmap(lambda x: _local_energy_hessian(system, model, x)))(xs)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-10)
    f = jax.jit(lambda v: model(v))
    grad = jax.jit(jax.grad(lambda v: model(v)))
    laps = jax.jit(jax.vmap(lambda x: jnp.trace(jax.hessian(model)(x))))(xs)
    for x, e, lap in zip(np.asarray(xs), np.asarray(fast), np.asarray(laps)):
        g = np.asarray(grad(x))
        pot = float(system.potential(jnp.asarray(x)))
        # relative to the size of the kinetic terms (|lap| reaches 3e3 near a node)
        scale = max(1.0, abs(lap) + g @ g)
        e_fd = -0.5 * (_laplacian_fd_of_gradient(grad, x) + g @ g) + pot
        assert abs(e - e_fd) < 1e-8 * scale
        # plain finite differences of log|psi| values: limited by round-off near nodes
        e_fd0 = -0.5 * (_laplacian_fd(f, x) + g @ g) + pot
        assert abs(e - e_fd0) < 1e-6 * scale


def test_signed_output_laplacian_is_the_same(random_net):
    model, system, xs = random_net
    signed = _signed(model)
    a = jax.jit(jax.vmap(lambda x: system.local_energy(model, x)))(xs)
    b = jax.jit(jax.vmap(lambda x: system.local_energy(signed, x)))(xs)
    np.testing.assert_allclose(np.real(b), a, atol=1e-12)
    np.testing.assert_allclose(np.imag(b), 0.0, atol=1e-12)


def test_antisymmetry_and_sign(random_net):
    model, _, xs = random_net
    x = xs[0]
    perm = jnp.array([1, 0, 2, 3])
    cyc = jnp.array([1, 2, 3, 0])  # odd permutation (3-cycle... 4-cycle is odd)
    l0, s0 = model.log_abs_and_sign(x)
    for p, parity in ((perm, -1.0), (cyc, -1.0), (jnp.array([1, 2, 0, 3]), 1.0)):
        l1, s1 = model.log_abs_and_sign(x[p])
        assert abs(float(l1 - l0)) < 1e-12
        assert float(s1 * s0) == parity
    signed = _signed(model)
    z0, z1 = signed(x), signed(x[perm])
    assert abs(float(jnp.real(z0 - z1))) < 1e-12
    assert abs(abs(float(jnp.imag(z0 - z1))) - math.pi) < 1e-12
    # equivariance of the orbitals: permuting particles permutes columns
    np.testing.assert_allclose(model.orbitals(x[perm]), model.orbitals(x)[:, :, perm], atol=1e-12)


def test_free_fermions_exactly_represented():
    """The HO-initialised ansatz is the free ground state: E_loc = A^2/2 at every point."""
    for a in (2, 3, 5):
        space = Particles1D(a)
        model = EquivariantSlater(space, hidden=4, n_layers=1, key=jax.random.PRNGKey(a))
        system = TrappedFermions1D(space)
        xs = 1.5 * jax.random.normal(jax.random.PRNGKey(10 + a), (32, a))

        @jax.jit
        def check(xs):
            eloc = jax.vmap(lambda x: system.local_energy(model, x))(xs)
            # and it is the HO Slater determinant (up to normalisation)
            log_ratio = jax.vmap(model)(xs) - jax.vmap(lambda x: jnp.linalg.slogdet(ho_orbitals(x, a))[1])(xs)
            return eloc, log_ratio

        eloc, log_ratio = check(xs)
        assert float(jnp.max(jnp.abs(eloc - 0.5 * a * a))) < 1e-6, a
        assert float(jnp.var(eloc)) < 1e-10, a
        assert float(jnp.max(jnp.abs(log_ratio - log_ratio[0]))) < 1e-10, a


def test_pretraining_reaches_ho_orbitals():
    space = Particles1D(3)
    model = EquivariantSlater(space, hidden=8, init="random", key=jax.random.PRNGKey(7))
    trained, losses = pretrain_to_ho(model, jax.random.PRNGKey(8), n_steps=300, learning_rate=1e-2)
    assert losses[-1] < 1e-3 * losses[0]
    system = TrappedFermions1D(space)
    xs = jax.random.normal(jax.random.PRNGKey(9), (256, 3))
    eloc = eqx.filter_jit(lambda m, xs: jax.vmap(lambda x: system.local_energy(m, x))(xs))
    before, after = eloc(model, xs), eloc(trained, xs)
    # local energies at arbitrary points collapse towards the free value 4.5
    assert float(jnp.std(after)) < 0.1 * float(jnp.std(before))
    assert abs(float(jnp.median(after)) - 4.5) < 0.05


def test_argument_errors(key):
    space = Particles1D(2)
    with pytest.raises(ValueError, match="activation"):
        EquivariantSlater(space, activation="relu6", key=key)
    with pytest.raises(ValueError, match="init"):
        EquivariantSlater(space, init="zeros", key=key)
    with pytest.raises(ValueError, match="n_dets"):
        EquivariantSlater(space, n_dets=0, key=key)
    with pytest.raises(TypeError, match="Particles1D"):
        TrappedFermions1D(object())
    with pytest.raises(ValueError, match="sigma0"):
        TrappedFermions1D(space, sigma0=-1.0)
    with pytest.raises(ValueError, match="n_particles"):
        Particles1D(0)
    with pytest.raises(ValueError, match="shape"):
        EquivariantSlater(space, key=key)(jnp.zeros(3))


def test_no_backbone_is_pure_network(key):
    space = Particles1D(3)
    m = EquivariantSlater(space, hermite_backbone=False, init="random", key=key)
    assert m.backbone is None and not m.hermite_backbone
    assert np.isfinite(float(m(jnp.array([0.1, 0.5, -0.3]))))
    assert nqs_core.n_real_parameters(m) < nqs_core.n_real_parameters(EquivariantSlater(space, init="random", key=key))
