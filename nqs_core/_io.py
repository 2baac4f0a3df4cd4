"""Run directories: resolved config, JSON-lines log, atomic checkpoints (no pickle)."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

import equinox as eqx

CONFIG_FILE = "config.toml"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.eqx"
CHECKPOINT_META = "checkpoint.json"
RESULT_FILE = "result.json"


def atomic_write(path: pathlib.Path, write) -> None:
    """Write through `write(fileobj)` into a temporary file next to `path`, then
    rename it over `path`: a crash leaves the old file or the new one, never half."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    atomic_write(pathlib.Path(path), lambda f: f.write(text.encode()))


def save_checkpoint(run_dir, state: Any, meta: dict[str, Any]) -> None:
    """Save a pytree of arrays (parameters, optimizer, sampler and RNG state)
    with `equinox.tree_serialise_leaves` (NumPy `.npy` records, no pickle) and
    a JSON file with `meta` (step, ...). Both writes are atomic; the JSON is
    written last, so it never points at a checkpoint that is not there."""
    run_dir = pathlib.Path(run_dir)
    atomic_write(run_dir / CHECKPOINT_FILE, lambda f: eqx.tree_serialise_leaves(f, state))
    write_text(run_dir / CHECKPOINT_META, json.dumps(meta, indent=1))


def load_checkpoint(run_dir, like: Any) -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint into the structure of `like` (a freshly initialised
    state of the same run)."""
    run_dir = pathlib.Path(run_dir)
    meta = json.loads((run_dir / CHECKPOINT_META).read_text())
    with open(run_dir / CHECKPOINT_FILE, "rb") as f:
        state = eqx.tree_deserialise_leaves(f, like)
    return state, meta


def read_log(run_dir) -> list[dict[str, Any]]:
    path = pathlib.Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_log(run_dir, n_steps: int) -> None:
    """Keep only the records of steps `< n_steps` (used when resuming from a
    checkpoint taken at step `n_steps`)."""
    records = [r for r in read_log(run_dir) if r.get("step", 0) < n_steps]
    write_text(pathlib.Path(run_dir) / LOG_FILE, "".join(json.dumps(r) + "\n" for r in records))
