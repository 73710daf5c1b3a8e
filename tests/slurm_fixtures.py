"""What the SLURM tests share: the cluster check, the command as a user runs it, and
what SLURM and the job logs say about its jobs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from scaling import results


def cluster_problem() -> str | None:
    """Why no usable cluster is reachable, or None when one is."""
    if not shutil.which("sinfo"):
        return "no SLURM commands on PATH"
    try:
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=30
        )
        # submitit follows its jobs with sacct: without accounting it cannot tell when one ends
        sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo or sacct did not answer within 30 s"
    conf = f"SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}"
    if sinfo.returncode != 0:
        return f"sinfo failed with {conf}: {last_line(sinfo.stderr)}"
    if "up" not in sinfo.stdout.split():
        return f"no partition is up ({conf})"
    if sacct.returncode != 0:
        return f"sacct failed (submitit needs accounting): {last_line(sacct.stderr)}"
    return None


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------
# Helpers: the command as a user runs it, and what SLURM says about its jobs


def popen(*args: str, cwd: Path) -> subprocess.Popen:
    """`scaling-train ARGS` in the background, from ``cwd``, its output captured."""
    exe = Path(sys.executable).with_name("scaling-train")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [str(exe), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def scaling_train(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = popen(*args, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # the jobs it submitted are cancelled by stop-local-slurm.sh at the end
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def records(sweep_dir: Path) -> dict[str, dict]:
    return {d.name: s for d, s in results.iter_runs(sweep_dir)}


def only_run(sweep_dir: Path) -> Path:
    (run,) = [d for d, _ in results.iter_runs(sweep_dir)]
    return run


def comparable(run: Path) -> list[dict]:
    # wall-clock time differs between any two runs; everything else must not
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in results.read_metrics(run)]


def sacct(job: str, timeout: float = 30) -> list[str]:
    """The states of each allocation of one job, oldest first (a requeued job has several),
    once the last has ended: submitit sees a job's result before SLURM marks it done."""
    t0 = time.time()
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "--duplicates", "-j", job, "-o", "JobID,State"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        states = [ln.split("|")[1] for ln in out.stdout.split() if ln.split("|")[0] == job]
        if states and states[-1] not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"):
            return states
        assert time.time() - t0 < timeout, f"job {job} still {states} after {timeout} s"
        time.sleep(0.5)


def exit_code(job: str) -> str:
    """`code:signal` of the job's last allocation, as sacct gives it."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "ExitCode"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.split()[-1]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"ended early:\n{proc.stdout.read()}\n{proc.stderr.read()}")
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


def metrics_lines(sweep_dir: Path) -> int:
    runs = [d for d, _ in results.iter_runs(sweep_dir)]
    return len(results.read_metrics(runs[0])) if runs else 0


def signals(log: str, case: str) -> set[str]:
    """When submitit caught USR2 and judged the job `preempted` or `timed-out`.

    submitit logs each warning to stdout and stderr, and Hydra's logging once more: the
    job log (both streams) holds each a few times, with one time stamp.
    """
    return set(re.findall(rf"\(([^)]+)\) - Caught signal SIGUSR2 on \S+ this job is {case}", log))


def stops_and_resumes(log: str) -> tuple[list[int], list[int]]:
    """The steps a job log says the run checkpointed and stopped at, and resumed from."""
    stops = [int(s) for s in re.findall(r"checkpoint at step (\d+), stopping", log)]
    resumes = [int(s) for s in re.findall(r"resuming from step (\d+)/", log)]
    return stops, resumes


def holding_usr2(folder: Path) -> int | None:
    """The pid of a job process started from ``folder`` that now catches USR2, if any.

    Our job command (hydra_plugins/scaling_lab/job_start.py) catches it within
    milliseconds of Python's start, submitit's own handler only once the job's pickle is
    loaded, tenths of a second later.
    """
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if "job_start" not in cmdline or str(folder) not in cmdline:
                continue
            status = (proc / "status").read_text()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        if caught >> (signal.SIGUSR2 - 1) & 1:
            return int(proc.name)
    return None
