import jax
import jax.numpy as jnp
import numpy as np

from nqs_core import batch_apply, n_real_parameters, real_ravel


def test_real_ravel_roundtrip():
    params = {"a": jax.lax.complex(jnp.arange(3.0), jnp.arange(3.0, 6.0)), "b": jnp.ones((2, 2))}
    vec, unravel = real_ravel(params)
    assert vec.dtype == jnp.float64
    assert vec.shape == (10,)
    back = unravel(vec)
    np.testing.assert_array_equal(back["a"], params["a"])
    np.testing.assert_array_equal(back["b"], params["b"])
    # real part block then imaginary part block for a complex leaf
    np.testing.assert_array_equal(vec[:6], np.array([0, 1, 2, 3, 4, 5.0]))


def test_batch_apply_chunks_agree(key):
    xs = jax.random.normal(key, (37, 3))
    def f(x):
        return jnp.sum(x**2)
    np.testing.assert_allclose(batch_apply(f, xs, 8), batch_apply(f, xs, None))


def test_n_real_parameters():
    from nqs_networks import RBM
    from nqs_core._space import AbstractDiscreteSpace

    class Toy(AbstractDiscreteSpace):
        n: int = 4
        shape = property(lambda self: (self.n,))
        dtype = property(lambda self: jnp.float64)
        local_states = property(lambda self: (-1.0, 1.0))
        n_states = property(lambda self: 2**self.n)

        def random_state(self, key, n):
            return jax.random.choice(key, jnp.array([-1.0, 1.0]), (n, self.n))

        def all_states(self):
            return np.array(np.meshgrid(*[[-1.0, 1.0]] * self.n, indexing="ij")).reshape(self.n, -1).T

    m = RBM(Toy(), alpha=2, param_dtype="complex128", key=jax.random.PRNGKey(0))
    assert n_real_parameters(m) == 2 * (8 * 4 + 8 + 4)
