"""How a sweep's SLURM job starts: submitit's own entry point, with USR2 held until
submitit can take it.

SLURM warns a job of preemption (and of its time limit) with USR2, and submitit's
handler for it checkpoints the task and requeues the job. That handler is installed only
once submitit has loaded the job's pickle, a few tenths of a second into the job (seconds
when the cores are shared). A USR2 before then meets Python's default, which ends the
process: the job is left FAILED, not requeued, and the sweep must be relaunched. So the
job's command is ``python -u -m hydra_plugins.scaling_lab.job_start`` in place of
``python``: this module holds a USR2 that comes early (before any import that takes
time) and runs submitit's entry point;
:meth:`~hydra_plugins.scaling_lab.launcher.SlurmLauncher.__call__`, the first code of
ours that submitit runs with its handler in place, delivers the held signal to it.
"""

from __future__ import annotations

import signal
import sys

_held: list[int] = []


def _hold(signum: int, frame: object) -> None:
    _held.append(signum)


def hold() -> None:
    """Hold USR2 from now on, until :func:`release`."""
    signal.signal(signal.SIGUSR2, _hold)


def release() -> None:
    """Deliver a held USR2 to the handler now in place (submitit's), if one came."""
    if _held and signal.getsignal(signal.SIGUSR2) is not _hold:
        print("USR2 came before submitit's handler was in place: delivered now", file=sys.stderr)
        _held.clear()
        signal.raise_signal(signal.SIGUSR2)


def main(argv: list[str]) -> None:
    """Run submitit's entry point as ``python ARGV`` would.

    submitit appends ``-u -m submitit.core._submit <folder>`` to the job's python command.
    """
    import runpy

    if len(argv) < 3 or argv[:2] != ["-u", "-m"]:
        raise SystemExit(f"job_start: expected '-u -m <module> [args]', got {argv}")
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # run as a script this file is `__main__`: hold through the module the launcher
    # imports, so that both see the same held signals
    from hydra_plugins.scaling_lab import job_start

    job_start.hold()
    job_start.main(sys.argv[1:])
