"""The exact cross-check of a Monte Carlo result on a space small enough to enumerate.

At the end of a Monte Carlo run the sampled energy (and the `[observables]`)
are compared with the full sum over every configuration, for the same final
parameters (`nqs_core.FullSumState`, `nqs_core.expect`). Sampling that never
visited a part of the space holding weight (non-ergodic chains) gives a
confident estimate with a small error bar that this comparison exposes.

The rule: a sampled mean `m +- e` disagrees with the exact `x` when

    |m - x| > n_sigma * e + rtol * max(|x|, 1)

with `n_sigma = 5` and `rtol = 1e-6` (the floor keeps rounding, and an error
bar of 0 on a constant observable, from failing an exact agreement). Five
error bars leave a false alarm probability below 1e-6 for an honest Gaussian
estimate; with `k` observables entries checked, the energy is still the one
that matters most.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ._driver_protocol import AbstractSamplingDriver
from ._fullsum import FullSumState, check_enumerable
from ._observable import draws_exact, expect_many
from ._space import AbstractDiscreteSpace
from ._system import AbstractHamiltonian
from ._validate import MemoryLimitError

#: Error bars of tolerated disagreement.
N_SIGMA = 5.0
#: Relative floor of the tolerated disagreement (times `max(|exact|, 1)`).
RTOL = 1e-6


def disagrees(mean, error, exact, n_sigma: float = N_SIGMA, rtol: float = RTOL) -> np.ndarray:
    """Entry by entry: `|mean - exact| > n_sigma * error + rtol * max(|exact|, 1)`
    (NaN errors count as disagreement: no honest error bar)."""
    mean, error, exact = (np.asarray(a, dtype=float) for a in (mean, error, exact))
    tol = n_sigma * np.where(np.isfinite(error), error, 0.0) + rtol * np.maximum(np.abs(exact), 1.0)
    return ~(np.abs(mean - exact) <= tol) | ~np.isfinite(error)


def _entry(name, sampled, exact) -> dict[str, Any]:
    m, e, x = np.real(np.asarray(sampled.mean)), np.asarray(sampled.error_of_mean), np.real(np.asarray(exact.mean))
    bad = disagrees(m, e, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(m - x) / e
    out = {
        "sampled": _plain(m),
        "error": _plain(e),
        "exact": _plain(x),
        "n_sigma": _plain(z),
        "agrees": not bool(np.any(bad)),
    }
    if np.ndim(m):
        worst = int(np.argmax(np.where(bad, np.abs(m - x), -1.0))) if np.any(bad) else None
        out["worst_entry"] = worst
    return out


def _plain(a):
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        v = float(a)
        return v if math.isfinite(v) else None
    return [(float(v) if math.isfinite(v) else None) for v in a.ravel()]


def skip_reason(driver, max_states: int, state=None) -> str | None:
    """Why the cross-check cannot run for `driver` (else `None`); `state`
    (the final state) tells whether its sampler returns an exact sum."""
    if not isinstance(driver, AbstractSamplingDriver) or not isinstance(driver.system, AbstractHamiltonian):
        return "not a Monte Carlo estimate of an energy"
    sampler = driver.sampler
    if state is not None and draws_exact(driver, state):
        return "the run is a full sum (already exact)"
    if not isinstance(sampler.space, AbstractDiscreteSpace):
        return "continuous space"
    try:
        check_enumerable(sampler.space, max_states, "the exact cross-check")
    except (TypeError, ValueError) as exc:
        return str(exc).split(";")[0]
    return None


def exact_crosscheck(driver, state, energy, observables: Mapping[str, Any], measured: Mapping[str, Any], max_states: int) -> dict[str, Any]:
    """Compare a Monte Carlo run's final estimates with the full sum over the
    same parameters.

    **Arguments:**

    - `driver`: the VMC driver of the run (its `system`, `sampler`, `model(state)`).
    - `state`: the final state (its parameters are summed over).
    - `energy`: the sampled energy `Stats`.
    - `observables`: the `[observables]` (name -> observable) and `measured`
      their sampled `Stats`.
    - `max_states`: the largest space enumerated (`[run] exact_check_max_states`).

    **Returns:** a JSON-ready dict: `status` (`"agrees"`, `"disagrees"` or
    `"skipped: <reason>"`); with a sum, `energy` (`sampled`, `error`,
    `exact`, `n_sigma`, `agrees`), `observables` (the same per observable),
    the `rule` and `n_states`.
    """
    why = skip_reason(driver, max_states, state)
    if why is not None:
        return {"status": f"skipped: {why}"}
    try:
        full = FullSumState(driver.sampler.space, max_states=max_states, system=driver.system)
    except MemoryLimitError as exc:
        return {"status": f"skipped: {exc}"}
    model = driver.model(state)
    targets = {"__energy__": driver.system, **{k: observables[k] for k in measured}}
    exact = expect_many(model, targets, full)
    out = {"rule": f"|sampled - exact| > {N_SIGMA:g} errors + {RTOL:g} max(|exact|, 1)", "n_states": int(full.n_states)}
    out["energy"] = _entry("energy", energy, exact["__energy__"])
    out["observables"] = {k: _entry(k, measured[k], exact[k]) for k in measured}
    ok = out["energy"]["agrees"] and all(v["agrees"] for v in out["observables"].values())
    out["status"] = "agrees" if ok else "disagrees"
    return out


def describe_disagreement(check: Mapping[str, Any]) -> str:
    """One line with both numbers of every quantity that disagrees."""
    parts = []
    entries = [("energy", check.get("energy"))] + list(check.get("observables", {}).items())
    for name, e in entries:
        if not e or e["agrees"]:
            continue
        if isinstance(e["sampled"], list):
            i = e.get("worst_entry") or 0
            parts.append(f"{name}[{i}] sampled {e['sampled'][i]:.8g} ± {e['error'][i]:.2g}, exact sum {e['exact'][i]:.8g}")
        else:
            err = e["error"] if e["error"] is not None else float("nan")
            parts.append(f"{name} sampled {e['sampled']:.8g} ± {err:.2g}, exact sum {e['exact']:.8g}")
    return "; ".join(parts)
