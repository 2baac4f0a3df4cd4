"""The worker side of `benchmarks/tdvp_step.py` (standard library and numpy only, so
that every library's virtual environment can import it).

A worker builds one library's TDVP problem from the problem file the driver script
wrote, answers on stdout with one JSON line per request (lines that do not start
with `{` are log output and ignored), and reads its requests from stdin:

- after start-up it prints `{"ready": ..., "check": ..., ...}`;
- `{"cmd": "time", "steps": n}`: `n` RK4 steps, each timed alone (wall clock and
  the process's CPU time), answered with `{"wall": [...], "cpu": [...], ...}`;
- `{"cmd": "final"}`: the energy after all the steps taken, then the worker exits.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def setup_env():
    """CPU and float64 in every library (set before jax is imported)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("JAX_ENABLE_X64", "1")


def read_problem():
    """The problem dict (argv[1], JSON) and its arrays (the `.npz` it names)."""
    with open(sys.argv[1]) as f:
        problem = json.load(f)
    arrays = dict(np.load(problem["arrays"]))
    return problem, arrays


def emit(obj):
    """One JSON answer line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(step, final_energy, ready_info):
    """The request loop: `step()` runs one blocking RK4 step and returns a dict
    of diagnostics (e.g. the energy at the start of the step); `final_energy()`
    returns the last answer's dict."""
    emit(dict(ready=True, **ready_info))
    n_done = 0
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "time":
            wall, cpu, diag = [], [], []
            for _ in range(req["steps"]):
                t0, c0 = time.perf_counter(), time.process_time()
                d = step()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                diag.append(d)
                n_done += 1
            emit({"wall": wall, "cpu": cpu, "diag": diag, "n_done": n_done})
        elif req["cmd"] == "final":
            emit(dict(final=True, n_done=n_done, **final_energy()))
            return
        else:
            raise SystemExit(f"unknown request {req!r}")
