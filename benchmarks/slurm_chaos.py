"""Chaos at scale on a live SLURM cluster: a sweep that survives requeues, preemptions, kills.

Launches a sweep of tiny models (`experiment=smoke`, d_model 16, one seed per run) as one
job array, and while it runs, at random moments (a Poisson process per kind of fault),
hits a random running job of the sweep with one of

  requeue   `scontrol requeue JOB`: SIGTERM, the run checkpoints, the job runs again
  preempt   a one-CPU job in partition `high` when the node is full of the sweep's jobs:
            SLURM preempts one of them (USR2, checkpoint, requeue)
  kill      SIGKILL to every process of the job (`scontrol listpids`) at once, as from the
            OOM killer: the run loses what it did since its last checkpoint

then relaunches the same command until every run is completed (faults are injected in the
first `--faulty-launches` launches only, so that it ends). Meanwhile the same configs
train uninterrupted in one local process (`hydra/launcher=local`) into another directory.

It reports runs completed, faults, launches, and compares every record with its local
twin bit for bit: `final_val_loss` and the whole `metrics.jsonl` (less the wall-clock
`elapsed_s`). A file is torn when a `summary.json` is not a JSON object, or a
`metrics.jsonl` line is cut short, not JSON, or its steps do not strictly increase.

    eval "$(scripts/start-local-slurm.sh)"
    python benchmarks/slurm_chaos.py                      # 64 runs, ~1 fault a minute of each kind
    python benchmarks/slurm_chaos.py --runs 12 --out chaos --kill-rate 6

Progress goes to stderr; the end is a table and one JSON line on stdout. Exits with 1
when a run is missing, a loss differs or a file is torn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BIN = Path(sys.executable).parent
SWEEP = "chaos"
KINDS = ("requeue", "preempt", "kill")


def sweep_args(runs: int, seed0: int, d_model: int, tokens: int) -> list[str]:
    """The sweep both launchers train: one tiny model per seed."""
    return [
        "-m",
        "experiment=smoke",
        f"sweep={SWEEP}",
        f"model.d_model={d_model}",
        f"train.tokens={tokens}",
        # evaluations every 4 steps, checkpoints every 8: a kill loses at most 8 steps
        "train.ckpt_every=8",
        "train.threads=1",
        f"seed=range({seed0},{seed0 + runs})",
    ]


# one CPU per job and one thread per run: two jobs share two cores without fighting
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]


def sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def say(t0: float, msg: str) -> None:
    print(f"[chaos {time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# What the sweep's records and SLURM say


def run_dirs(sweep_dir: Path) -> list[Path]:
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_json(path: Path) -> dict | None:
    """A summary as it is now, or None when missing or unreadable (judged later)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def statuses(sweep_dir: Path) -> dict[str, tuple[str, str]]:
    """Each run's (status, SLURM job id of its last job), by run id."""
    out = {}
    for d in run_dirs(sweep_dir):
        s = read_json(d / "summary.json")
        if s is not None:
            out[d.name] = (s.get("status", "?"), (s.get("launcher") or {}).get("job_id", ""))
    return out


def arrays(sweep_dir: Path) -> set[str]:
    """The job arrays the sweep submitted: submitit names a folder after each task."""
    sub = sweep_dir / ".submitit"
    if not sub.is_dir():
        return set()
    return {p.name.split("_")[0] for p in sub.iterdir() if p.name.split("_")[0].isdigit()}


def running_jobs() -> dict[str, str]:
    """The running jobs of the cluster, array tasks one by one: ``{"123_4": "127"}``, the
    id as sacct and the records give it, to the task's own job id (`scontrol listpids`
    takes only that)."""
    out = sh("squeue", "-h", "-r", "-t", "R", "-o", "%i|%A")
    return dict(ln.split("|", 1) for ln in out.stdout.split()) if out.returncode == 0 else {}


def node_full() -> bool:
    """Whether no CPU of the cluster is idle (`sinfo %C`: allocated/idle/other/total)."""
    out = sh("sinfo", "-h", "-o", "%C")
    try:
        return out.returncode == 0 and int(out.stdout.split()[0].split("/")[1]) == 0
    except (IndexError, ValueError):
        return False


def slurm_states(ids: set[str]) -> Counter:
    """How every allocation of the sweep's jobs ended, requeued ones included."""
    if not ids:
        return Counter()
    out = sh("sacct", "-n", "-X", "-P", "--duplicates", "-j", ",".join(sorted(ids)), "-o", "State")
    return Counter(s.split()[0] for s in out.stdout.split("\n") if s.strip())


# ---------------------------------------------------------------------------------------
# Faults


class Chaos:
    """Injects faults into the running jobs of a sweep at Poisson times.

    Kinds come in proportion to their rates (the kind furthest behind its share goes
    next), so a few faults already include every kind with a positive rate. A requeue or
    kill waits, with probability ``training_share``, for a job whose run is training (a
    tiny run spends most of its job starting Python), else hits any running job; a fault
    that finds no job to hit waits for one.
    """

    def __init__(
        self,
        rates: dict[str, float],
        training_share: float,
        max_faults: int | None,
        rng: random.Random,
        sweep_dir: Path,
        t0: float,
    ) -> None:
        self.rates = {k: r for k, r in rates.items() if r > 0}
        self.training_share, self.max_faults = training_share, max_faults
        self.rng, self.sweep_dir, self.t0 = rng, sweep_dir, t0
        self.total = sum(self.rates.values())
        self.done: Counter = Counter()
        self.by_phase: Counter = Counter()
        self.log: list[dict] = []
        self.high_jobs: list[str] = []
        self.next_at = self._draw(time.time())
        self.pending: tuple[str, bool] | None = None  # kind, and whether it waits for training

    def _draw(self, now: float) -> float:
        return now + self.rng.expovariate(self.total / 60) if self.total else float("inf")

    def _next_kind(self) -> str:
        n = sum(self.done.values()) + 1
        return max(self.rates, key=lambda k: (self.rates[k] / self.total * n - self.done[k], k))

    def tick(self) -> None:
        now = time.time()
        if self.pending is None:
            if now < self.next_at or sum(self.done.values()) == self.max_faults:
                return
            kind = self._next_kind()
            self.pending = (kind, kind != "preempt" and self.rng.random() < self.training_share)
        kind, in_training = self.pending
        ours = arrays(self.sweep_dir)
        running = running_jobs()
        mine = sorted(j for j in running if j.split("_")[0] in ours)
        phases = self._phases()
        if in_training:
            mine = [j for j in mine if phases.get(j) == "training"]
        if not mine:
            return
        if kind == "preempt":
            # only when the sweep holds every CPU: the `high` job then preempts one of its
            # jobs, and never another user's
            if len(mine) != len(running) or not node_full():
                return
            ok, why, high = self._preempt()
            victim, phase = f"{high}, preempting one of " + ",".join(mine), "-"
        else:
            victim = self.rng.choice(mine)
            phase = phases.get(victim, "starting")
            if kind == "requeue":
                ok, why = self._requeue(victim)
            else:
                ok, why = self._kill(victim, running[victim])
        self.pending, self.next_at = None, self._draw(now)
        entry = {"t": round(now - self.t0, 1), "kind": kind, "job": victim, "phase": phase}
        self.log.append({**entry, "ok": ok, "error": why})
        if ok:
            self.done[kind] += 1
            if kind != "preempt":
                self.by_phase[phase] += 1
        say(self.t0, f"{kind} {victim} ({phase}): {'ok' if ok else why}")

    def _phases(self) -> dict[str, str]:
        """What each job's run is doing, as its record says: by SLURM job id."""
        return {
            job: "training" if status == "running" else f"after {status}"
            for status, job in statuses(self.sweep_dir).values()
        }

    def _requeue(self, job: str) -> tuple[bool, str]:
        out = sh("scontrol", "requeue", job)
        return out.returncode == 0, out.stderr.strip()[-200:]

    def _preempt(self) -> tuple[bool, str, str]:
        out = sh("sbatch", "--parsable", "-p", "high", "-c", "1", "--mem=64M", "-J",
                 "chaos-high", "-o", os.devnull, "--wrap", "sleep 1")  # fmt: skip
        high = out.stdout.strip().split(";")[0] if out.returncode == 0 else "-"
        if out.returncode == 0:
            self.high_jobs.append(high)
        return out.returncode == 0, out.stderr.strip()[-200:], high

    def _kill(self, job: str, raw_id: str) -> tuple[bool, str]:
        """SIGKILL to every process of the job at once (its batch script, srun, the run),
        from outside SLURM, as the OOM killer would: no handler runs, SLURM sees it die."""
        out = sh("scontrol", "listpids", raw_id)
        pids = [int(ln.split()[0]) for ln in out.stdout.splitlines()[1:] if ln.split()]
        killed = 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass  # gone meanwhile
        return killed > 0, "" if killed else f"no process of job {job}: {out.stderr.strip()}"

    def cleanup(self) -> None:
        if self.high_jobs:
            sh("scancel", *self.high_jobs)


# ---------------------------------------------------------------------------------------
# Checks


def torn_files(sweep_dir: Path) -> list[str]:
    """Every record file that a reader could not take whole, with why."""
    bad = []
    for d in run_dirs(sweep_dir):
        summary = d / "summary.json"
        if summary.exists() and read_json(summary) is None:
            bad.append(f"{summary}: not a JSON object")
        metrics = d / "metrics.jsonl"
        if not metrics.exists():
            continue
        data = metrics.read_bytes()
        if data and not data.endswith(b"\n"):
            bad.append(f"{metrics}: last line cut short")
            continue
        steps = []
        try:
            steps = [json.loads(ln)["step"] for ln in data.decode().splitlines()]
        except (ValueError, KeyError, TypeError) as e:
            bad.append(f"{metrics}: a line is not a metrics row ({e})")
            continue
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            bad.append(f"{metrics}: steps not strictly increasing: {steps}")
    return bad


def job_log_events(sweep_dir: Path) -> dict[str, int]:
    """What the jobs' logs say happened: USR2 handled by submitit at a preemption, and
    runs whose task died of a USR2 that came before submitit's handler was in place."""
    handled, unhandled = set(), 0
    for log in sorted((sweep_dir / ".submitit").glob("*/*_log.out")):
        text = log.read_text(errors="replace")
        # submitit writes each warning to both streams, and Hydra's logging once more
        handled |= {(log, t) for t in re.findall(PREEMPTED, text)}
        unhandled += len(re.findall(r"task \d+: User defined signal 2", text))
    return {"preempted_and_checkpointed": len(handled), "died_of_early_usr2": unhandled}


PREEMPTED = r"\(([^)]+)\) - Caught signal SIGUSR2 on \S+ this job is preempted"


def stray_temps(sweep_dir: Path) -> list[str]:
    """Temp files of atomic writes left behind by a killed process."""
    return sorted(str(p) for d in run_dirs(sweep_dir) for p in d.glob("*.tmp"))


def curve(run: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]


def compare(slurm_dir: Path, local_dir: Path) -> dict[str, list[str]]:
    """Run ids whose SLURM record matches its local twin: loss and last row, whole curve."""
    same_loss, same_curve, differ = [], [], []
    for ref in run_dirs(local_dir):
        got = slurm_dir / ref.name
        a, b = read_json(got / "summary.json"), read_json(ref / "summary.json")
        if a is None or b is None or a.get("status") != "completed":
            differ.append(ref.name)
            continue
        try:
            ca, cb = curve(got), curve(ref)
        except (OSError, ValueError):  # counted among the torn files
            differ.append(ref.name)
            continue
        if a["final_val_loss"] == b["final_val_loss"] and ca[-1:] == cb[-1:]:
            same_loss.append(ref.name)
        else:
            differ.append(ref.name)
        if ca == cb:
            same_curve.append(ref.name)
    return {"identical_losses": same_loss, "identical_curves": same_curve, "differ": differ}


# ---------------------------------------------------------------------------------------


def launch(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([str(BIN / "scaling-train"), *args], cwd=cwd, env=env,
                                stdout=f, stderr=subprocess.STDOUT)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=64, help="runs in the sweep (one seed each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chaos (victims, times)")
    p.add_argument("--requeue-rate", type=float, default=1.0, help="per minute")
    p.add_argument("--preempt-rate", type=float, default=1.0, help="per minute")
    p.add_argument("--kill-rate", type=float, default=1.0, help="per minute")
    p.add_argument("--training-share", type=float, default=0.5,
                   help="share of requeues and kills that wait for a run in training")  # fmt: skip
    p.add_argument("--max-faults", type=int, help="stop injecting after this many")
    p.add_argument("--faulty-launches", type=int, default=2,
                   help="launches that get faults; the later ones run undisturbed")  # fmt: skip
    p.add_argument("--time-limit", type=float, default=3600, help="seconds; then give up")
    p.add_argument("--tokens", type=int, default=32768, help="per run (1,024 per step)")
    p.add_argument("--d-model", type=int, default=16)
    p.add_argument("--out", type=Path, help="keep the records here (default: a temp dir)")
    a = p.parse_args(argv)
    if a.runs < 1 or a.tokens < 1024 or a.faulty_launches < 0 or a.time_limit <= 0:
        p.error("--runs ≥ 1, --tokens ≥ 1024, --faulty-launches ≥ 0, --time-limit > 0")
    if a.max_faults is not None and a.max_faults < 0:
        p.error("--max-faults cannot be negative")
    if not 0 <= a.training_share <= 1:
        p.error("--training-share is a probability, between 0 and 1")
    if min(a.requeue_rate, a.preempt_rate, a.kill_rate) < 0:
        p.error("fault rates are per minute and cannot be negative")
    if not shutil.which("sbatch"):
        raise SystemExit("slurm_chaos: no SLURM commands on PATH; start a cluster with "
                         'eval "$(scripts/start-local-slurm.sh)"')  # fmt: skip

    out = a.out or Path(tempfile.mkdtemp(prefix="slurm-chaos-"))
    out.mkdir(parents=True, exist_ok=True)
    slurm_dir, local_dir = out / "slurm" / SWEEP, out / "local" / SWEEP
    if run_dirs(slurm_dir) or run_dirs(local_dir):
        raise SystemExit(f"slurm_chaos: {out} already holds a chaos sweep; pass a new --out")
    sweep = sweep_args(a.runs, 0, a.d_model, a.tokens)
    t0 = time.time()
    rates = {"requeue": a.requeue_rate, "preempt": a.preempt_rate, "kill": a.kill_rate}
    chaos = Chaos(rates, a.training_share, a.max_faults, random.Random(a.seed), slurm_dir, t0)

    # the uninterrupted twin, one process, meanwhile
    reference = launch([*sweep, f"results_dir={out / 'local'}"], out, out / "local.log")
    launches, complete, gave_up, ref_wall = 0, False, False, None
    try:
        while not complete and not gave_up:
            launches += 1
            faulty = launches <= a.faulty_launches
            say(t0, f"launch {launches}{' (with faults)' if faulty else ''}")
            proc = launch([*sweep, *SLURM, f"results_dir={out / 'slurm'}"], out, out / "slurm.log")
            last = 0.0
            while proc.poll() is None:
                if faulty:
                    chaos.tick()
                if ref_wall is None and reference.poll() is not None:
                    ref_wall = time.time() - t0
                    say(t0, f"local reference done (exit {reference.returncode})")
                if time.time() - last > 15:
                    last = time.time()
                    s = Counter(st for st, _ in statuses(slurm_dir).values())
                    say(t0, f"{s['completed']}/{a.runs} completed, {dict(s)}, faults "
                            f"{dict(chaos.done)}")  # fmt: skip
                if time.time() - t0 > a.time_limit:
                    gave_up = True
                    proc.terminate()
                    break
                time.sleep(0.5)
            proc.wait()
            s = statuses(slurm_dir)
            complete = len(s) == a.runs and all(st == "completed" for st, _ in s.values())
            done = sum(st == "completed" for st, _ in s.values())
            say(t0, f"launch {launches} ended (exit {proc.returncode}): {done}/{a.runs} completed")
        if not gave_up:
            reference.wait(timeout=max(1.0, a.time_limit - (time.time() - t0)))
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        gave_up = True
    finally:
        chaos.cleanup()
        reference.kill()  # a no-op once it has ended
        if gave_up and arrays(slurm_dir):
            sh("scancel", *sorted(arrays(slurm_dir)))
    wall = time.time() - t0
    if ref_wall is None and reference.returncode == 0:
        ref_wall = wall

    time.sleep(1)  # sacct records an allocation's end a moment after the job ends
    states = slurm_states(arrays(slurm_dir))
    same = compare(slurm_dir, local_dir)
    torn = torn_files(slurm_dir) + torn_files(local_dir)
    temps = stray_temps(slurm_dir) + stray_temps(local_dir)
    completed = sum(st == "completed" for st, _ in statuses(slurm_dir).values())
    record = {
        "benchmark": "slurm_chaos",
        "runs": a.runs,
        "completed": completed,
        "requeues": chaos.done["requeue"],
        "preemptions": chaos.done["preempt"],
        "kills": chaos.done["kill"],
        "relaunches": launches - 1,
        "identical_losses": len(same["identical_losses"]),
        "identical_curves": len(same["identical_curves"]),
        "torn_files": len(torn),
        "stray_temp_files": len(temps),
        "faults_by_phase": dict(chaos.by_phase),
        "job_logs": job_log_events(slurm_dir),
        "slurm_allocations": dict(states),
        "wall_s": round(wall, 1),
        "reference_wall_s": None if ref_wall is None else round(ref_wall, 1),
        "seed": a.seed,
        "out": str(out),
    }
    (out / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in chaos.log))
    ok = completed == a.runs == record["identical_losses"] and not torn
    print_table(record, same["differ"], torn, temps)
    print(json.dumps({**record, "goal_met": ok}))
    if a.out is None and ok:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if ok else 1


def print_table(record: dict, differ: list[str], torn: list[str], temps: list[str]) -> None:
    n = record["runs"]
    rows = [
        ("runs completed", f"{record['completed']}/{n}"),
        ("requeues (scontrol requeue)", record["requeues"]),
        ("preemptions (a job in `high`)", record["preemptions"]),
        ("kills (SIGKILL to every process of a job)", record["kills"]),
        ("faults by what the run was doing", record["faults_by_phase"]),
        ("relaunches", record["relaunches"]),
        (
            "job logs: preempted and checkpointed / died of an early USR2",
            "{preempted_and_checkpointed} / {died_of_early_usr2}".format(**record["job_logs"]),
        ),
        ("SLURM allocations by end state", record["slurm_allocations"]),
        ("final loss and row identical to the local run", f"{record['identical_losses']}/{n}"),
        ("whole curve identical", f"{record['identical_curves']}/{n}"),
        ("torn files", record["torn_files"]),
        ("temp files left by killed writes", record["stray_temp_files"]),
        ("wall time (s)", record["wall_s"]),
        ("local reference wall time (s)", record["reference_wall_s"]),
    ]
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for what, items in (("differ", differ), ("torn", torn), ("temp files", temps)):
        if items:
            print(f"{what}: " + "; ".join(items[:10]))


if __name__ == "__main__":
    sys.exit(main())
