"""Stop signals: SLURM sends USR2 before preemption or the time limit, a user sends TERM.

The loop checks :class:`StopFlag` at every step boundary, checkpoints, and leaves with
:class:`Interrupted`; a relaunch (or submitit's requeue) resumes from the checkpoint.
"""

from __future__ import annotations

import signal
from typing import Any


class Interrupted(RuntimeError):
    """A stop signal arrived; the checkpoint has been written."""

    def __init__(self, signum: int, why: str = "") -> None:
        what = f"stopped by signal {signal.Signals(signum).name}"
        super().__init__(f"{what} ({why})" if why else what)
        self.signum = signum


class StopFlag:
    """Records a stop signal so the loop can checkpoint at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def forward(self) -> None:
        """After checkpointing, let whoever handled the signal before us act on it.

        Under submitit, USR2's handler is submitit's: it asks the task how to resubmit
        itself (the Hydra launcher: the same task from the start, which finds this run's
        checkpoint and resumes), requeues the job and exits with ``SystemExit``. After
        too many time-outs (``max_num_timeout``) it raises instead: the run is then
        interrupted all the same, not failed (its checkpoint is on disk, and a relaunch
        resumes it). Its SIGTERM handler only logs. Whenever the previous handler
        returns, the run stops with :class:`Interrupted`.
        """
        if self.signum is None:  # another process of a data-parallel run was signalled
            self.restore()
            raise Interrupted(signal.SIGTERM)
        prev = self.previous.get(self.signum)
        self.restore()
        if callable(prev):
            try:
                prev(self.signum, None)
            except Exception as e:  # not SystemExit: a requeue leaves through that
                raise Interrupted(self.signum, f"{type(e).__name__}: {e}") from e
        raise Interrupted(self.signum)
