"""Analysis of raw and control-variate-improved correlators: estimates, fits, plots,
and files for trained control variates."""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._system import Phi4Action
from ._cv import ControlVariate, CVNetwork
from ._fit import fit_correlator
from ._observables import correlator, jackknife


def save_control_variates(path, cvs: Sequence[ControlVariate], hidden: Sequence[int], activation: str = "arcsinh", **meta) -> pathlib.Path:
    """Save trained control variates (one network per time slice) to one npz file.

    **Arguments:**

    - `path`: output file.
    - `cvs`: the control variates (same action and network architecture).
    - `hidden`, `activation`: the architecture (stored so that `load_control_variates`
      can rebuild it).
    - `meta`: extra JSON-serialisable metadata (training settings, ratios, ...).
    """
    if not cvs:
        raise ValueError("cvs is empty")
    a = cvs[0].action
    head = {
        "L0": a.shape[0],
        "L1": a.shape[1],
        "m2": a.m2,
        "lam": a.lam,
        "ts": [cv.t for cv in cvs],
        "hidden": [int(h) for h in hidden],
        "odd": cvs[0].network.odd,
        "reflect": cvs[0].network.reflect,
        "activation": activation,
        "meta": meta,
    }
    leaves = jax.tree.leaves([(cv.network, cv.mu) for cv in cvs])
    path = pathlib.Path(path)
    np.savez(path, header=np.array(json.dumps(head)), **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)})
    return path


def load_control_variates(path) -> tuple[list[ControlVariate], dict]:
    """Load `(control variates, header)` written by `save_control_variates`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"control-variate file not found: {path}")
    with np.load(path, allow_pickle=False) as f:
        if "header" not in f:
            raise ValueError(f"{path} is not a control-variate file (no header)")
        head = json.loads(str(f["header"]))
        leaves = [jnp.asarray(f[f"leaf_{i}"]) for i in range(len(f.files) - 1)]
    action = Phi4Action(L0=head["L0"], L1=head["L1"], m2=head["m2"], lam=head["lam"])
    template = []
    for t in head["ts"]:
        net = CVNetwork(head["L0"], head["L1"], hidden=head["hidden"], odd=head["odd"], activation=head["activation"],
                         reflect=head.get("reflect", False), key=jax.random.PRNGKey(0))
        template.append((net, jnp.zeros((), dtype=jnp.float64)))
    treedef = jax.tree.structure(template)
    pairs = jax.tree.unflatten(treedef, leaves)
    cvs = [ControlVariate(action, net, t, mu=mu) for (net, mu), t in zip(pairs, head["ts"])]
    return cvs, head


def correlator_table(phi, cvs: Sequence[ControlVariate] = (), *, t_min: int = 1, t_max: int | None = None, n_bins: int = 200) -> dict:
    """Raw and improved correlators with jackknife errors and the fits of Eq. 17.

    Time slices `t = 0 .. L0/2` (the others repeat them). Where a control variate for
    `t` is given, the improved estimate is the mean of `O(t) - f_t` over all
    configurations; elsewhere the raw `O(t)`.

    **Arguments:**

    - `phi`: configurations `(N, L0, L1)`, in Monte Carlo order.
    - `cvs`: trained control variates (any subset of time slices).
    - `t_min`, `t_max`: fit range (default `1 .. L0/2`).
    - `n_bins`: jackknife bins.

    **Returns:** a dict with `t`, `raw` and `cv` (each `C`, `err`, `fit` as a dict, the
    full covariance omitted), and `error_ratio` per `t`.
    """
    phi = jnp.asarray(phi, dtype=jnp.float64)
    L0 = phi.shape[1]
    half = L0 // 2
    t_max = half if t_max is None else t_max
    if not 0 <= t_min < t_max <= half:
        raise ValueError(f"need 0 <= t_min < t_max <= L0/2 = {half}, got t_min={t_min}, t_max={t_max}")
    ts = np.arange(half + 1)
    raw = np.asarray(correlator(phi))[:, : half + 1]
    imp = raw.copy()
    for cv in cvs:
        if cv.t <= half:
            imp[:, cv.t] = np.asarray(cv.improved(phi))
    n_bins = min(n_bins, phi.shape[0])
    out = {"t": ts.tolist(), "n_configurations": int(phi.shape[0]), "cv_slices": sorted(cv.t for cv in cvs)}
    sel = slice(t_min, t_max + 1)
    for name, data in (("raw", raw), ("cv", imp)):
        c, err, cov = jackknife(data, n_bins=n_bins)
        fit = fit_correlator(ts[sel], c[sel], cov[sel, sel], L0)
        out[name] = {"C": c.tolist(), "err": err.tolist(), "fit": fit.to_dict()}
    out["error_ratio"] = (np.asarray(out["raw"]["err"]) / np.asarray(out["cv"]["err"])).tolist()
    out["fit_range"] = [int(t_min), int(t_max)]
    return out


def plot_correlators(table: dict, path, reference: dict | None = None) -> pathlib.Path:
    """Fig. 3 style: correlators with fits (left) and their errors (right), raw vs CV.
    `reference` may be another `correlator_table` (e.g. high statistics) drawn as well."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._fit import cosh_model

    t = np.asarray(table["t"], dtype=float)
    L0 = 2 * int(t[-1]) if len(t) > 1 else 2
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = [("raw", table["raw"], "C0", -0.15), ("CV", table["cv"], "C3", 0.15)]
    if reference is not None:
        series.append((f"raw, N = {reference['n_configurations']}", reference["raw"], "k", 0.0))
    tt = np.linspace(0, t[-1], 200)
    for label, d, col, dx in series:
        fit = d["fit"]
        lab = label if label != "raw" and label != "CV" else f"{label}, N = {table['n_configurations']}"
        ax1.errorbar(t + dx, d["C"], yerr=d["err"], fmt="o", ms=3, color=col, capsize=2, label=f"{lab}: m = {fit['m']:.4f}({fit['m_err']:.4f})")
        ax1.plot(tt, cosh_model(tt, fit["A"], fit["m"], L0), color=col, lw=0.8)
        ax2.semilogy(t, d["err"], "o-", ms=3, color=col, label=lab)
    ax1.set_yscale("log")
    ax1.set_xlabel("t")
    ax1.set_ylabel("C(t)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("t")
    ax2.set_ylabel("error of C(t)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
