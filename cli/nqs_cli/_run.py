"""`nqs run` and `nqs resume`, and the report both print."""

from __future__ import annotations

import json
import pathlib
from typing import List, Optional

import typer
from rich.markup import escape

from ._common import EXIT_CHECK_FAILED, EXIT_DIVERGED, SetOption, UserError, console, err_console, fail, load, registry

JsonOption = typer.Option(
    False, "--json", help="Print result.json (one JSON object) on stdout; the progress bar, messages and warnings go to stderr. Exit codes unchanged."
)


def run(
    config: Optional[pathlib.Path] = typer.Argument(None, help="TOML config; omit to run the built-in default (TFIM chain L=16, RBM + SR)."),
    set_: Optional[List[str]] = SetOption,
    output: Optional[pathlib.Path] = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<system>-<time>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    profile: bool = typer.Option(
        False, "--profile", help="After the run, time each part of one step (sampling, local energies, log-derivatives, solve, update) and print the split; also RUN_DIR/profile.json."
    ),
    json_out: bool = JsonOption,
):
    """Run a calculation from a TOML config and print the final energy, V-score and observables."""
    import nqs_core

    out = err_console if json_out else console
    registry()
    cfg = load(config, set_ or [])
    if config is None:
        out.print("Running the default problem: TFIM chain L=16, h=1, PBC, RBM(alpha=1) + SR.", highlight=False)
    result = nqs_core.run(cfg, run_dir=output, progress=not quiet, console=out)  # a signal: see guard
    if nqs_core.is_root():
        report(result, json_out)
    if profile:
        table = nqs_core.profile_run(result)
        if nqs_core.is_root():
            out.print(table, highlight=False, markup=False)


def resume(
    run_dir: pathlib.Path = typer.Argument(..., help="A run directory made by `nqs run` (or by a command that builds a config, e.g. `nqs deuteron`)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Run up to this many steps in total (default: the config's n_steps)."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", "-s",
        help="Change a field between stages (repeatable): run.n_steps, optimizer.learning_rate, preconditioner.diag_shift, ...",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_out: bool = JsonOption,
):
    """Continue a run from its last checkpoint (or from step 0 if it was stopped before its first one)."""
    import nqs_core

    check_one_step_count(steps, set_ or [])
    registry()
    out = err_console if json_out else console
    result = nqs_core.resume(run_dir, n_steps=steps, progress=not quiet, console=out, overrides=set_ or [])
    if nqs_core.is_root():
        report(result, json_out)


def check_one_step_count(steps: int | None, overrides: List[str]) -> None:
    """Refuse `--steps` together with `--set run.n_steps=...`: two answers to one
    question, of which one would be ignored (whether or not they agree)."""
    if steps is None:
        return
    for item in overrides:
        if item.split("=", 1)[0].strip() == "run.n_steps":
            raise UserError(
                f"--steps {steps} and --set {item.strip()} both give the total number of steps; give it once "
                "(--steps N is short for --set run.n_steps=N)"
            )


def report(result, json_out: bool = False) -> None:
    """Print the final estimate of a run (with its V-score, the exact reference
    and the exact cross-check when known), its observables as a compact table
    and its run directory; with `json_out` only `result.json` on stdout (the
    rest on stderr). Exit 3 for a run that stopped early, 4 for a result that
    failed the exact cross-check."""
    if json_out:
        print(json.dumps(result.payload, allow_nan=False))
        _verdict(result, err_console)
        return
    e = result.energy
    objective = result.calculation.driver.objective  # "energy" for VMC
    if e is None:
        console.print(f"No final {objective} estimate (n_eval_batches = 0 or the run stopped).")
    else:
        line = f"[bold]{objective.capitalize()}[/]: {escape(str(e))}"
        score = getattr(result, "v_score", None)
        if score is not None:
            line += f"   [bold]V-score[/] {score:.3e} (E_inf = {result.e_inf:.6g})"
        console.print(line, highlight=False, soft_wrap=True)  # one line, also through a pipe (80 columns)
        if result.exact_energy is not None:
            console.print(f"[bold]Exact[/]:  {result.exact_energy:.10f}   {error_vs_exact(result)}", highlight=False)
    check = getattr(result, "exact_check", None) or {}
    if check.get("status") in ("agrees", "disagrees"):
        e_check = check["energy"]
        console.print(
            f"[bold]Exact sum, same parameters[/] ({check['n_states']} states): {e_check['exact']:.10g}   "
            f"sampled {e_check['sampled']:.10g} ± {e_check['error'] if e_check['error'] is not None else float('nan'):.2g}: "
            f"{'agrees' if check['status'] == 'agrees' else 'DISAGREES'}",
            highlight=False, soft_wrap=True,
        )
    observables = getattr(result, "observables", None) or {}
    if observables:
        console.print(escape(observables_table(result)), highlight=False, soft_wrap=True)
    console.print(f"Run directory: {escape(str(result.run_dir))}", highlight=False)
    _verdict(result, console)


def _verdict(result, out) -> None:
    """Exit 3 / 4 (or warn) for a run that stopped early or disagrees with the exact sum."""
    check = getattr(result, "exact_check", None) or {}
    if result.stopped_early:
        reason = result.stop_reason or "a non-finite energy"
        verb = "stopped" if ("sampling froze" in reason or "samples collapsed" in reason or "R-hat" in reason) else "diverged"
        fail(
            f"the run {verb} at {reason}; the checkpoint holds the last good "
            f"step {int(result.state.step)}: continue with a smaller step, e.g. "
            f"`nqs resume {result.run_dir} --set {'optimizer' if 'optimizer' in result.calculation.config else 'driver'}.learning_rate=...`",
            code=EXIT_DIVERGED,
        )
    if check.get("status") == "disagrees":
        import nqs_core

        what = nqs_core.describe_disagreement(check)
        if getattr(result, "failed_exact_check", False):
            fail(
                f"the sampled result disagrees with the exact sum over the same parameters: {what} "
                "(non-ergodic or biased sampling; try parallel tempering or a rule mixture, or set "
                "[run] exact_check = 'warn' to only warn); result.json is flagged",
                code=EXIT_CHECK_FAILED,
            )
        else:
            out.print(f"[bold yellow]warning[/]: the sampled result disagrees with the exact sum: {escape(what)}", highlight=False)


#: Array observables show this many entries in the table (all are in result.json).
SHOWN_ENTRIES = 3


def observables_table(result) -> str:
    """The `[observables]` of a run as compact text, one line per observable:
    a scalar as `mean ± error`, an array as its number of entries, its range
    and its first entries (with their labels); all entries are in result.json
    (`nqs measure RUN` prints them as a table)."""
    payload = result.payload.get("observables", {})
    width = max(len(n) for n in payload)
    lines = [f"Observables (final samples; every entry in {result.run_dir}/result.json, or `nqs measure {result.run_dir}`):"]
    for name, d in payload.items():
        means, errors = d.get("mean"), d.get("error")
        if not isinstance(means, list):
            lines.append(f"  {name:<{width}}  {_pm(means, errors)}")
            continue
        labels = _entry_labels(d, len(means))
        shown = ", ".join(f"{lab}{_pm(m, err)}" for lab, m, err in list(zip(labels, means, errors))[:SHOWN_ENTRIES])
        if len(means) > SHOWN_ENTRIES:
            shown += ", ..."
        finite = [m for m in means if m is not None]
        span = f" in {min(finite):.5g} .. {max(finite):.5g}" if finite else ""
        lines.append(f"  {name:<{width}}  {len(means)} entries{span}: {shown}")
    return "\n".join(lines)


def _pm(mean, error) -> str:
    if mean is None:
        return "nan"
    return f"{mean:.6g} ± {error:.2g}" if error is not None else f"{mean:.6g}"


def _entry_labels(d: dict, n: int) -> list[str]:
    """`r=(1, 0): ` style labels from the coordinates in the payload entry."""
    for key, name in (("quantity", ""), ("r", "r"), ("q_over_pi", "q/pi")):
        values = d.get(key)
        if isinstance(values, list) and len(values) == n:
            return [(f"{name}=" if name else "") + _short(v) + (": " if name else " = ") for v in values]
    return [f"[{k}] " for k in range(n)]


def _short(v) -> str:
    if isinstance(v, list):
        return "(" + ", ".join(f"{float(a):.3g}" for a in v) + ")"
    return str(v) if isinstance(v, str) else f"{float(v):.3g}"


def error_vs_exact(result) -> str:
    """`relative error 1.2e-04`, or the absolute error when the exact energy is 0
    (zero couplings, a graph without edges: the relative error is undefined)."""
    if result.relative_error is not None:
        return f"relative error {result.relative_error:.2e}"
    return f"absolute error {abs(float(result.energy.mean.real) - result.exact_energy):.2e} (exact energy 0)"
