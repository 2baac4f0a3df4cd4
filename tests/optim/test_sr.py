"""SR equals the exact natural-gradient step computed independently."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_core import EnergyEstimator, StepContext, parameters, real_ravel
from nqs_networks import RBM
from nqs_optim import SR
from nqs_spins import Chain, Ising, SpinHalf


def dense_jacobian(model, xs):
    """d log psi / d theta for every real parameter by forward-mode autodiff,
    complex parameters perturbed along 1 and 1j separately (independent of the
    reverse-mode code under test)."""
    params, static = parameters(model)
    leaves, treedef = jax.tree.flatten(params)
    cols = []
    for li, leaf in enumerate(leaves):
        directions = [1.0, 1j] if jnp.iscomplexobj(leaf) else [1.0]
        for d in directions:
            for idx in np.ndindex(leaf.shape):
                tangent = [jnp.zeros_like(l) for l in leaves]
                tangent[li] = tangent[li].at[idx].set(d)

                def f(p):
                    import equinox as eqx

                    m = eqx.combine(jax.tree.unflatten(treedef, p), static)
                    return jax.vmap(m)(xs)

                _, col = jax.jvp(f, (leaves,), (tangent,))
                cols.append(col)
    # order: per leaf, all real directions then all imaginary directions (real_ravel order)
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_sr_equals_exact_natural_gradient(key, dtype, solver):
    n = 8  # 256 configurations: enough distinct samples for a full-rank S
    space = SpinHalf(n_sites=n)
    lattice = Chain(n)
    system = Ising(space=space, lattice=lattice, h=0.7)
    model = RBM(space, alpha=1, param_dtype=dtype, init_std=0.3, key=key)
    m = 1200
    samples = space.random_state(jax.random.PRNGKey(7), m).reshape(4, m // 4, n)
    est = EnergyEstimator()
    estimate = est(model, system, samples)

    direction, _, info = SR(diag_shift=1e-12, solver=solver, rtol=1e-13, atol=1e-13)(StepContext(system, model, samples, estimate, est), None)
    assert int(info["solve_ok"]) == 1
    d_vec, _ = real_ravel(direction)

    # independent dense computation of S and F
    o = dense_jacobian(model, samples.reshape(m, n))
    o = o - o.mean(axis=0)
    eloc = np.asarray(estimate.local_values).reshape(-1)
    s = np.real(o.conj().T @ o) / m
    f = -2 * np.real(o.conj().T @ (eloc - eloc.mean())) / m
    p = s.shape[0]
    assert np.linalg.matrix_rank(s) == p  # full-rank problem
    delta = np.linalg.solve(s, f)
    np.testing.assert_allclose(np.asarray(d_vec), -delta, rtol=1e-6, atol=1e-8)

    # the plain gradient is -F
    g_vec, _ = real_ravel(est.gradient(model, samples, estimate))
    np.testing.assert_allclose(np.asarray(g_vec), -f, rtol=1e-10, atol=1e-12)
