import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_core import blocking_error, statistics


def ar1(key, n_chains, n, a):
    """AR(1) chains x_t = a x_{t-1} + sqrt(1-a^2) eps: unit variance, tau_corr = a/(1-a)."""
    eps = jax.random.normal(key, (n, n_chains))

    def f(x, e):
        x = a * x + jnp.sqrt(1 - a**2) * e
        return x, x

    _, xs = jax.lax.scan(f, eps[0], eps[1:])
    return np.asarray(xs.T)


def test_independent_samples(key):
    data = np.asarray(jax.random.normal(key, (16, 4096))) + 3.0
    s = statistics(data)
    n = data.size
    assert abs(float(s.mean) - 3.0) < 4 / np.sqrt(n)
    assert float(s.error_of_mean) == pytest.approx(1 / np.sqrt(n), rel=0.15)
    assert float(s.tau_corr) < 0.2
    assert float(s.R_hat) == pytest.approx(1.0, abs=0.01)
    assert float(s.variance) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("a", [0.5, 0.9])
def test_autocorrelated_error_is_honest(key, a):
    data = ar1(key, 8, 20000, a)
    s = statistics(data)
    tau_exact = a / (1 - a)
    err_exact = np.sqrt((1 + 2 * tau_exact) / data.size)
    assert float(s.tau_corr) == pytest.approx(tau_exact, rel=0.25)
    assert float(s.error_of_mean) == pytest.approx(err_exact, rel=0.25)
    # a naive error ignoring correlations would be far too small
    assert float(s.error_of_mean) > 1.4 * np.sqrt(1 / data.size)


def test_blocking_matches_autocorrelation(key):
    a = 0.8
    x = ar1(key, 1, 2**16, a)[0]
    err_exact = np.sqrt((1 + 2 * a / (1 - a)) / x.size)
    assert blocking_error(x) == pytest.approx(err_exact, rel=0.3)


def test_rhat_flags_unmixed_chains(key):
    data = np.array(jax.random.normal(key, (8, 1000)))
    data[:4] += 1.0
    s = statistics(data)
    assert float(s.R_hat) > 1.1
    # the error bar reflects the scatter of the chain means
    assert float(s.error_of_mean) > 0.1


def test_complex_data_and_jit(key):
    k1, k2 = jax.random.split(key)
    data = jax.lax.complex(jax.random.normal(k1, (4, 256)), 2.0 + jax.random.normal(k2, (4, 256)))
    s = jax.jit(statistics)(data)
    assert abs(complex(s.mean).imag - 2.0) < 0.2
    assert float(s.variance) == pytest.approx(2.0, rel=0.15)
    assert "±" in repr(s) and "R̂" in repr(s)


def test_repr_format():
    s = statistics(np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]] * 2))
    text = repr(s)
    assert text.startswith("4.5")
    assert "σ²=" in text and "τ=" in text
