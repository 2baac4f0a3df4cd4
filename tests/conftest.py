import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.PRNGKey(1234)


@pytest.fixture
def keys():
    def make(n, seed=0):
        return jax.random.split(jax.random.PRNGKey(seed), n)

    return make
