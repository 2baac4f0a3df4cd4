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


def load_parameters(run_dir, like: Any) -> Any:
    """The parameters of the last checkpoint in `run_dir`, in the structure of
    `like` (a parameter pytree, e.g. `nqs_core.parameters(model)[0]`).

    The checkpoint is a `VMCState` with the parameters first, so only that
    prefix is read: the optimizer and sampler of the new run may differ.

    **Raises:** `FileNotFoundError` if there is no checkpoint, `ValueError` if
    the parameters do not fit `like` (another architecture or dtype).
    """
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CHECKPOINT_META).exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir}")
    try:
        return load_checkpoint(run_dir, like)[0]
    except Exception as exc:  # shape/dtype mismatch or truncated file
        raise ValueError(f"the checkpoint in {run_dir} does not fit this model ({exc})") from None


def save_run_state(run_dir, state) -> None:
    """Checkpoint a driver state from every MPI rank (collective under MPI).

    Parameters and optimizer state are identical on all ranks; the sampler
    states (chains, keys) differ, so they are gathered to rank 0 and stored
    stacked along a leading rank axis. Only rank 0 writes.
    """
    import jax
    import numpy as np

    from ._distributed import is_root, n_ranks, python_comm

    comm = python_comm()
    meta = {"step": int(state.step), "n_ranks": n_ranks()}
    if comm is not None:
        local = jax.tree.map(np.asarray, state.sampler_state)
        gathered = comm.gather(local, root=0)
        if not is_root():
            return
        stacked = jax.tree.map(lambda *xs: np.stack(xs), *gathered)
        state = eqx.tree_at(lambda s: s.sampler_state, state, stacked)
    save_checkpoint(run_dir, state, meta)


def load_run_state(run_dir, like):
    """Inverse of `save_run_state`: rank 0 reads, parameters are broadcast and
    each rank receives its own sampler state. The number of ranks must match
    the run that wrote the checkpoint."""
    import jax
    import numpy as np

    from ._distributed import is_root, n_ranks, python_comm

    comm = python_comm()
    if comm is None:
        state, meta = load_checkpoint(run_dir, like)
        if meta.get("n_ranks", 1) != 1:
            raise ValueError(f"checkpoint was written by {meta['n_ranks']} MPI ranks; resume it with as many")
        return state, meta
    n = n_ranks()
    stacked_like = eqx.tree_at(
        lambda s: s.sampler_state, like, jax.tree.map(lambda a: np.stack([np.asarray(a)] * n), like.sampler_state)
    )
    payload = None
    if is_root():
        state, meta = load_checkpoint(run_dir, stacked_like)
        if meta.get("n_ranks", 1) != n:
            payload = ("error", f"checkpoint was written by {meta.get('n_ranks', 1)} MPI rank(s), this run has {n}")
        else:
            payload = ("ok", jax.tree.map(np.asarray, state), meta)
    payload = comm.bcast(payload, root=0)
    if payload[0] == "error":
        raise ValueError(payload[1])
    _, state, meta = payload
    r = comm.Get_rank()
    mine = jax.tree.map(lambda a: a[r], state.sampler_state)
    state = eqx.tree_at(lambda s: s.sampler_state, state, mine)
    return jax.tree.map(lambda a: jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a, state), meta


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
