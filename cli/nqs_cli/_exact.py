"""`nqs exact`: the exact answer of a config's system (spectrum, sectors, ground-state
observables; with `--evolve` the exact time evolution of a TDVP config)."""

from __future__ import annotations

import json
import pathlib
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import SetOption, UserError, console, entry_labels, err_console, load, registry

#: From this many states on, a spinner on stderr shows the stage (on a terminal).
SPINNER_STATES = 1 << 14


def exact(
    config: pathlib.Path = typer.Argument(..., help="TOML config; its lattice, space, system and observables tables are used."),
    set_: Optional[List[str]] = SetOption,
    n_states: int = typer.Option(1, "--n-states", "-k", min=1, help="How many of the lowest eigenvalues to print (degenerate ones repeated)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: energies, gap, sectors, observables, the system."),
    save: Optional[pathlib.Path] = typer.Option(None, "--save", help="Write the exact ground state into this directory (for `nqs measure DIR` and nqs_core.load_exact)."),
    digits: Optional[int] = typer.Option(None, "--digits", min=0, max=17, help="Decimals to print (default: the full float64 value, repr)."),
    evolve: bool = typer.Option(False, "--evolve", help="Evolve the initial state of a TDVP config (driver tdvp) exactly: energy and observables at its output times (table, --json, --save DIR)."),
    max_dt: float = typer.Option(1e-3, "--max-dt", help="With --evolve: the longest sub-step while a scheduled coupling changes (exponential midpoint rule, error ~ max_dt^2)."),
):
    """Exact spectrum of the config's system: lowest eigenvalues, gap, sectors, ground-state observables.

    With --evolve: the exact time evolution of a TDVP config (the reference for `nqs run` of it)."""
    from nqs_core import build, exact_from_config

    reg = registry()
    cfg = load(config, set_ or [])
    show = repr if digits is None else (lambda v: f"{v:.{digits}f}")
    if evolve:
        if n_states != 1:
            raise UserError("--n-states is for the spectrum; --evolve prints the energy and observables against t")
        _evolution(cfg, reg, json_out, save, show, max_dt)
        return
    if max_dt != 1e-3:
        raise UserError("--max-dt is for --evolve (the exact time evolution of a TDVP config)")
    if "system" not in cfg:  # a driver with its own problem (e.g. the deuteron): its own exact reference
        calc = build(cfg, registry=reg, exact=False)
        name = calc.config["driver"]["name"]
        value = getattr(calc.driver, "exact_energy", None)
        if value is None or calc.driver.objective != "energy":
            raise UserError(
                f"the config has no [system] table and the {name} driver gives no exact reference; "
                "`nqs exact` diagonalises a config's [system] (see `nqs list system`)"
            )
        if save is not None:
            raise UserError(f"the {name} driver's exact reference is a number, not a state; --save needs a [system] table")
        if json_out:
            print(json.dumps({"ground_energy": float(value), "source": f"the {name} driver's own exact reference"}))
        else:
            console.print(f"E0 = {show(float(value))}   (the {name} driver's own exact reference)", highlight=False)
        return
    with _progress() as say:
        state = exact_from_config(cfg, n_states, registry=reg, progress=say)
        if state.observables:
            say(f"measuring {len(state.observables)} observable(s) on the ground state")
        values = state.measure() if state.observables else None
    if state.degeneracy > 1 and state.observables:
        _warn(
            f"the ground state is degenerate ({state.degeneracy} levels at E0 found); the observables are those of "
            f"the ground state of sector {state.ground_sector.name()}"
        )
    if save is not None:
        state.save(save)
    if json_out:
        out = state.summary(values)
        if save is not None:
            out["saved"] = str(save)
        print(json.dumps(out, allow_nan=False))
        return
    _print(state, values, show)
    if save is not None:
        console.print(f"Wrote the exact state to {escape(str(save))} (measure it with `nqs measure {escape(str(save))}`)", highlight=False)


class _progress:
    """A spinner on stderr naming the stage, for large spaces on a terminal."""

    def __enter__(self):
        self.status = None

        def say(line: str) -> None:
            if self.status is None and err_console.is_terminal and _states(line) >= SPINNER_STATES:
                self.status = err_console.status(escape(line))
                self.status.start()
            if self.status is not None:
                self.status.update(escape(line))

        return say

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.stop()


def _states(line: str) -> int:
    """The number of states named in the first progress line (`listing N states`)."""
    words = line.split()
    return int(words[1]) if len(words) > 1 and words[0] == "listing" and words[1].isdigit() else 0


def _warn(message: str) -> None:
    err_console.print("[yellow]nqs: warning:[/] " + escape(message), highlight=False, soft_wrap=True)


def _print(state, values, show) -> None:
    import numpy as np

    e0 = state.ground_energy
    n_sites = int(state.configurations[0].size)
    console.print(f"E0 = {show(e0)}   per site {show(e0 / n_sites)}", highlight=False)
    d = state.description
    what = ", ".join(f"{t} {d[t].get('name')}" for t in ("system", "lattice", "space") if isinstance(d.get(t), dict))
    console.print(f"{escape(what)}: {n_sites} sites, {len(state.vector)} states", highlight=False)
    if state.not_conserved:
        console.print(f"The Hamiltonian does not conserve {', '.join(state.not_conserved)} (it has matrix elements "
                      "between sectors): the spectrum is that of the whole space.", highlight=False)
    table = Table(title=f"lowest {len(state.energies)} energies")
    for col in ("n", "E", "E - E0"):
        table.add_column(col, justify="right")
    for k, e in enumerate(state.energies):
        table.add_row(str(k), show(float(e)), show(float(e - e0)))
    console.print(table)
    deg = state.degeneracy
    if deg > 1:
        console.print(f"Ground state: degenerate, {deg} levels at E0 (the state kept is that of sector "
                      f"{state.ground_sector.name()})", highlight=False)
    else:
        console.print(f"Ground state: unique{'' if not state.conserved else ', in sector ' + state.ground_sector.name()}", highlight=False)
    if state.gap is not None:
        console.print(f"Gap E1 - E0 = {show(state.gap)}", highlight=False)
    if state.excitation_gap is not None and (state.gap is None or abs(state.excitation_gap - state.gap) > 0):
        console.print(f"First excited level: E0 + {show(state.excitation_gap)}", highlight=False)
    if state.conserved and len(state.sectors) > 1:
        sectors = Table(title=f"sectors ({', '.join(state.conserved)})")
        for col in ("sector", "states", "lowest energies"):
            sectors.add_column(col)
        for s in state.sectors:
            sectors.add_row(s.name(), str(s.n_states), "  ".join(show(float(e)) for e in s.energies))
        console.print(sectors)
    elif state.conserved:
        console.print(f"One sector: {state.sectors[0].name()} ({state.sectors[0].n_states} states)", highlight=False)
    if values:
        from nqs_core import stats_dict

        obs = Table(title="observables (exact ground state)")
        for col in ("observable", "entry", "value"):
            obs.add_column(col)
        for name, st in values.items():
            if name == "energy":
                continue
            dct = stats_dict(st, state.observables.get(name))
            means = np.atleast_1d(dct["mean"])
            labels = entry_labels(state.observables.get(name), np.shape(dct["mean"]))
            for k in range(means.size):
                obs.add_row(name if k == 0 else "", labels[k], show(float(means[k])))
        console.print(obs)


def _evolution(cfg, reg, json_out: bool, save, show, max_dt: float) -> None:
    """`nqs exact CONFIG --evolve`: the table (or JSON) of t, E and the observables."""
    import numpy as np
    from nqs_core import exact_evolution

    with _progress() as say:
        evo = exact_evolution(cfg, registry=reg, progress=say, max_dt=max_dt)
    if save is not None:
        evo.save(save)
    if json_out:
        out = evo.as_dict()
        if save is not None:
            out["saved"] = str(save)
        print(json.dumps(out, allow_nan=False))
        return
    d = evo.description
    what = ", ".join(f"{t} {d[t].get('name')}" for t in ("system", "lattice", "space") if isinstance(d.get(t), dict))
    n_states = len(evo.configurations) if evo.configurations is not None else 0
    console.print(f"Exact {evo.time}-time evolution: {escape(what)}: {d.get('n_sites')} sites, {n_states} states",
                  highlight=False)
    table = Table(title=f"exact {evo.time}-time evolution")
    columns: list[tuple[str, np.ndarray]] = [("t", evo.times), ("E", evo.energy)]
    for name, values in evo.observables.items():
        flat = values.reshape(len(evo.times), -1)
        labels = entry_labels(evo.observable_objects.get(name), values.shape[1:])
        for k in range(flat.shape[1]):
            head = name if flat.shape[1] == 1 else f"{name} {labels[k]}"
            columns.append((head, np.real(flat[:, k])))
            if np.iscomplexobj(values):
                columns.append((f"Im {head}", np.imag(flat[:, k])))
    for head, _ in columns:
        table.add_column(escape(head), justify="right")
    for i in range(len(evo.times)):
        table.add_row(*(f"{float(v[i]):g}" if head == "t" else show(float(v[i])) for head, v in columns))
    console.print(table)
    if save is not None:
        console.print(f"Wrote {escape(str(save))}/evolution.csv, evolution.json and config.toml", highlight=False)
