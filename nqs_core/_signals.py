"""SIGTERM and SIGINT during a run: stop at the next step boundary with a checkpoint.

`catch_signals` installs handlers for the duration of `run` / `resume`. While
the driver is stepping, the first signal only sets a flag; the `SignalStop`
callback (in `_callbacks.py`) sees it after the step, the run stops, the
`Checkpoint` callback saves the state as at the end of any run, and `_continue`
raises `RunInterrupted` (the CLI exits 130 after SIGINT, 143 after SIGTERM).
A second signal while stepping stops at once (the last periodic checkpoint is
kept); a signal before the first step or during the final evaluation stops at
once too. A signal that arrives while a checkpoint is being written is held
until the write is complete (see `saving`), so a checkpoint is never cut.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

#: The signals a run turns into a checkpoint and a stop.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_STATE: dict = {"installed": False, "phase": "before", "signum": None, "saving": 0, "pending": None, "run_dir": None, "step": None}


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM.

    **Attributes:** `signum` (the signal), `run_dir`, `step` (the step the
    checkpoint holds when one was written at the stop, else `None`: the run
    directory keeps its last periodic checkpoint), `exit_code` (128 + signal:
    130 for SIGINT, 143 for SIGTERM), `where` (`"before"` the first step,
    `"steps"`, or `"after"` the last step, during the final evaluation).
    """

    def __init__(self, signum: int, run_dir=None, step: int | None = None, where: str = "steps"):
        self.signum, self.run_dir, self.step, self.where = int(signum), run_dir, step, where
        self.exit_code = 128 + self.signum
        super().__init__(self.message())

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def message(self) -> str:
        """One line: what stopped the run, what the checkpoint holds, how to go on."""
        resume = f"continue with `nqs resume {self.run_dir}`" if self.run_dir is not None else "continue with `nqs resume RUN_DIR`"
        if self.where == "before":
            return f"stopped by {self.signal_name} before the first step; nothing was run"
        if self.step is not None:
            what = "during the final evaluation" if self.where == "after" else f"after step {self.step}"
            return f"stopped by {self.signal_name} {what}; the checkpoint holds step {self.step}: {resume}"
        return f"stopped by {self.signal_name} during a step; the run directory keeps its last checkpoint: {resume}"


def _say(text: str) -> None:
    try:
        os.write(2, (text + "\n").encode())  # not print(): the handler may interrupt a print
    except OSError:
        pass


def _handler(signum, frame) -> None:
    st = _STATE
    if st["phase"] == "steps" and st["signum"] is None:
        st["signum"] = signum
        _say(f"nqs: {signal.Signals(signum).name} received: stopping after this step and writing a checkpoint "
             "(send it again to stop at once)")
        return
    if st["saving"]:
        st["pending"] = st["pending"] or signum  # raised when the checkpoint is complete
        return
    raise RunInterrupted(signum, st["run_dir"], step=st["step"] if st["phase"] == "after" else None, where=st["phase"])


@contextlib.contextmanager
def catch_signals(run_dir=None):
    """Turn SIGINT and SIGTERM into a checkpoint and `RunInterrupted` for the
    duration of the block (in the main thread; elsewhere nothing changes).
    The previous handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread() or _STATE["installed"]:
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _STATE.update(installed=True, phase="before", signum=None, saving=0, pending=None, run_dir=run_dir, step=None)
    try:
        for s in SIGNALS:
            signal.signal(s, _handler)
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _STATE.update(installed=False, phase="before", signum=None, saving=0, pending=None, run_dir=None, step=None)


def set_run_dir(run_dir) -> None:
    """Name the run directory in the messages (known only after `catch_signals` began)."""
    _STATE["run_dir"] = run_dir


def start_steps() -> None:
    """The driver begins stepping: from now on a signal stops at the next step boundary."""
    if _STATE["installed"]:
        _STATE["phase"] = "steps"


def requested() -> int | None:
    """The signal that asked the run to stop, else `None`."""
    return _STATE["signum"]


def request(signum: int) -> None:
    """Ask the run to stop at the next step boundary as if `signum` had arrived
    (another MPI rank received it)."""
    if _STATE["signum"] is None:
        _STATE["signum"] = int(signum)


def end_steps(step: int) -> None:
    """The driver stopped stepping at `step` (its state is checkpointed): raise
    `RunInterrupted` if a signal stopped it; later signals stop at once."""
    if not _STATE["installed"]:
        return
    _STATE["phase"], _STATE["step"] = "after", int(step)
    if _STATE["signum"] is not None:
        raise RunInterrupted(_STATE["signum"], _STATE["run_dir"], step=int(step), where="steps")


@contextlib.contextmanager
def saving():
    """Hold SIGINT / SIGTERM while a checkpoint is written: a signal that arrives
    meanwhile takes effect when the write is complete."""
    _STATE["saving"] += 1
    try:
        yield
    finally:
        _STATE["saving"] -= 1
        pending = _STATE["pending"]
        if not _STATE["saving"] and pending is not None:
            _STATE["pending"] = None
            after = _STATE["phase"] == "after"
            raise RunInterrupted(pending, _STATE["run_dir"], step=_STATE["step"] if after else None, where=_STATE["phase"])
