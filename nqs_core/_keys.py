"""The random-key streams of a run, named in one place so that no two meet.

Every random number of `nqs run` derives from `[run] seed` through one of
these streams (`jax.random.fold_in` of the root key `PRNGKey(seed)`):

- the component tables: `table_key(root, index)`, `index` the table's place in
  `COMPONENT_TABLES` (0-8), and within a table its nested components;
- the driver's run (its `init`): `driver_key(seed)`, the stream `DRIVER = 1000`
  (what VMC has always used);
- the `[observables]` tables: `observable_key(root, i)`, the `i`-th observable
  of the stream `OBSERVABLES = 2000` (before issue 28 observable 0 got the
  driver's key);
- the example samples a preconditioner is set up with:
  `example_samples_key(key)` of the driver's key.
"""

from __future__ import annotations

import jax

#: stream of the driver's run key
DRIVER = 1000
#: stream of the observables' keys
OBSERVABLES = 2000
#: sub-stream of the driver key for the example samples of `init`
EXAMPLE_SAMPLES = 0x5EED


def table_key(root: jax.Array, index: int) -> jax.Array:
    """The key of the component table at `index` in `COMPONENT_TABLES`."""
    return jax.random.fold_in(root, index)


def nested_key(key: jax.Array, position: int) -> jax.Array:
    """The key of a component nested in a table (its field's position among
    the arguments built so far, plus 1) from the table's key."""
    return jax.random.fold_in(key, position)


def driver_key(seed: int) -> jax.Array:
    """The key `nqs run` passes to the driver's `init` for `[run] seed`."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), DRIVER)


def observable_key(root: jax.Array, index: int) -> jax.Array:
    """The key of the `index`-th `[observables]` table."""
    return jax.random.fold_in(jax.random.fold_in(root, OBSERVABLES), index)


def example_samples_key(key: jax.Array) -> jax.Array:
    """The key of the example samples a driver's `init` draws from its run key."""
    return jax.random.fold_in(key, EXAMPLE_SAMPLES)
