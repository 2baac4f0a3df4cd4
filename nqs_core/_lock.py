"""The exclusive lock of a run directory (`nqs run`, `nqs resume`): one writer at a time."""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys

from ._config import ConfigError

#: The lock file inside a run directory; it holds the holder's process id and host.
LOCK_FILE = "nqs.lock"


class RunLockedError(ConfigError):
    """The run directory is locked by another running process (or its lock file
    cannot be made): one line naming the holder, exit code 2 in the CLI."""


class RunLock:
    """An exclusive lock on a run directory: `run_dir/nqs.lock`, created with
    `O_NOFOLLOW` and held with `fcntl.flock` for the life of the process's work
    in the directory; it records the holder's process id, host and command.

    The kernel releases an `flock` when its process dies (also on `kill -9`),
    so a lock file left behind by a dead process is simply taken over (the
    `note` says whose it was); a lock held by a live process makes `acquire`
    raise `RunLockedError` naming that process. `release` removes the file.

    **Arguments:** `run_dir`, the directory; `command`, what takes it (for the
    message another process shows).
    """

    def __init__(self, run_dir, command: str = "nqs"):
        self.path = pathlib.Path(run_dir) / LOCK_FILE
        self.command = command
        self._fd: int | None = None
        #: after `acquire`: a line about a stale lock that was taken over, else `None`
        self.note: str | None = None

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                if self.path.is_symlink():
                    raise RunLockedError(f"{self.path} is a symbolic link; remove it (nqs does not follow links in a run directory)") from None
                raise RunLockedError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(_read(fd))
                os.close(fd)
                raise RunLockedError(
                    f"the run directory {self.path.parent} is in use by {holder}; wait for it to finish or stop it "
                    f"(one nqs process at a time may write a run directory)"
                ) from None
            # the holder before us may have removed the file after we opened it: lock the file that is there
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = _read(fd)
        if old:
            self.note = f"took over the lock of {_describe(old)}, which is no longer running"
        record = {
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path, follow_symlinks=False)):
                self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # a lock object dropped without release (the process ends anyway)
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _read(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
        record = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {"unreadable": True}
    return record if isinstance(record, dict) else {"unreadable": True}


def _describe(record: dict) -> str:
    if not record or "pid" not in record:
        return "another process (its lock file names none)"
    where = f" on {record['host']}" if record.get("host") and record.get("host") != socket.gethostname() else ""
    what = f" ({record['command']}" + (f", since {record['since']}" if record.get("since") else "") + ")" if record.get("command") else ""
    return f"process {record['pid']}{where}{what}"


def lock_note(lock: RunLock) -> None:
    """Print the lock's note (a stale lock taken over) on stderr, if any."""
    if lock.note:
        print(f"nqs: note: {lock.note}", file=sys.stderr)
