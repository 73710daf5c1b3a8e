"""A local launcher that trains several points of a sweep at once, each in a process of
its own with its share of the cores.

Small models cannot keep several cores busy: most of a step of a model of a few
hundred thousand parameters is spent dispatching kernels, which runs on one thread
whatever the thread count. Two such runs side by side, one thread each, finish nearly
twice as fast as the same two run one after another on two threads (README, "Running
a sweep on the cores of one machine"). Larger models gain less, and a model whose
matmuls fill the cores gains nothing.

Each of the ``jobs`` workers is a fresh interpreter (``spawn``) that runs one job
after another, as the basic launcher runs them all in one process: it composes
nothing itself, it receives each job's config as the basic launcher would pass it,
runs it with Hydra's own ``run_job`` (the same output directories, callbacks and
logs), and returns its result.
The number of threads only changes a run's last bits, not its id (``train.threads`` is
not part of a run's identity), so a sweep can be relaunched under any launcher and
finds its records. A job whose process dies (killed for its memory, say) is reported
on stderr and the others go on; its record tells the rest, as under SLURM
(:class:`scaling.main.SweepReport`).

It lives under ``hydra_plugins`` because Hydra instantiates launchers from there only.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def threads_per_job(jobs: int, threads: int | None = None, cores: int | None = None) -> int:
    """The torch threads each of ``jobs`` concurrent jobs gets: ``threads`` when given,
    else an equal share of the ``cores`` (default: those this process may use), at
    least one."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"hydra.launcher.threads must be >= 1 or null, got {threads}")
        return threads
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


def run_in_processes(
    target: Callable[[Any], Any], payloads: Sequence[Any], jobs: int
) -> list[tuple[bool, Any]]:
    """``target(payload)`` for every payload, in ``jobs`` ``spawn``ed worker processes.

    Each worker takes the next payload as soon as it is free, so the payloads start in
    order; a worker serves many payloads, so the cost of starting an interpreter (and
    of importing torch) is paid once per worker, not once per payload. A worker that
    dies loses only the payload it was running: another takes its place.

    Returns, per payload in order, ``(True, result)``, or ``(False, exit code)`` when
    its worker died without a result. ``target`` must be importable (a module's
    top-level function) and its payloads and results picklable.
    """
    if jobs < 1:
        raise ValueError(f"hydra.launcher.jobs must be >= 1, got {jobs}")
    ctx = multiprocessing.get_context("spawn")
    todo = list(enumerate(payloads))[::-1]  # popped from the end: first payload first
    results: list[tuple[bool, Any] | None] = [None] * len(todo)
    busy: dict[Connection, tuple[Any, int]] = {}  # a worker's end -> (its process, payload)

    def give(conn: Connection, proc: Any) -> None:
        # the next payload to a free worker, or the word to stop when none is left
        if todo:
            i, payload = todo.pop()
            conn.send(payload)
            busy[conn] = (proc, i)
        else:
            conn.send(None)
            conn.close()
            proc.join()

    def start() -> None:
        conn, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(target, child))
        proc.start()
        child.close()  # the worker's end: EOF here once the worker has gone
        give(conn, proc)

    try:
        for _ in range(min(jobs, len(todo))):
            start()
        while busy:
            for conn in wait(list(busy)):
                proc, i = busy.pop(conn)  # type: ignore[index]
                try:
                    results[i] = (True, conn.recv())
                except EOFError:  # the worker ended without replying: it died
                    proc.join()
                    results[i] = (False, proc.exitcode)
                    conn.close()
                    if todo:
                        start()
                    continue
                give(conn, proc)
    finally:
        for conn, (proc, _) in busy.items():  # interrupted: stop what still runs
            proc.terminate()
            proc.join()
            conn.close()
    return [r for r in results if r is not None]


def _worker(target: Callable[[Any], Any], conn: Connection) -> None:
    while (payload := conn.recv()) is not None:
        conn.send(target(payload))


def _run_one(payload: tuple[bytes, int]) -> JobReturn:
    """One job in a worker process: its share of threads, then Hydra's ``run_job``."""
    import cloudpickle

    blob, threads = payload
    # before torch is imported (by unpickling the task function): OpenMP reads it once
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    hydra_context, task_function, config, singleton_state = cloudpickle.loads(blob)
    setup_globals()
    Singleton.set_state(singleton_state)
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    ret.hydra_cfg = None  # the parent has its own; keep the reply small
    return ret


class ParallelLauncher(Launcher):
    """Runs the points of a sweep in ``jobs`` local processes at once.

    Parameters
    ----------
    jobs
        Processes at once (``hydra.launcher.jobs``).
    threads
        Torch threads per process; None: the usable cores shared equally.
    """

    #: "#<job number> (<overrides>)" of each job whose process died, in this process
    died: list[str] = []

    def __init__(self, jobs: int = 2, threads: int | None = None) -> None:
        super().__init__()
        if int(jobs) < 1:  # before anything is composed or launched
            raise ValueError(f"hydra.launcher.jobs must be >= 1, got {jobs}")
        self.jobs = int(jobs)
        self.threads = threads_per_job(self.jobs, threads)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Compose every job's config here, as the basic launcher does, then run them."""
        import cloudpickle

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        log.info(
            f"Launching {len(job_overrides)} jobs locally, {self.jobs} at once, "
            f"{self.threads} thread(s) each"
        )
        if not job_overrides:  # every run of the sweep is done (sweeper.py)
            return []
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        payloads = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            state = Singleton.get_state()
            blob = cloudpickle.dumps((self.hydra_context, self.task_function, config, state))
            payloads.append((blob, self.threads))
        outcomes = run_in_processes(_run_one, payloads, self.jobs)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        returns = []
        for idx, (overrides, (ok, value)) in enumerate(
            zip(job_overrides, outcomes, strict=True), start=initial_job_idx
        ):
            if ok:
                returns.append(value)
                continue
            what = " ".join(filter_overrides(overrides))
            ParallelLauncher.died.append(f"#{idx} ({what})")
            print(f"job #{idx} ({what}) died (exit code {value})", file=sys.stderr, flush=True)
            # as under SLURM: the death is reported, the run's record tells the rest
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED))
        return returns
