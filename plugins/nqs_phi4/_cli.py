"""`nqs phi4 ...`: generate configurations, train control variates, report correlators."""

from __future__ import annotations

import json
import pathlib
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Lattice phi^4 (Bedaque and Oh 2024): generate configurations, train neural control variates, report correlators.")
app.__doc__ = app.info.help
_out = Console()
_err = Console(stderr=True)


def _fail(msg: str):
    """A problem with the command line: the CLI's error path prints it (`nqs: error: ...`, exit 2)."""
    from nqs_core import ConfigError

    raise ConfigError(msg)


def _hidden(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "0", "none", "linear"):
        return ()
    try:
        h = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        _fail(f"--hidden must be comma-separated widths like '16' or '4,4,4,4,4' (or 'linear'), got {text!r}")
    if any(v < 1 for v in h):
        _fail(f"--hidden widths must be positive, got {text!r}")
    return h


@app.command()
def generate(
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="output npz file"),
    L0: int = typer.Option(40, "--L0", help="time extent"),
    L1: int = typer.Option(10, "--L1", help="spatial extent"),
    m2: float = typer.Option(0.01, "--m2", help="bare mass squared"),
    lam: float = typer.Option(0.1, "--lam", help="quartic coupling lambda"),
    n: int = typer.Option(2000, "--n", help="number of configurations"),
    sampler: str = typer.Option("hmc", help="hmc or metropolis_field"),
    n_chains: int = typer.Option(16, help="independent chains"),
    n_skip: int = typer.Option(20, help="HMC trajectories (or Metropolis sweeps) between stored configurations"),
    n_leapfrog: int = typer.Option(20, help="HMC leapfrog steps per trajectory"),
    n_thermalize: int = typer.Option(500, help="thermalisation trajectories / sweeps"),
    seed: int = typer.Option(0, help="PRNG seed"),
):
    """Sample configurations of exp(-S) and save them (npz: array 'phi' (N, L0, L1) + metadata)."""
    from ._observables import generate_configurations, save_configurations

    kw = {"n_thermalize": n_thermalize}
    if sampler == "hmc":
        kw.update(n_skip=n_skip, n_leapfrog=n_leapfrog)
    elif sampler == "metropolis_field":
        kw.update(n_sweeps=n_skip)
    else:
        _fail(f"--sampler must be 'hmc' or 'metropolis_field', got {sampler!r}")
    try:
        with _err.status(f"sampling {n} configurations on {L0}x{L1} ({sampler})"):
            phi, info = generate_configurations(L0, L1, m2, lam, n, seed=seed, n_chains=n_chains, sampler=sampler, **kw)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    info.update(L0=L0, L1=L1, m2=m2, lam=lam, seed=seed)
    save_configurations(out, phi, **info)
    _out.print(
        f"wrote {phi.shape[0]} configurations to {out}  (acceptance {info['acceptance']:.3f}, "
        f"tau_int[O(L0/2)] = {info['tau_corr_C_half']:.2f}, tau_int[M] = {info['tau_magnetisation']:.2f}, {info['wall_s']:.1f} s)"
    )


def train_config(
    configs: pathlib.Path, phi_shape: tuple[int, int], m2: float, lam: float, *, n_train: int = 1000, t: int | None = None,
    all_t: bool = False, hidden: tuple[int, ...] = (16,), odd: bool = True, reflect: bool = False, start: str = "linear",
    refit_every: int = 5, epochs: int = 100, epochs_transfer: int = 20, batch_size: int = 4, delta: float = 1e-3,
    lr: float | None = 1e-4, decay: str = "constant", seed: int = 0,
) -> dict:
    """The config `nqs phi4 train` runs: the `phi4_cv` driver on the configurations
    file `configs` (`phi_shape = (L0, L1)`, couplings `m2`, `lam`), `[run] n_steps`
    the epochs of all slices (`epochs`, plus `epochs_transfer` per later slice
    with `all_t`) and `[run] seed = seed`.

    **Returns:** the config as nested dicts (what `nqs_core.loads_config` gives).
    """
    L0, L1 = phi_shape
    n_slices = L0 // 2 + 1 if all_t else 1
    driver = {
        "name": "phi4_cv", "configurations": str(configs), "n_train": n_train, "t": -1 if t is None else t, "all_t": all_t,
        "epochs": epochs, "epochs_transfer": epochs_transfer, "hidden": list(hidden), "odd": odd, "reflect": reflect,
        "start": start, "refit_every": refit_every, "batch_size": batch_size, "delta": delta,
        "learning_rate": 0.0 if lr is None or lr <= 0 else lr, "lr_decay": decay if lr is not None and lr > 0 else "constant",
    }
    return {
        "run": {"n_steps": epochs + (n_slices - 1) * epochs_transfer, "seed": seed},
        "space": {"name": "phi4_field", "L0": L0, "L1": L1},
        "system": {"name": "phi4", "m2": float(m2), "lam": float(lam)},
        "driver": driver,
    }


@app.command()
def train(
    configs: pathlib.Path = typer.Argument(..., help="npz file of configurations"),
    out: pathlib.Path = typer.Option(..., "--out", "-o", help="output npz file of trained control variates"),
    m2: Optional[float] = typer.Option(None, "--m2", help="bare mass squared (default: from the file)"),
    lam: Optional[float] = typer.Option(None, "--lam", help="coupling (default: from the file)"),
    n_train: int = typer.Option(1000, help="the first n_train configurations are the training set"),
    t: Optional[int] = typer.Option(None, "--t", help="one time slice (default L0/2)"),
    all_t: bool = typer.Option(False, "--all-t", help="one control variate per t = L0/2 .. 0, transfer-trained"),
    hidden: str = typer.Option("16", help="hidden widths, e.g. '16', '4,4,4,4,4' or 'linear'"),
    odd: bool = typer.Option(True, help="odd network (arcsinh, no biases)"),
    reflect: bool = typer.Option(False, help="average g0 over the lattice reflections (extension)"),
    start: str = typer.Option("linear", help="'linear' (start at the best linear CV) or 'random' (Bedaque and Oh 2024)"),
    refit_every: int = typer.Option(5, help="re-solve the output layer exactly every k epochs (0: plain Adam)"),
    epochs: int = typer.Option(100, help="epochs (first slice)"),
    epochs_transfer: int = typer.Option(20, help="epochs of every later slice with --all-t"),
    batch_size: int = typer.Option(4, help="configurations per gradient step (Bedaque and Oh 2024: 1)"),
    delta: float = typer.Option(1e-3, help="L2 regularisation delta of Bedaque and Oh 2024, Eq. 13"),
    lr: Optional[float] = typer.Option(1e-4, help="Adam learning rate; 0 selects the schedule of Eq. 16"),
    decay: str = typer.Option("constant", help="with --lr: 'constant' or 'cosine' (to lr/100 over each slice's epochs)"),
    seed: int = typer.Option(0, help="PRNG seed"),
    run_dir: Optional[pathlib.Path] = typer.Option(None, "--run-dir", help="Run directory (default: runs/phi4-<time>); `nqs resume RUN_DIR` continues it."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override a field of the built config: table.field=value."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Train neural control variates on a training split; print sigma_raw/sigma_CV on the rest.

    Runs the `phi4_cv` driver of `nqs run` (one step = one epoch) in a run directory."""
    import nqs_core

    from ._analysis import save_control_variates
    from ._observables import load_configurations

    try:
        phi, meta = load_configurations(configs)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    m2 = meta.get("m2") if m2 is None else m2
    lam = meta.get("lam") if lam is None else lam
    if m2 is None or lam is None:
        _fail("the file has no couplings in its metadata: give --m2 and --lam")
    N, L0, L1 = phi.shape
    if not 1 <= n_train < N:
        _fail(f"--n-train must be in [1, {N - 1}] (the rest is held out), got {n_train}")
    if not all_t and t is not None and not 0 <= t <= L0 // 2:
        _fail(f"--t must be in [0, {L0 // 2}], got {t}")
    if decay not in ("constant", "cosine"):
        _fail(f"--decay must be 'constant' or 'cosine', got {decay!r}")
    h = _hidden(hidden)
    cfg = train_config(configs, (L0, L1), m2, lam, n_train=n_train, t=None if all_t else t, all_t=all_t, hidden=h, odd=odd,
                       reflect=reflect, start=start, refit_every=refit_every, epochs=epochs, epochs_transfer=epochs_transfer,
                       batch_size=batch_size, delta=delta, lr=lr, decay=decay, seed=seed)
    cfg = nqs_core.apply_overrides(cfg, set_ or [])
    result = nqs_core.run(cfg, run_dir=run_dir, progress=not quiet, console=_err)
    if result.stopped_early:
        _err.print(f"[bold red]nqs: error:[/] the run stopped at {result.stop_reason}; the checkpoint holds the last good "
                   f"step {int(result.state.step)}: continue with `nqs resume {result.run_dir} --set driver.learning_rate=...`",
                   highlight=False, soft_wrap=True)
        raise typer.Exit(3)
    driver = result.calculation.driver
    slices = driver.summary(result.state)["slices"]
    ratios = {s["t"]: s["variance_ratio"] for s in slices}
    save_control_variates(out, driver.control_variates(result.state), h, configs=str(configs), n_train=n_train,
                          ratios={str(k): v for k, v in ratios.items()})
    _out.print(f"wrote {len(slices)} control variate(s) to {out}; sigma_raw/sigma_CV on held-out configurations: "
               + ", ".join(f"t={k}: {v:.2f}" for k, v in sorted(ratios.items())))
    _out.print(f"run directory {result.run_dir}   (continue: nqs resume {result.run_dir})", highlight=False, soft_wrap=True)


@app.command()
def report(
    configs: pathlib.Path = typer.Argument(..., help="npz file of configurations"),
    cv: Optional[pathlib.Path] = typer.Option(None, "--cv", help="trained control variates (from `nqs phi4 train`)"),
    t_min: int = typer.Option(1, help="first t of the fit"),
    t_max: Optional[int] = typer.Option(None, help="last t of the fit (default L0/2)"),
    n_bins: int = typer.Option(200, help="jackknife bins"),
    plot: Optional[pathlib.Path] = typer.Option(None, help="write a Fig. 3 style plot (png)"),
    json_out: Optional[pathlib.Path] = typer.Option(None, "--json", help="write the table as JSON"),
):
    """Raw and improved correlators with errors, and the correlated mass fit (Eq. 17)."""
    from rich.table import Table

    from ._analysis import correlator_table, load_control_variates, plot_correlators
    from ._observables import load_configurations

    try:
        phi, _ = load_configurations(configs)
        cvs = load_control_variates(cv)[0] if cv is not None else []
        if cvs and cvs[0].action.shape != phi.shape[1:]:
            _fail(f"control variates are for {cvs[0].action.shape}, configurations are {phi.shape[1:]}")
        table = correlator_table(phi, cvs, t_min=t_min, t_max=t_max, n_bins=n_bins)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    tab = Table(title=f"C(t), N = {phi.shape[0]}")
    for col in ("t", "raw", "CV", "err ratio"):
        tab.add_column(col, justify="right")
    for i, tt in enumerate(table["t"]):
        tab.add_row(str(tt), f"{table['raw']['C'][i]:.6f} ± {table['raw']['err'][i]:.6f}",
                    f"{table['cv']['C'][i]:.6f} ± {table['cv']['err'][i]:.6f}", f"{table['error_ratio'][i]:.1f}")
    _out.print(tab)
    from ._fit import FitResult

    for name in ("raw", "cv"):
        d = dict(table[name]["fit"])
        d.pop("chi2_dof")
        _out.print(f"fit {name:3s}: {FitResult(**d)}")
    if plot is not None:
        plot_correlators(table, plot)
        _out.print(f"wrote {plot}")
    if json_out is not None:
        json_out.write_text(json.dumps(table, indent=1))
        _out.print(f"wrote {json_out}")
