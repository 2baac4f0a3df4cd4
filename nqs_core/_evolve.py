"""The exact time evolution of a small discrete system (`nqs exact CONFIG --evolve`):
the reference every TDVP run on a space that exact diagonalisation holds is
checked against.

It reads the TOML of a TDVP run (`[driver] name = "tdvp"`, see the time
evolution page of the docs): the output times (`t_end`, `t_out`), real or
imaginary time (`time`), the initial state (`initial_state`, else `[run]
init_from`, else the ansatz's own initial parameters), the time-dependent
couplings (`[[driver.schedule]]`) and the `[observables]`.

The Hamiltonian is the sparse matrix of `nqs exact` (`nqs_core._spectrum`: every
configuration enumerated, the connected ones looked up among the rows), written
in the system's basis (Marshall-rotated where the system rotates it); the
initial vector, given in the physical basis, is rotated into that basis
(`rotation_diagonal`), the observables are measured there as `nqs exact`
measures them on the ground state (`expect_vector`), and the stored vectors are
rotated back (physical basis, the order of `space.all_states()`).

Integration:

- real time, `i d/dt psi = H psi`: `psi(t') = exp(-i H (t' - t)) psi(t)`;
- imaginary time, `d/dt psi = -H psi`: `psi(t') = exp(-(H - E(t)) (t' - t)) psi(t)`
  renormalised (the shift by the energy of `psi(t)` keeps the numbers finite and
  drops out with the norm);
- the observables: operator observables as sparse matrices built once (one
  product per operator and time), the others as `nqs exact` measures them;
- the exponential times a vector by `scipy.sparse.linalg.expm_multiply`
  (Al-Mohy & Higham 2011, truncated Taylor series with scaling: exact to
  rounding, whatever the step), one call from output time to output time while
  the Hamiltonian does not change;
- with a schedule, `H(t) = H(v0) + sum_f (f(t) - v0_f) (H(v0_f + 1) - H(v0_f))`
  (couplings enter linearly: checked with a third build per field). Each
  interval between output times is cut at the schedule's break points; a piece
  on which every field is constant is one exponential, the others are cut into
  `n = ceil(length / max_dt)` equal sub-steps, each propagated with `H` at its
  midpoint (its exponential by a scaled Taylor series, exact to rounding) (the exponential midpoint rule, the second-order Magnus integrator:
  global error `O(max_dt^2)`; Blanes, Casas, Oteo & Ros 2009, the lowest-order Magnus integrator).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import pathlib
import types
import typing
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._config import SystemBuilder, build, run_memory_limit
from ._fullsum import DEFAULT_MAX_STATES, _content_key
from ._io import CONFIG_FILE, check_run_files, read_log, strict_json, write_text
from ._local_space import local_values_of, values_to_indices
from ._observable import AbstractOperatorObservable
from ._pictures import plot_evolution_records
from ._run_options import ConfigError
from ._schedule import Ramp, parse_schedule, schedule_breaks
from ._spectrum import _check_space, _default_local_values, _matrices, _matrix, _row_index, build_exact, expect_vector, save_dir, spectrum_memory
from ._state import VariationalState, load_state, rotated_sites, rotation_diagonal
from ._toml import load_config, resolved_toml
from ._validate import MemoryLimitError, check_memory, memory_limit

#: The table of an evolution written by `nqs exact --evolve --save` (one row per output time).
EVOLUTION_CSV = "evolution.csv"
#: The same numbers as JSON (`Evolution.as_dict`), read back by `load_evolution`.
EVOLUTION_JSON = "evolution.json"
#: What `Evolution.save` writes into a directory (and may replace there).
EVOLUTION_FILES = (EVOLUTION_CSV, EVOLUTION_JSON, CONFIG_FILE)
#: Default longest sub-step of a time-dependent Hamiltonian (`max_dt`).
DEFAULT_MAX_DT = 1e-3
#: `nqs plot` of a TDVP run draws the exact curve up to this many states.
PLOT_MAX_STATES = 1 << 16
#: The kinds of time of `[driver] time`.
TIMES = ("real", "imaginary")
#: The named product states of `initial_state` (spin 1/2: local amplitudes of (up, down)).
PRODUCT_STATES = {
    "+x": (1.0, 1.0), "-x": (1.0, -1.0), "+y": (1.0, 1j), "-y": (1.0, -1j), "up": None, "down": None,
}
#: Points of the exact curve `nqs plot` draws between 0 and t_end (besides the run's output times).
CURVE_POINTS = 201
#: Imaginary parts below this (relative to max(1, |mean|)) are rounding: the observable is stored real.
_IMAG_RTOL = 1e-12


# -- reading the TDVP config -------------------------------------------------------------


def _number(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def output_times(t_end, t_out) -> np.ndarray:
    """The output times of a TDVP config, as the `tdvp` driver makes them:
    `0, t_out, 2 t_out, ...` (each rounded to 12 decimals) up to `t_end`, and
    `t_end` itself when the interval does not reach it (a shorter last
    interval); `t_out` omitted: `t_end / 100`; or an explicit list of
    increasing times (`0` put in front when missing, `t_end` appended when the
    list stops before it; a time after `t_end` is refused).

    **Arguments:** `t_end` (a positive number; `None` for a list: its last
    time), `t_out` (a positive number, a list of times, or `None`).

    **Returns:** a float64 array, starting at 0. **Raises:** `ConfigError` naming the problem.
    """
    if isinstance(t_out, (list, tuple)):
        times = [_number("[driver] t_out (a list of times): every entry", t) for t in t_out]
        if not times or times[0] != 0.0:
            times = [0.0] + times
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ConfigError(f"[driver] t_out must list increasing times from 0, got {list(t_out)}")
        end = times[-1] if t_end is None else _number("[driver] t_end", t_end)
        if times[-1] > end * (1 + 1e-12):
            raise ConfigError(f"[driver] t_out lists {times[-1]:g}, after t_end = {end:g}; drop it or raise t_end")
        if times[-1] < end * (1 - 1e-12):
            times.append(end)
        return np.asarray(times, dtype=np.float64)
    t_end = 1.0 if t_end is None else _number("[driver] t_end", t_end)
    if t_end <= 0:
        raise ConfigError(f"[driver] t_end must be positive, got {t_end:g}")
    step = t_end / 100 if t_out is None else _number("[driver] t_out", t_out)
    if step <= 0:
        raise ConfigError(f"[driver] t_out must be a positive interval or a list of times, got {t_out!r}")
    n = int(math.floor(t_end / step + 1e-9))
    times = [round(k * step, 12) for k in range(n + 1)]
    if times[-1] < t_end * (1 - 1e-12):
        times.append(t_end)
    return np.asarray(times, dtype=np.float64)


def _driver_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `[driver]` fields the exact evolution reads, checked: `time`,
    `times` (output times), `initial_state`, `schedule` (Ramps)."""
    driver = config.get("driver")
    if not isinstance(driver, dict) or driver.get("name") != "tdvp":
        name = driver.get("name") if isinstance(driver, dict) else None
        raise ConfigError(
            f"nqs exact --evolve reads a time-evolution config ([driver] name = \"tdvp\"); this one's driver is "
            f"{name or 'vmc (the default)'}: set [driver] name = \"tdvp\" with t_end and t_out"
        )
    time = driver.get("time", "real")
    if time not in TIMES:
        raise ConfigError(f"[driver] time must be one of {', '.join(TIMES)}, got {time!r}")
    return {
        "time": time,
        "times": output_times(driver.get("t_end", 1.0), driver.get("t_out")),
        "initial_state": driver.get("initial_state"),
        "schedule": parse_schedule(driver.get("schedule")),
    }


def product_amplitudes(spec, local_dim: int) -> np.ndarray:
    """The normalised local amplitudes of `[driver] initial_state`.

    **Arguments:**

    - `spec`: `"+x"`, `"-x"`, `"+y"`, `"-y"` (spin 1/2: `(1, ±1)/√2`, `(1, ±i)/√2`
      in the local basis (up, down)), `"up"` (the first local state: `σ^z = +1`,
      `S^z = +1/2`; the largest value of a spin-S space), `"down"` (the last),
      or a list of `local_dim` amplitudes, each a number or an `[re, im]` pair.
    - `local_dim`: the number of local states.

    **Returns:** a complex128 array `(local_dim,)` of norm 1.

    **Raises:** `ConfigError` naming the problem.
    """
    if isinstance(spec, str):
        if spec not in PRODUCT_STATES:
            raise ConfigError(
                f"[driver] initial_state {spec!r} is not a product state nqs knows; valid: "
                f"{', '.join(PRODUCT_STATES)}, or a list of {local_dim} local amplitudes ([re, im] for complex ones)"
            )
        if spec in ("up", "down"):
            amps = np.zeros(local_dim, dtype=np.complex128)
            amps[0 if spec == "up" else -1] = 1.0
            return amps
        if local_dim != 2:
            raise ConfigError(
                f"[driver] initial_state = {spec!r} is a spin-1/2 state; this space has {local_dim} local states: "
                f"give a list of {local_dim} local amplitudes"
            )
        amps = np.asarray(PRODUCT_STATES[spec], dtype=np.complex128)
        return amps / np.linalg.norm(amps)
    if not isinstance(spec, (list, tuple)) or len(spec) != local_dim:
        raise ConfigError(
            f"[driver] initial_state must be one of {', '.join(PRODUCT_STATES)} or a list of {local_dim} local "
            f"amplitudes (a number or an [re, im] pair each), got {spec!r}"
        )
    amps = []
    for a in spec:
        if isinstance(a, (list, tuple)) and len(a) == 2:
            amps.append(complex(_number("[driver] initial_state: an amplitude's real part", a[0]),
                                _number("[driver] initial_state: an amplitude's imaginary part", a[1])))
        else:
            amps.append(complex(_number("[driver] initial_state: an amplitude (a number or [re, im])", a)))
    amps = np.asarray(amps, dtype=np.complex128)
    norm = np.linalg.norm(amps)
    if norm == 0:
        raise ConfigError("[driver] initial_state: the local amplitudes are all zero")
    return amps / norm


def product_vector(space, amplitudes: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
    """The product state `prod_i a[j(x_i)]` over the configurations of `space`
    (`space.all_states()`, or `states`), physical basis: the Kronecker product
    of the local amplitudes (normalised when they are).

    **Returns:** a complex128 array `(n_states,)`.
    """
    states = np.asarray(space.all_states() if states is None else states)
    j = values_to_indices(states.reshape(states.shape[0], -1), local_values_of(space))
    return np.prod(np.asarray(amplitudes, dtype=np.complex128)[j], axis=1)


# -- the result --------------------------------------------------------------------------


@typing.final
class Evolution:
    """The exact evolution of a state at the output times of a TDVP config:
    what `exact_evolution` returns and `nqs exact --evolve` prints.

    **Attributes:**

    - `times`: the output times, float64 `(n_t,)`.
    - `energy`: `<psi(t)|H(t)|psi(t)>`, float64 `(n_t,)`; `variance`:
      `<H(t)^2> - E(t)^2`.
    - `observables`: `{name: array (n_t, *shape)}` of the `[observables]`
      (float64, or complex128 where the mean has an imaginary part beyond rounding).
    - `states`: the normalised vectors `(n_t, n_states)` in the physical basis
      and the order of `configurations` (`None` unless asked for: `keep_states`).
    - `configurations`: every configuration of the space (`None` when loaded).
    - `time`: `"real"` or `"imaginary"`.
    - `observable_objects`: the built observables (their `coordinates()`), `{}` when loaded.
    - `config_toml`: the config the evolution was computed from (TOML text).
    """

    def __init__(self, times, energy, variance, observables, time: str, states=None, configurations=None,
                 observable_objects=None, config_toml: str | None = None, description=None):
        self.times = np.asarray(times, dtype=np.float64)
        self.energy = np.asarray(energy, dtype=np.float64)
        self.variance = np.asarray(variance, dtype=np.float64)
        self.observables = {k: np.asarray(v) for k, v in observables.items()}
        self.time = time
        self.states = None if states is None else np.asarray(states)
        self.configurations = None if configurations is None else np.asarray(configurations)
        self.observable_objects = dict(observable_objects or {})
        self.config_toml = config_toml
        self.description = dict(description or {})

    def columns(self) -> dict[str, np.ndarray]:
        """The table of `evolution.csv`: `t`, `energy`, `variance`, then one
        column per observable entry: `NAME` for a scalar, `NAME[k]` for entry `k`
        of an array (flattened), and `NAME_imag` / `NAME[k]_imag` for complex ones."""
        out: dict[str, np.ndarray] = {"t": self.times, "energy": self.energy, "variance": self.variance}
        for name, values in self.observables.items():
            flat = values.reshape(len(self.times), -1)
            keys = [name] if values.ndim == 1 else [f"{name}[{k}]" for k in range(flat.shape[1])]
            for k, key in enumerate(keys):
                out[key] = np.real(flat[:, k])
            if np.iscomplexobj(values):
                for k, key in enumerate(keys):
                    out[key + "_imag"] = np.imag(flat[:, k])
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of `nqs exact --evolve --json` (and `evolution.json`):
        `time`, `times`, `energy`, `variance`, `observables` (`{name: {"mean":
        [per time], "mean_imag": ... when complex, and the observable's coordinates}}`), `system`."""
        obs = {}
        for name, values in self.observables.items():
            entry: dict[str, Any] = {"mean": np.real(values).tolist()}
            if np.iscomplexobj(values):
                entry["mean_imag"] = np.imag(values).tolist()
            o = self.observable_objects.get(name)
            if o is not None:
                entry.update({k: np.asarray(v).tolist() for k, v in o.coordinates().items()})
            obs[name] = entry
        return strict_json({
            "time": self.time, "times": self.times.tolist(), "energy": self.energy.tolist(),
            "variance": self.variance.tolist(), "observables": obs, "system": self.description,
        })

    def save(self, directory) -> pathlib.Path:
        """Write `evolution.csv` (`columns()`), `evolution.json` (`as_dict()`) and
        `config.toml` into `directory` (new, empty, or holding an evolution written
        before, which is replaced; under the directory's lock).

        **Raises:** `ConfigError` for a directory holding other files or in use.
        """
        with save_dir(directory, EVOLUTION_FILES, EVOLUTION_JSON, "nqs exact --evolve --save", "evolution") as directory:
            buffer = io.StringIO()
            table = self.columns()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(list(table))
            for row in zip(*(np.asarray(v).tolist() for v in table.values())):
                writer.writerow([repr(v) for v in row])
            write_text(directory / EVOLUTION_CSV, buffer.getvalue())
            write_text(directory / EVOLUTION_JSON, json.dumps(self.as_dict(), indent=1) + "\n")
            if self.config_toml is not None:
                write_text(directory / CONFIG_FILE, self.config_toml)
        return directory


def load_evolution(directory) -> Evolution:
    """The evolution written by `nqs exact --evolve --save DIR` (`Evolution.save`):
    times, energy, variance and observables from `evolution.json` (no state
    vectors, no observable objects).

    **Raises:** `ConfigError` when the directory holds none or the file is damaged.
    """
    directory = pathlib.Path(directory)
    path = directory / EVOLUTION_JSON
    if not path.is_file():
        raise ConfigError(f"no evolution in {directory} (no {EVOLUTION_JSON}); write one with `nqs exact CONFIG --evolve --save {directory}`")
    check_run_files(directory)
    try:
        data = json.loads(path.read_text())
        obs = {}
        for name, entry in data["observables"].items():
            mean = np.asarray(entry["mean"], dtype=np.float64)
            obs[name] = mean + 1j * np.asarray(entry["mean_imag"], dtype=np.float64) if "mean_imag" in entry else mean
        config = (directory / CONFIG_FILE).read_text() if (directory / CONFIG_FILE).is_file() else None
        return Evolution(data["times"], data["energy"], data["variance"], obs, data["time"], config_toml=config,
                         description=data.get("system"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


# -- the evolution -----------------------------------------------------------------------


def _physics_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` without `[driver]` (the exact evolution builds only the
    tables up to `[system]`, or `[ansatz]`, and `[observables]`)."""
    out = copy.deepcopy(dict(config))
    out.pop("driver", None)
    return out


def _checked_matrix(system, states, index, say, what: str) -> sp.csr_matrix:
    matrix = _matrix(system, states, index, say).astype(np.complex128)
    scale = float(np.max(np.abs(matrix.data))) if matrix.nnz else 1.0
    if matrix.nnz and abs(matrix - matrix.conj().T).max() > 1e-12 * scale:
        raise ConfigError(f"{what} is not Hermitian; nqs exact --evolve evolves with Hermitian Hamiltonians")
    return matrix


class _Hamiltonian:
    """`H(t) = H0 + sum_f (f(t) - v0_f) D_f` as sparse matrices in the system's basis."""

    def __init__(self, h0: sp.csr_matrix, ramps: Sequence[Ramp], base: Sequence[float], slopes: Sequence[sp.csr_matrix]):
        self.h0, self.ramps, self.base, self.slopes = h0, tuple(ramps), tuple(base), tuple(slopes)
        self._norms = [_norm1(h0)] + [_norm1(d) for d in slopes]

    def coefficients(self, t: float) -> list[float]:
        return [ramp.value(t) - v0 for ramp, v0 in zip(self.ramps, self.base)]

    def at(self, t: float) -> sp.csr_matrix:
        h = self.h0
        for c, d in zip(self.coefficients(t), self.slopes):
            if c != 0:
                h = h + c * d
        return h

    def apply(self, t: float):
        """`(v -> H(t) v, a bound on ||H(t)||_1)` without forming `H(t)`."""
        cs = self.coefficients(t)
        bound = self._norms[0] + sum(abs(c) * n for c, n in zip(cs, self._norms[1:]))

        def matvec(v):
            out = self.h0 @ v
            for c, d in zip(cs, self.slopes):
                if c != 0:
                    out = out + c * (d @ v)
            return out

        return matvec, bound

    def constant_on(self, a: float, b: float) -> bool:
        """Whether every field is constant on `(a, b)` (the ramps are linear there)."""
        return all(r.value(a + 0.25 * (b - a)) == r.value(a + 0.75 * (b - a)) for r in self.ramps)

    def breaks(self, a: float, b: float) -> tuple[float, ...]:
        return schedule_breaks(self.ramps, a, b) if self.ramps else ()


def _norm1(m: sp.csr_matrix) -> float:
    return float(abs(m).sum(axis=0).max()) if m.nnz else 0.0


def _step(h: sp.csr_matrix, psi: np.ndarray, dt: float, imaginary: bool) -> np.ndarray:
    """`exp(-i H dt) psi`, or `exp(-(H - E) dt) psi / norm` in imaginary time
    (`scipy.sparse.linalg.expm_multiply`)."""
    if dt <= 0:
        return psi
    if not imaginary:
        return spla.expm_multiply((-1j * dt) * h, psi, traceA=-1j * dt * complex(h.diagonal().sum()))
    e = float(np.real(np.vdot(psi, h @ psi)))
    shifted = h - e * sp.identity(h.shape[0], dtype=h.dtype, format="csr")
    out = spla.expm_multiply((-dt) * shifted, psi, traceA=-dt * complex(shifted.diagonal().sum()))
    return out / np.linalg.norm(out)


def _short_step(matvec, bound: float, psi: np.ndarray, dt: float, imaginary: bool) -> np.ndarray:
    """The same exponential for a short sub-step of a time-dependent `H`: its
    Taylor series summed until the terms fall below rounding, in `s` scaling
    steps with `dt ||H||_1 / s <= 1/2` (the scaling of Al-Mohy & Higham 2011,
    without `expm_multiply`'s norm estimates and matrix copies, which cost more
    than the few products of a short step). Exact to rounding as `_step`."""
    if imaginary:
        e = float(np.real(np.vdot(psi, matvec(psi))))
        factor, shift = -dt, e
        bound = bound + abs(e)
    else:
        factor, shift = -1j * dt, 0.0
    s = max(1, math.ceil(2 * abs(dt) * bound))
    f = factor / s
    for _ in range(s):
        term, out = psi, psi
        for k in range(1, 60):
            term = (f / k) * (matvec(term) - shift * term)
            out = out + term
            if np.linalg.norm(term) <= 1e-17 * np.linalg.norm(out):
                break
        psi = out
    return psi / np.linalg.norm(psi) if imaginary else psi


def _propagate(ham: _Hamiltonian, psi, t0: float, t1: float, max_dt: float, imaginary: bool) -> tuple[np.ndarray, int]:
    """`psi(t1)` from `psi(t0)`: cut at the schedule's break points; constant
    pieces in one exponential, the others in sub-steps of at most `max_dt` with
    `H` at each sub-step's midpoint. Returns the vector and the number of exponentials."""
    points = (t0, *ham.breaks(t0, t1), t1)
    calls = 0
    for a, b in zip(points, points[1:]):
        if b <= a:
            continue
        if not ham.ramps or ham.constant_on(a, b):
            psi = _step(ham.at(0.5 * (a + b)), psi, b - a, imaginary)
            calls += 1
            continue
        n = max(1, math.ceil((b - a) / max_dt * (1 - 1e-12)))
        h = (b - a) / n
        for k in range(n):
            matvec, bound = ham.apply(a + (k + 0.5) * h)
            psi = _short_step(matvec, bound, psi, h, imaginary)
        calls += n
    return psi, calls


def _initial_vector(config, spec, calc, system, states, registry, max_states) -> np.ndarray:
    """The initial state in the physical basis (normalised): `initial_state`,
    else `[run] init_from`, else the ansatz's own initial parameters."""
    space = system.space
    n = states.shape[0]
    if spec["initial_state"] is not None:
        d = len(local_values_of(space))
        return product_vector(space, product_amplitudes(spec["initial_state"], d), states)
    init_from = calc.run.get("init_from") or ""
    if init_from:
        try:
            psi = load_state(init_from).to_array(max_states=max_states)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"[run] init_from: {exc}") from None
        if psi.shape != (n,):
            raise ConfigError(
                f"[run] init_from: the state in {init_from} has {psi.shape[0]} amplitudes, the space of this config "
                f"{n} states; start from a run on the same space"
            )
        return psi
    if "ansatz" not in config:
        raise ConfigError(
            "the evolution has no initial state: give [driver] initial_state (e.g. \"+x\"), [run] init_from "
            "(a run directory) or an [ansatz] (its initial parameters)"
        )
    ansatz = build(_physics_config(config), registry=registry, stop_after="ansatz")["ansatz"]
    try:
        return VariationalState(ansatz, None, system=system).to_array(max_states=max_states)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _complex_safe(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if not np.iscomplexobj(values):
        return values.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(values)))) if values.size else 1.0
    if values.size and float(np.max(np.abs(np.imag(values)))) > _IMAG_RTOL * scale:
        return values.astype(np.complex128)
    return np.real(values).astype(np.float64)


class _Measure:
    """The `[observables]` on a state vector at many times: operator
    observables (of the default local values) as sparse matrices built once
    (the look-ups of `nqs exact`, in one pass for all of them; elements that
    leave the space dropped, they do not change `<v|O|v>`), so a time costs one
    product per operator; the others, and operators whose matrices would pass
    the memory limit (`base` bytes already taken), through `expect_vector` at
    every time (as `nqs exact` measures them)."""

    def __init__(self, observables, space, states, index, base: float):
        self.space, self.states, self.index = space, states, index
        self.fast: dict[str, tuple[list[int], Any, bool]] = {}
        unique: list[Any] = []
        keys: dict[Any, int] = {}
        n = states.shape[0]
        size = 0
        for name, o in observables.items():
            if not (isinstance(o, AbstractOperatorObservable) and _default_local_values(o)):
                continue
            new = {}
            for op in o.operators:
                key = _content_key(op)
                if key not in keys and key not in new:
                    new[key] = op
            extra = sum(n * int(op.max_conn_size) for op in new.values())
            try:  # 16 bytes a complex element and 8 its column, twice while built
                check_memory(base + 48.0 * (size + extra), "the observables' matrices")
            except MemoryLimitError:
                continue
            size += extra
            for key, op in new.items():
                keys[key] = len(unique)
                unique.append(op)
            transform = None if o.transform is None else np.asarray(o.transform)
            idx = [keys[_content_key(op)] for op in o.operators]
            self.fast[name] = (idx, transform, transform is None and len(o.operators) == 1)
        self.matrices = [m.astype(np.complex128) for m in _matrices(tuple(unique), states, index, strict=False)] if unique else []
        self.slow = {k: o for k, o in observables.items() if k not in self.fast}

    def __call__(self, psi: np.ndarray) -> dict[str, np.ndarray]:
        means = [np.vdot(psi, m @ psi) for m in self.matrices]
        out = {}
        for name, (idx, transform, scalar) in self.fast.items():
            a = np.asarray([means[i] for i in idx])
            out[name] = a[0] if scalar else (a if transform is None else transform @ a)
        if self.slow:
            for name, st in expect_vector(self.space, self.states, psi, self.slow, self.index).items():
                out[name] = np.asarray(st.mean)
        return out


def exact_evolution(
    config: Mapping[str, Any],
    registry=None,
    progress: Callable[[str], None] | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    max_dt: float = DEFAULT_MAX_DT,
    keep_states: bool = False,
    times: Sequence[float] | None = None,
) -> Evolution:
    """Evolve the initial state of a TDVP config exactly and measure the energy
    and every `[observables]` entry at its output times (see the module notes
    for the method).

    **Arguments:**

    - `config`: a config dict with `[driver] name = "tdvp"` (`nqs_core.load_config`).
    - `registry`: the component registry (default: the loaded one).
    - `progress`: called with a short line at each stage (for a spinner).
    - `max_states`: refuse spaces with more configurations (default 2^20).
    - `max_dt`: the longest sub-step while a coupling changes (default 1e-3;
      ignored without a schedule).
    - `keep_states`: keep the state vectors (`Evolution.states`).
    - `times`: evaluate at these times instead of the config's output times
      (non-negative, increasing; evolution from t = 0).

    **Returns:** an `Evolution`.

    **Raises:** `ConfigError` for a config that is not a TDVP config, a space
    larger than `max_states`, an initial state that does not fit;
    `MemoryLimitError` when the matrices would not fit the memory limit.
    """
    say = progress or (lambda line: None)
    spec = _driver_spec(config)
    max_dt = _number("max_dt", max_dt)
    if max_dt <= 0:
        raise ConfigError(f"--max-dt must be positive, got {max_dt:g}")
    if times is not None:
        spec["times"] = output_times(None, list(times))
    physics = _physics_config(config)
    calc, observables = build_exact(physics, registry)
    system = calc["system"]
    n = _check_space(system)
    if n > max_states:
        raise ConfigError(
            f"nqs exact --evolve: the space has {n} states, more than max_states = {max_states}: too large for exact "
            "time evolution; check the TDVP run on a smaller system"
        )
    ramps = spec["schedule"]
    with memory_limit(run_memory_limit(calc.run)):
        check_memory(spectrum_memory(system, 1) * (1 + 2 * len(ramps)) + (len(spec["times"]) if keep_states else 2) * 16.0 * n,
                     f"exact time evolution of {n} states ({system.space.size} sites)")
        space = system.space
        say(f"listing {n} states")
        states = np.asarray(space.all_states())
        index = _row_index(space, states)
        say(f"building the Hamiltonian on {n} states")
        h0 = _checked_matrix(system, states, index, say, "the Hamiltonian")
        base, slopes = [], []
        if ramps:
            builder = SystemBuilder(physics, calc.registry, calc.config["system"])
            for ramp in ramps:
                v0 = builder.value(ramp.field)
                say(f"building the Hamiltonian with {ramp.field} = {v0 + 1:g} and {v0 + 2:g}")
                one, two = builder({ramp.field: v0 + 1.0}), builder({ramp.field: v0 + 2.0})
                for other in (one, two):
                    if rotated_sites(other) != rotated_sites(system):
                        raise ConfigError(f"[[driver.schedule]] field {ramp.field!r} changes the system's basis rotation; schedule couplings only")
                d1 = _checked_matrix(one, states, index, say, f"the Hamiltonian with {ramp.field} = {v0 + 1:g}") - h0
                d2 = _checked_matrix(two, states, index, say, f"the Hamiltonian with {ramp.field} = {v0 + 2:g}") - h0
                scale = max(float(abs(d1).max()) if d1.nnz else 0.0, float(abs(h0).max()) if h0.nnz else 0.0, 1e-300)
                if (d2 - 2 * d1).nnz and abs(d2 - 2 * d1).max() > 1e-10 * scale:
                    raise ConfigError(
                        f"[[driver.schedule]] field {ramp.field!r} does not enter the Hamiltonian linearly; "
                        "schedule a coupling (a field that multiplies a term)"
                    )
                base.append(v0)
                slopes.append(d1)
        ham = _Hamiltonian(h0, ramps, base, slopes)
        measure = _Measure(observables, space, states, index, base=spectrum_memory(system, 1) * (1 + 2 * len(ramps)))
        u = rotation_diagonal(system, states)
        say("the initial state")
        psi_phys = np.asarray(_initial_vector(config, spec, calc, system, states, calc.registry, max_states), dtype=np.complex128)
        norm = np.linalg.norm(psi_phys)
        if not np.isfinite(norm) or norm == 0:
            raise ConfigError("the initial state has no finite, non-zero amplitude")
        psi = u * (psi_phys / norm)
        imaginary = spec["time"] == "imaginary"
        out_t = spec["times"]
        energy, variance, kept = [], [], []
        values: dict[str, list] = {k: [] for k in observables}
        t = 0.0
        for k, t_k in enumerate(out_t):
            if t_k > t:
                say(f"evolving to t = {t_k:g} ({k} of {len(out_t) - 1})")
                psi, _ = _propagate(ham, psi, t, float(t_k), max_dt, imaginary)
                t = float(t_k)
            h = ham.at(t)
            hpsi = h @ psi
            e = float(np.real(np.vdot(psi, hpsi)))
            energy.append(e)
            variance.append(max(float(np.real(np.vdot(hpsi, hpsi))) - e * e, 0.0))
            if observables:
                for name, mean in measure(psi).items():
                    values[name].append(mean)
            if keep_states:
                kept.append(np.conj(u) * psi)
    resolved = dict(calc.config)
    for table in config:
        if table not in resolved:
            resolved[table] = copy.deepcopy(config[table])
    description = {k: dict(calc.config[k]) for k in ("lattice", "space", "system") if k in calc.config}
    description["n_sites"] = int(space.size)
    return Evolution(
        out_t, energy, variance, {k: _complex_safe(np.stack(v)) for k, v in values.items()}, spec["time"],
        states=np.stack(kept) if keep_states else None, configurations=states, observable_objects=observables,
        config_toml=resolved_toml(types.SimpleNamespace(config=resolved)),
        description=strict_json(json.loads(json.dumps(description, default=str))),
    )


# -- nqs plot of a TDVP run --------------------------------------------------------------


def is_evolution_run(run_dir) -> bool:
    """Whether `run_dir` is a time-evolution run: its `config.toml` has
    `[driver] name = "tdvp"`, or its log records carry `"t"`."""
    run_dir = pathlib.Path(run_dir)
    try:
        driver = load_config(run_dir / CONFIG_FILE).get("driver", {})
        if isinstance(driver, dict) and driver.get("name") == "tdvp":
            return True
    except (ConfigError, OSError):
        pass
    try:
        records = read_log(run_dir)
    except ValueError:
        return False
    return bool(records) and "t" in records[0]


def plot_evolution(run_dir, observable: str = "energy", output=None, exact: bool = True,
                   max_states: int = PLOT_MAX_STATES, max_dt: float = DEFAULT_MAX_DT,
                   warn: Callable[[str], None] | None = None) -> list[pathlib.Path]:
    """`nqs plot RUN_DIR` of a TDVP run: the energy (or the observable
    `observable`) against t with error bars from `log.jsonl`, the exact curve
    (`exact_evolution` of the run's `config.toml`) where the space has at most
    `max_states` states, and the TDVP residual against t in a second panel;
    the drawn numbers as CSV next to the PNG.

    **Arguments:**

    - `run_dir`: the run directory.
    - `observable`: `"energy"` (default) or the name of an `[observables]` entry.
    - `output`: the PNG path (default `RUN_DIR/<observable>.png`).
    - `exact`: draw the exact curve (when the space is small enough).
    - `warn`: called with a line when the exact curve is left out for a reason
      the user should know (the exact evolution failed).

    **Returns:** the paths written (PNG, CSV). **Raises:** `ConfigError` for a
    log without records or an unknown observable.
    """
    run_dir = pathlib.Path(run_dir)
    try:
        records = read_log(run_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    kept = {}
    for r in records:
        if "rejected" not in r and isinstance(r.get("t"), (int, float)):
            kept[r.get("step", len(kept))] = r
    records = sorted(kept.values(), key=lambda r: r["t"])
    if not records:
        raise ConfigError(f"no time-evolution records (with \"t\") in the log of {run_dir}")
    if observable != "energy":
        known = sorted({k for r in records for k in (r.get("observables") or {})})
        if observable not in known:
            raise ConfigError(f"unknown observable {observable!r} for this run; valid: {', '.join(['energy', *known])}")
    curve = None
    if exact:
        try:
            config = load_config(run_dir / CONFIG_FILE)
            t_end = max(float(r["t"]) for r in records)
            spec_t = _driver_spec(config)["times"]
            t_end = max(t_end, float(spec_t[-1]))
            grid = np.union1d(np.linspace(0.0, t_end, CURVE_POINTS), [float(r["t"]) for r in records])
            if observable != "energy":
                tables = config.get("observables", {})
                config["observables"] = {observable: tables[observable]} if observable in tables else {}
            else:
                config.pop("observables", None)
            evo = exact_evolution(config, max_states=max_states, max_dt=max_dt, times=grid)
            curve = (evo.times, evo.energy if observable == "energy" else evo.observables.get(observable))
        except ConfigError as exc:
            if warn is not None and "more than max_states" not in str(exc):
                warn(f"no exact curve: {exc}")
            curve = None
    path = pathlib.Path(output) if output else run_dir / f"{observable}.png"
    try:
        return plot_evolution_records(records, observable, path, exact=curve, title=run_dir.name)
    except ValueError as exc:  # an array observable with too many entries
        raise ConfigError(f"{exc}; plot it at one time with `nqs measure`") from None
