"""optax optimizers and learning-rate schedules by name."""

from __future__ import annotations

import inspect
from typing import Any

import optax

import nqs_core

SCHEDULES = {
    "constant": optax.constant_schedule,
    "linear": optax.linear_schedule,
    "cosine_decay": optax.cosine_decay_schedule,
    "exponential_decay": optax.exponential_decay,
    "warmup_cosine_decay": optax.warmup_cosine_decay_schedule,
    "polynomial": optax.polynomial_schedule,
}


def make_schedule(spec: float | dict[str, Any]):
    """A float is a constant learning rate; a table `{name = "...", ...}` picks
    an optax schedule (`constant`, `linear`, `cosine_decay`,
    `exponential_decay`, `warmup_cosine_decay`, `polynomial`) with its
    arguments, e.g. `{name = "cosine_decay", init_value = 0.05, decay_steps = 500}`."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return nqs_core.check_positive("learning_rate", spec)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"learning_rate must be a number or a table with a 'name', got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    fn = SCHEDULES[name]
    valid = set(inspect.signature(fn).parameters)
    bad = sorted(set(spec) - valid)
    if bad:
        raise ValueError(f"unknown field(s) {', '.join(bad)} for schedule {name!r}; valid: {', '.join(sorted(valid))}")
    return fn(**spec)


def _clipped(tx, clip_norm):
    """Clip the direction to a global norm before the optimizer (no clipping for None)."""
    if clip_norm is None:
        return tx
    if clip_norm <= 0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    return optax.chain(optax.clip_by_global_norm(clip_norm), tx)


def sgd(learning_rate: float | dict = 0.01, momentum: float | None = None, nesterov: bool = False, clip_norm: float | None = None):
    """Stochastic gradient descent (`optax.sgd`); with SR this is the standard
    natural-gradient step `theta -= lr * direction`.

    **Arguments:** `learning_rate` (number or schedule table), `momentum`, `nesterov`,
    `clip_norm` (cap the global norm of the direction, `optax.clip_by_global_norm`;
    guards natural-gradient steps against rare huge local energies at small M).
    """
    return _clipped(optax.sgd(make_schedule(learning_rate), momentum=momentum, nesterov=nesterov), clip_norm)


def adam(learning_rate: float | dict = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, clip_norm: float | None = None):
    """Adam (`optax.adam`).

    **Arguments:** `learning_rate` (number or schedule table), `b1`, `b2`, `eps`, `clip_norm`.
    """
    return _clipped(optax.adam(make_schedule(learning_rate), b1=b1, b2=b2, eps=eps), clip_norm)


def adamw(learning_rate: float | dict = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4):
    """AdamW (`optax.adamw`): Adam with decoupled weight decay.

    **Arguments:** `learning_rate` (number or schedule table), `b1`, `b2`, `eps`, `weight_decay`.
    """
    return optax.adamw(make_schedule(learning_rate), b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


def rmsprop(learning_rate: float | dict = 1e-3, decay: float = 0.9, eps: float = 1e-8):
    """RMSProp (`optax.rmsprop`).

    **Arguments:** `learning_rate` (number or schedule table), `decay`, `eps`.
    """
    return optax.rmsprop(make_schedule(learning_rate), decay=decay, eps=eps)
