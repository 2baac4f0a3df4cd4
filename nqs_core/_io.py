"""Run directories: resolved config, JSON-lines log, atomic checksummed checkpoints (no pickle)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import tempfile
from typing import Any

import equinox as eqx
import jax
import numpy as np

from . import _signals
from ._distributed import is_root, n_ranks, python_comm

CONFIG_FILE = "config.toml"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.eqx"
CHECKPOINT_META = "checkpoint.json"
RESULT_FILE = "result.json"
#: The files nqs reads and writes in a run directory (none of them may be a symbolic link).
RUN_FILES = (CONFIG_FILE, LOG_FILE, CHECKPOINT_FILE, CHECKPOINT_META, RESULT_FILE)


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit the run."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def open_append(path):
    """`path` opened for appending text, created if missing; a symbolic link is
    refused (`OSError`), never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    return os.fdopen(fd, "a")


def check_run_files(run_dir) -> None:
    """Refuse a run directory in which one of nqs's files is a symbolic link
    (they are not followed: a link could point into another run or a user's file).

    **Raises:** `CheckpointError` naming the link.
    """
    run_dir = pathlib.Path(run_dir)
    links = [name for name in RUN_FILES if (run_dir / name).is_symlink()]
    if links:
        raise CheckpointError(
            f"{', '.join(str(run_dir / n) for n in links)} {'is a symbolic link' if len(links) == 1 else 'are symbolic links'}; "
            "nqs does not follow links in a run directory: replace them by the files themselves"
        )


def write_text(path, text: str) -> None:
    atomic_write(pathlib.Path(path), lambda f: f.write(text.encode()))


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by `None` (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def json_line(record: dict[str, Any]) -> str:
    """A log record as one line of strict JSON (RFC 8259): non-finite numbers
    become `null` and their keys are listed in the record's `"non_finite"`."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        record = {**strict_json(record), "non_finite": bad}
    return json.dumps(record, allow_nan=False)


#: The end of a checkpoint file: the JSON meta (step, size and SHA-256 of the
#: data before it), this marker and the meta's length as 8 bytes. Readers of the
#: leaves (`equinox.tree_deserialise_leaves`) stop before it.
_TRAILER = b"\nNQS-CHECKPOINT-META"


def save_checkpoint(run_dir, state: Any, meta: dict[str, Any]) -> None:
    """Save a pytree of arrays (parameters, optimizer, sampler and RNG state)
    with `equinox.tree_serialise_leaves` (NumPy `.npy` records, no pickle) and
    a JSON file with `meta` (step, ...) plus the data's size and SHA-256.

    Both writes are atomic; the JSON is written last. The checkpoint file also
    ends with its own copy of the meta, so a kill between the two writes (a new
    checkpoint, the previous `checkpoint.json`) is recognised on load."""
    run_dir = pathlib.Path(run_dir)
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, state)
    data = buf.getvalue()
    meta = {**meta, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    trailer = json.dumps(meta).encode()
    blob = data + _TRAILER + trailer + len(trailer).to_bytes(8, "little")
    with _signals.saving():  # SIGINT / SIGTERM wait until both files are written
        atomic_write(run_dir / CHECKPOINT_FILE, lambda f: f.write(blob))
        write_text(run_dir / CHECKPOINT_META, json.dumps(meta, indent=1))


def _split(blob: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """`(data, own meta)` of a checkpoint file (`None`: no trailer, or a damaged one)."""
    if len(blob) < 8:
        return blob, None
    n = int.from_bytes(blob[-8:], "little")
    start = len(blob) - 8 - n - len(_TRAILER)
    if n <= 0 or start < 0 or blob[start : start + len(_TRAILER)] != _TRAILER:
        return blob, None
    try:
        own = json.loads(blob[start + len(_TRAILER) : len(blob) - 8])
    except ValueError:
        return blob, None
    return blob[:start], own if isinstance(own, dict) else None


def load_checkpoint(run_dir, like: Any) -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint into the structure of `like` (a freshly initialised
    state of the same run), verified: the size and SHA-256 of its data against
    the meta it carries and `checkpoint.json`, and, for a driver state, its step.

    A `checkpoint.json` of an *earlier* step than a checkpoint that verifies
    itself is the trace of a kill between the two writes of `save_checkpoint`:
    the checkpoint's own meta is used. Any other disagreement is an error.

    **Raises:** `CheckpointError` (a `ValueError`) naming what is wrong.
    """
    run_dir = pathlib.Path(run_dir)
    meta_path, path = run_dir / CHECKPOINT_META, run_dir / CHECKPOINT_FILE
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
            raise ValueError("no step")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path} is missing or damaged ({exc})") from None
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or exc}") from None
    data, own = _split(blob)
    damaged = CheckpointError(
        f"the checkpoint {path} is damaged (its size or SHA-256 differs from what was written); "
        "restore it from a copy or start the run again"
    )
    if "sha256" in meta:  # checkpoints written before checksums have none
        if own is None or len(data) != own.get("bytes") or hashlib.sha256(data).hexdigest() != own.get("sha256"):
            raise damaged
        if own.get("sha256") != meta["sha256"] or own.get("step") != meta["step"]:
            if isinstance(own.get("step"), int) and own["step"] > meta["step"]:
                meta = own  # killed between writing the checkpoint and checkpoint.json
            else:
                raise CheckpointError(
                    f"{CHECKPOINT_META} says step {meta['step']} but the checkpoint {path} holds step "
                    f"{own.get('step')}; the two files do not belong together"
                )
    try:
        state = eqx.tree_deserialise_leaves(io.BytesIO(data), like)
    except Exception as exc:  # truncated, or written by another configuration
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"the checkpoint {path} does not fit this run's configuration (was config.toml changed "
            f"after the run?): {first}"
        ) from None
    step = getattr(state, "step", None)
    if step is not None and int(step) != meta["step"]:
        raise CheckpointError(
            f"{CHECKPOINT_META} says step {meta['step']} but the checkpoint {path} holds step {int(step)}; "
            "the two files do not belong together"
        )
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


def save_run_state(run_dir, state, extra: dict[str, Any] | None = None) -> None:
    """Checkpoint a driver state from every MPI rank (collective under MPI).

    Parameters and optimizer state are identical on all ranks; the sampler
    states (chains, keys) differ, so they are gathered to rank 0 and stored
    stacked along a leading rank axis. Only rank 0 writes. `extra`: more JSON
    fields for the meta (the run's physics fingerprint).
    """
    comm = python_comm()
    meta = {**(extra or {}), "step": int(state.step), "n_ranks": n_ranks()}
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


def read_log(run_dir, events: bool = False) -> list[dict[str, Any]]:
    """The records of `run_dir/log.jsonl`, one per step attempt (`null` values
    back as NaN; a rejected step has a `"rejected"` reason). `events=True`
    also returns the event records (`{"event": "resume", "set": ...}`).

    **Raises:** `ValueError` naming the line when the file is not JSON lines.
    """
    path = pathlib.Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    out = []
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines):
                continue  # a last line cut off by a kill
            raise ValueError(f"{path} line {i} is not a JSON record; the log is damaged") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f"{path} line {i} is not a log record (no integer 'step'); the log is damaged")
        for k in record.get("non_finite", ()):
            if record.get(k) is None:
                record[k] = math.nan
        if events or "event" not in record:
            out.append(record)
    return out


def truncate_log(run_dir, n_steps: int) -> None:
    """Keep only the records of steps `< n_steps` (used when resuming from a
    checkpoint taken at step `n_steps`)."""
    records = [r for r in read_log(run_dir, events=True) if r["step"] < n_steps]
    write_text(pathlib.Path(run_dir) / LOG_FILE, "".join(json_line(r) + "\n" for r in records))


def append_log(run_dir, record: dict[str, Any]) -> None:
    """Append one record (e.g. an event) to `run_dir/log.jsonl`."""
    with open_append(pathlib.Path(run_dir) / LOG_FILE) as f:
        f.write(json_line(record) + "\n")
