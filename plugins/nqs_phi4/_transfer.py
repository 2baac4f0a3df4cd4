"""Transfer training (Bedaque and Oh 2024, Sec. III): one control variate per time
slice, each started from the previous slice's network."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._system import Phi4Action
from ._cv import ControlVariate, CVNetwork
from ._observables import correlator_at
from ._train import linear_start, train_control_variate


def transfer_train(
    action: Phi4Action,
    phi_train,
    ts: Sequence[int],
    *,
    hidden: Sequence[int] = (16,),
    odd: bool = True,
    activation: str = "arcsinh",
    reflect: bool = False,
    network: CVNetwork | None = None,
    start: str = "random",
    n_epochs_first: int = 100,
    n_epochs: int = 20,
    key: PRNGKeyArray | None = None,
    callback: Callable[[int, ControlVariate, list], None] | None = None,
    **train_kwargs,
) -> list[ControlVariate]:
    """One control variate per time slice, each initialised from the previous one
    (transfer training, Bedaque and Oh 2024, Sec. III).

    **Arguments:**

    - `action`, `phi_train`: as for `train_control_variate`.
    - `ts`: time separations in training order (e.g. `range(L0 // 2, -1, -1)`).
    - `hidden`, `odd`, `activation`, `reflect`: the `CVNetwork` of the first slice.
    - `network`: start the first slice from this network instead (e.g. a trained one).
    - `start`: `"random"` (Bedaque and Oh 2024) or `"linear"` (`linear_start` for the first slice).
    - `n_epochs_first`: epochs for the first slice; `n_epochs`: for every later one.
    - `key`: PRNG key (initial weights and shuffling).
    - `callback(t, cv, history)`: called after each slice.
    - `train_kwargs`: passed to `train_control_variate` (`delta`, `batch_size`,
      `learning_rate`, `refit_every`, ...).

    **Returns:** the trained control variates, in the order of `ts`.
    """
    if start not in ("random", "linear"):
        raise ValueError(f"start must be 'random' or 'linear', got {start!r}")
    key = jax.random.PRNGKey(0) if key is None else key
    key, sub = jax.random.split(key)
    net = network if network is not None else CVNetwork(*action.shape, hidden=hidden, odd=odd, activation=activation, reflect=reflect, key=sub)
    phi_train = jnp.asarray(phi_train, dtype=jnp.float64)
    out = []
    prev = None
    for i, t in enumerate(ts):
        mu0 = float(np.mean(np.asarray(correlator_at(phi_train, int(t)))))
        cv = ControlVariate(action, net if prev is None else prev.network, int(t), mu=mu0)
        key, sub = jax.random.split(key)
        if i == 0 and start == "linear" and network is None:
            cv = linear_start(cv, phi_train, float(train_kwargs.get("delta", 0.0)), key=sub)
        cv, hist = train_control_variate(cv, phi_train, n_epochs=n_epochs_first if i == 0 else n_epochs, key=sub, **train_kwargs)
        out.append(cv)
        prev = cv
        if callback is not None:
            callback(int(t), cv, hist)
    return out
