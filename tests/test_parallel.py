"""The parallel local launcher: its worker processes, their threads, and a sweep run
through it against the same sweep run one job after another."""

import json
import os
import time
from pathlib import Path

import pytest

from hydra_plugins.scaling_lab.parallel import ParallelLauncher, run_in_processes, threads_per_job
from tests.test_main import scaling_train


# Targets run in spawned workers, so they live at the top of an importable module.
def pid_of(_payload) -> int:
    return os.getpid()


def die_on_three(payload: int) -> int:
    if payload == 3:
        os._exit(7)  # as a process killed for its memory: no reply, no cleanup
    return payload * 10


def meet(payload: tuple[str, str]) -> int:
    """Leave a mark in a folder, then wait (up to 20 s) until two marks are there:
    returns how many were seen, so 2 only when two payloads ran at the same time."""
    folder, name = payload
    Path(folder, name).touch()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = len(list(Path(folder).iterdir()))
        if seen >= 2:
            return seen
        time.sleep(0.05)
    return len(list(Path(folder).iterdir()))


def test_payloads_run_at_once_in_as_many_workers_as_jobs(tmp_path):
    out = run_in_processes(meet, [(str(tmp_path), "a"), (str(tmp_path), "b")], jobs=2)
    assert out == [(True, 2), (True, 2)]


def test_workers_are_reused_and_results_come_back_in_order():
    out = run_in_processes(pid_of, list(range(6)), jobs=2)
    assert all(ok for ok, _ in out)
    pids = {pid for _, pid in out}
    assert len(pids) == 2  # six payloads, two interpreters started
    assert os.getpid() not in pids


def test_a_worker_that_dies_loses_only_its_payload():
    out = run_in_processes(die_on_three, [1, 2, 3, 4, 5], jobs=2)
    assert out == [(True, 10), (True, 20), (False, 7), (True, 40), (True, 50)]


def test_zero_jobs_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"hydra\.launcher\.jobs must be >= 1"):
        run_in_processes(pid_of, [1], jobs=0)
    with pytest.raises(ValueError, match=r"hydra\.launcher\.jobs must be >= 1, got 0"):
        ParallelLauncher(jobs=0)


@pytest.mark.parametrize(
    "jobs,threads,cores,expected",
    [(2, None, 2, 1), (3, None, 16, 5), (4, None, 2, 1), (2, 3, 2, 3), (1, None, 8, 8)],
)
def test_each_job_gets_its_share_of_the_cores(jobs, threads, cores, expected):
    assert threads_per_job(jobs, threads, cores) == expected


def test_zero_threads_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"hydra\.launcher\.threads"):
        threads_per_job(2, 0, 2)


def curves(sweep: Path) -> dict[str, list[dict]]:
    """Each run's curve, less the wall-clock times."""
    out = {}
    for d in sweep.iterdir():
        if (d / "metrics.jsonl").exists():
            rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            out[d.name] = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    return out


def test_a_sweep_run_two_jobs_at_once_writes_the_records_of_one_run_after_another(tmp_path):
    # one thread everywhere, so that the two launches compute the very same numbers
    quick = ("experiment=smoke", "train.tokens=16384", "train.threads=1")
    parallel = ("-m", "hydra/launcher=parallel", "hydra.launcher.jobs=2", "results_dir=par")
    out = scaling_train(*parallel, *quick, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Launching 3 jobs locally, 2 at once, 1 thread(s) each" in out.stdout
    assert out.stdout.count("training in") == 3
    assert "sweep smoke" in out.stdout  # the closing table, from the launching process
    seq = scaling_train("-m", "results_dir=seq", *quick, cwd=tmp_path)
    assert seq.returncode == 0, seq.stderr
    a, b = curves(tmp_path / "par" / "smoke"), curves(tmp_path / "seq" / "smoke")
    assert len(a) == 3 and a == b  # the same run ids and bit-identical curves

    again = scaling_train(*parallel, *quick, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already completed") == 3
    assert "Launching 0 jobs" in again.stdout
