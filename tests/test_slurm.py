"""Sweeps on a live SLURM cluster: job arrays, preemption, time limits, failures, status.

Nothing here is mocked: `scaling-train -m ... hydra/launcher=slurm` submits real jobs
through submitit and waits for them, as a user's command would. The tests need a cluster
the SLURM commands reach (through ``SLURM_CONF``); a single-node one runs on this
machine with

    eval "$(scripts/start-local-slurm.sh)"

and `.ci/run` starts it for CI. Without a cluster the tests are skipped, unless
``SCALING_LAB_REQUIRE_SLURM=1`` (set by CI), which makes that an error.

The local cluster has two partitions: ``debug`` (the default) and ``high``, whose jobs
preempt those in ``debug``. Every job here asks for one CPU and trains with one thread,
so that two jobs share two cores without fighting.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_fixtures import (
    cluster_problem,
    comparable,
    config,
    exit_code,
    holding_usr2,
    metrics_lines,
    only_run,
    popen,
    records,
    sacct,
    scaling_train,
    signals,
    stops_and_resumes,
    wait_for,
)

from scaling import results

# Under pytest-xdist one worker runs these one after another (conftest.py): the tests share
# one node, and a test's preempting job in `high` would requeue the jobs of any other test
# running meanwhile, which then would not end as that test expects.
pytestmark = pytest.mark.slurm

SLURM = ("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "train.threads=1")
# A run of ~640 steps: 15-20 s of training on one core, long enough to stop it midway
LONG = ("experiment=smoke", "model.d_model=32", "train.tokens=655360")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    problem = cluster_problem()
    if problem is None:
        return
    if os.environ.get("SCALING_LAB_REQUIRE_SLURM") == "1":
        pytest.fail(f"SCALING_LAB_REQUIRE_SLURM=1 but no SLURM cluster: {problem}", pytrace=False)
    pytest.skip(
        f'no SLURM cluster ({problem}); start one with eval "$(scripts/start-local-slurm.sh)"'
    )


@pytest.fixture(autouse=True)
def cancel_leftover_jobs(tmp_path):
    """Cancel the jobs a test submitted, when it fails before they end: they would hold
    the CPUs the next test needs. Their ids name the folders under .submitit/."""
    yield
    jobs = {p.name.split("_")[0] for p in tmp_path.glob("**/.submitit/*") if p.is_dir()}
    if jobs:
        subprocess.run(["scancel", *sorted(jobs)], capture_output=True, timeout=30)


def test_sweep_runs_as_a_job_array_and_records_each_job(tmp_path):
    out = scaling_train(
        "-m", "experiment=smoke", "train.tokens=16384", *SLURM, "results_dir=r", cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr
    sweep = tmp_path / "r" / "smoke"
    recs = records(sweep)
    assert len(recs) == 3
    assert {s["status"] for s in recs.values()} == {"completed"}

    # one job array, one job per point, each recorded with its own log
    launchers = {rid: s["launcher"] for rid, s in recs.items()}
    (array,) = {info["job_id"].split("_")[0] for info in launchers.values()}
    assert sorted(info["array_index"] for info in launchers.values()) == [0, 1, 2]
    for rid, info in launchers.items():
        assert info["kind"] == "slurm"
        assert info["job_id"] == f"{array}_{info['array_index']}"
        log = Path(info["stdout"])
        assert log.is_relative_to(sweep / ".submitit")
        text = log.read_text()
        assert f"training in {Path('r') / 'smoke' / rid}" in text
        assert "Job completed successfully" in text
        assert sacct(info["job_id"]) == ["COMPLETED"]

    # the status table shows where each run ran, so nobody digs through .submitit
    status = scaling_train("status", str(sweep), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    for info in launchers.values():
        assert info["job_id"] in status.stdout and info["stdout"] in status.stdout
    assert "3 completed" in status.stdout

    # relaunching the finished sweep submits nothing
    jobs_before = sorted(p.name for p in (sweep / ".submitit").iterdir())
    again = scaling_train(
        "-m", "experiment=smoke", "train.tokens=16384", *SLURM, "results_dir=r", cwd=tmp_path
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already completed") == 3
    assert sorted(p.name for p in (sweep / ".submitit").iterdir()) == jobs_before


def test_failed_point_is_reported_and_relaunch_trains_only_failed_and_missing(tmp_path):
    # 32 wide with 7 heads is impossible; 2 and 4 heads train
    sweep_args = ("-m", "experiment=smoke", "model.d_model=32", "model.n_heads=2,4,7")
    args = (*sweep_args, "train.tokens=16384", *SLURM, "results_dir=r")
    first = scaling_train(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    sweep = tmp_path / "r" / "smoke"
    recs = records(sweep)
    # the failed run's summary has no shape (it failed resolving it): read its config
    by_heads = {config(sweep / rid)["model"]["n_heads"]: (rid, s) for rid, s in recs.items()}
    assert {h: s["status"] for h, (_, s) in by_heads.items()} == {
        2: "completed",
        4: "completed",
        7: "failed",
    }

    # the failed run: its traceback beside its record, its job and log in the record...
    bad, bad_rec = by_heads[7]
    assert "n_heads" in bad_rec["error"]
    assert "Traceback" in (sweep / bad / "error.txt").read_text()
    log = bad_rec["launcher"]["stdout"]
    assert "ValueError" in Path(log).read_text()
    # ...and in the command's output, with the exit code
    assert f"FAILED run {bad}" in first.stderr
    assert str(Path("r") / "smoke" / bad / "error.txt") in first.stderr
    assert f"log: {log}" in first.stderr
    assert "1 run(s) failed" in first.stderr

    # a run gone missing (as if its job never started), then the same command again
    kept, kept_rec = by_heads[2]
    missing, _ = by_heads[4]
    shutil.rmtree(sweep / missing)
    again = scaling_train(*args, cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr  # n_heads=7 is still impossible
    after = records(sweep)
    arrays = {rid: s["launcher"]["job_id"].split("_")[0] for rid, s in after.items()}
    first_array, new_array = arrays[kept], arrays[missing]
    assert first_array != new_array
    assert {rid for rid, a in arrays.items() if a == new_array} == {missing, bad}
    assert after[kept] == kept_rec  # not even rewritten
    assert after[missing]["status"] == "completed" and after[bad]["status"] == "failed"
    # the kept run was not even submitted: the sweeper found its record and said so
    assert len(list((sweep / ".submitit").glob(f"{new_array}_*"))) == 2
    assert f"run {kept} (" in again.stdout and "already completed" in again.stdout


def test_preempted_run_is_requeued_and_resumes_bit_for_bit(tmp_path, request):
    # the uninterrupted reference trains on this machine meanwhile (one thread each)
    reference = popen(*LONG, "train.threads=1", "results_dir=ref", cwd=tmp_path)
    sweep = tmp_path / "slurm" / "smoke"
    proc = popen("-m", *LONG, *SLURM, "results_dir=slurm", cwd=tmp_path)
    request.addfinalizer(reference.kill)
    try:
        # midway, a job in partition `high` wants the whole node: SLURM preempts ours
        wait_for(lambda: metrics_lines(sweep) >= 2, proc)
        high = subprocess.run(
            ["sbatch", "--parsable", "-p", "high", "--exclusive", "-o", os.devnull]
            + ["--wrap", "sleep 1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    run = only_run(sweep)
    summary = results.read_summary(run)
    assert summary["status"] == "completed"

    # USR2 at preemption -> checkpoint -> requeue -> the same job resumes at that step
    job = summary["launcher"]["job_id"]
    states = sacct(job)
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED", states
    assert sacct(high) == ["COMPLETED"]
    log = Path(summary["launcher"]["stdout"]).read_text()
    assert len(signals(log, "preempted")) == 1  # submitit's word: not counted as a time-out
    stops, resumes = stops_and_resumes(log)
    assert len(stops) == 1 and resumes == stops
    assert 0 < stops[0] < summary["steps_total"]

    # and it ends exactly where the uninterrupted run does
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    ref = only_run(tmp_path / "ref" / "smoke")
    assert ref.name == run.name
    assert comparable(run) == comparable(ref)
    assert summary["final_val_loss"] == results.read_summary(ref)["final_val_loss"]


# A forked-WSD trunk of the same length: three budgets of 160, 320 and 640 steps
TRUNK = (
    "experiment=smoke", "model.d_model=32", "train.tokens=null", "optim.schedule=wsd",
    "train.budgets=[163840,327680,655360]",
)


def test_preempted_trunk_is_requeued_and_writes_the_same_budget_records(tmp_path, request):
    reference = popen(*TRUNK, "train.threads=1", "results_dir=ref", cwd=tmp_path)
    sweep = tmp_path / "slurm" / "smoke"
    proc = popen("-m", *TRUNK, *SLURM, "results_dir=slurm", cwd=tmp_path)
    request.addfinalizer(reference.kill)
    try:
        # preempted once its first budget is recorded: past a cooldown, back on the trunk
        wait_for(lambda: sum(s is not None and s.get("budget_index") == 0
                             for s in records(sweep).values()) == 1, proc)
        subprocess.run(
            ["sbatch", "--parsable", "-p", "high", "--exclusive", "-o", os.devnull]
            + ["--wrap", "sleep 1"],
            capture_output=True,
            text=True,
            check=True,
        )
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    trunk = next(s for s in records(sweep).values() if s and s.get("role") == "trunk")
    assert trunk["status"] == "completed"
    assert [b["status"] for b in trunk["budgets"]] == ["completed"] * 3
    log = Path(trunk["launcher"]["stdout"]).read_text()
    stops, resumes = stops_and_resumes(log)
    assert len(stops) == 1 and resumes == stops

    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    ref_sweep = tmp_path / "ref" / "smoke"
    got = {d.name: comparable(d) for d, _ in results.iter_runs(sweep)}
    assert got == {d.name: comparable(d) for d, _ in results.iter_runs(ref_sweep)}
    assert len(got) == 4  # the trunk and its three budgets


def test_run_cut_by_its_time_limit_is_requeued_until_it_completes(tmp_path):
    # SLURM's shortest time limit is a minute. slurmctld looks at running jobs every 30 s
    # and sends USR2 at the first look that finds at most signal_delay_s + 30 s left: here
    # 0-30 s into the first job, ~20 s into the next ones (they start in step with those
    # looks). The run takes 50-120 s alone (4608 steps, bf16 or fp32), so it needs two
    # to seven jobs.
    out = scaling_train(
        "-m",
        "experiment=smoke",
        "model.d_model=32",
        "train.tokens=4718592",
        *SLURM,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=30",
        "results_dir=r",
        cwd=tmp_path,
        timeout=500,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    run = only_run(tmp_path / "r" / "smoke")
    summary = results.read_summary(run)
    assert summary["status"] == "completed"
    assert summary["step"] == summary["steps_total"]

    job = summary["launcher"]["job_id"]
    states = sacct(job)
    assert states[:-1] and set(states[:-1]) == {"REQUEUED"}, states
    # The last job ends COMPLETED, or FAILED with exit code 12 when its own USR2 (~20 s
    # in) comes while the process exits after finishing the run: Python has put back the
    # default action, which kills it. The run and its result are complete by then.
    assert states[-1] == "COMPLETED" or (states[-1], exit_code(job)) == ("FAILED", "12:0")
    log = Path(summary["launcher"]["stdout"]).read_text()
    # every requeue was submitit's, for a time-out (counted against max_num_timeout)
    assert len(signals(log, "timed-out")) == len(states) - 1
    # the run stopped at a checkpoint at (nearly) each USR2, and the next job resumed
    # exactly there; a USR2 that comes before training has started finds no run to stop
    stops, resumes = stops_and_resumes(log)
    assert 1 <= len(stops) <= len(states) - 1
    assert stops == sorted(set(stops)) and set(resumes) == set(stops)
    # the metrics log has every evaluation once, in order, whatever the interruptions
    steps = [r["step"] for r in results.read_metrics(run)]
    every = summary["steps_total"] // 8  # experiment=smoke: train.n_evals=8
    assert steps == list(range(every, summary["steps_total"] + 1, every))


def test_run_out_of_requeues_is_left_interrupted_and_a_relaunch_finishes_it(tmp_path):
    # As above, with one requeue allowed (max_num_timeout=1) and a run of 70-120 s: the
    # second job's USR2 (~20 s in, after training has started) finds no requeue left.
    base = ("-m", "experiment=smoke", "model.d_model=32", "train.tokens=4718592", *SLURM)
    base = (*base, "results_dir=r")
    limits = ("hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30")
    out = scaling_train(
        *base, *limits, "hydra.launcher.max_num_timeout=1", cwd=tmp_path, timeout=300
    )
    run = only_run(tmp_path / "r" / "smoke")
    summary = results.read_summary(run)
    job = summary["launcher"]["job_id"]
    # the run stopped at a checkpoint and says why; it is not `failed`
    assert summary["status"] == "interrupted" and (run / "checkpoint.pt").exists()
    assert 0 < summary["step"] < summary["steps_total"]
    assert not (run / "error.txt").exists()
    assert sacct(job).count("REQUEUED") == 1
    # the command waited for the job, and names the unfinished run and its log
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"UNFINISHED run {run.name} (interrupted, job {job})" in out.stderr
    assert f"log: {summary['launcher']['stdout']}" in out.stderr
    assert "timed-out too many times" in Path(summary["launcher"]["stdout"]).read_text()

    # relaunched without the short time limit, it resumes from that checkpoint
    again = scaling_train(*base, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    done = results.read_summary(run)
    assert done["status"] == "completed" and done["launcher"]["job_id"] != job
    log = Path(done["launcher"]["stdout"]).read_text()
    assert f"resuming from step {summary['step']}/" in log


def test_requeue_from_outside_checkpoints_at_sigterm_and_resumes(tmp_path):
    # `scontrol requeue` sends SIGTERM, not USR2: submitit only logs it, but the run
    # checkpoints on it and leaves without a result, so the launcher waits for the rerun
    sweep = tmp_path / "r" / "smoke"
    args = ("-m", "experiment=smoke", "model.d_model=32", "train.tokens=327680")
    proc = popen(*args, *SLURM, "results_dir=r", cwd=tmp_path)
    try:
        wait_for(lambda: metrics_lines(sweep) >= 1, proc)
        job = results.read_summary(only_run(sweep))["launcher"]["job_id"]
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, timeout=30)
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    summary = results.read_summary(only_run(sweep))
    assert summary["status"] == "completed" and summary["launcher"]["job_id"] == job
    assert sacct(job) == ["REQUEUED", "COMPLETED"]
    log = Path(summary["launcher"]["stdout"]).read_text()
    assert "stopped by signal SIGTERM" in log
    stops, resumes = stops_and_resumes(log)
    assert len(stops) == 1 and resumes == stops


def test_job_killed_outright_leaves_its_run_lost_and_a_relaunch_resumes_it(tmp_path):
    sweep = tmp_path / "r" / "smoke"
    args = ("-m", "experiment=smoke", "model.d_model=32", "train.tokens=327680")
    args = (*args, *SLURM, "results_dir=r")
    proc = popen(*args, cwd=tmp_path)
    try:
        wait_for(lambda: metrics_lines(sweep) >= 1, proc)
        run = only_run(sweep)
        launcher = results.read_summary(run)["launcher"]
        status = scaling_train("status", str(sweep), "--json", cwd=tmp_path)
        (row,) = json.loads(status.stdout)
        assert row["status"] == "running" and row["job_id"] == launcher["job_id"]

        # as the kernel's OOM killer would: no signal handler runs, nothing is recorded
        os.kill(launcher["pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # the command still waits for its jobs, says which died and where to look
    assert proc.returncode == 1
    assert f"job {launcher['job_id']} " in err and "ended without a result" in err
    assert f"UNFINISHED run {run.name}" in err and f"log: {launcher['stdout']}" in err
    assert sacct(launcher["job_id"]) == ["FAILED"]

    status = scaling_train("status", str(sweep), "--json", cwd=tmp_path)
    (row,) = json.loads(status.stdout)
    assert row["status"] == "lost" and row["log"] == launcher["stdout"]
    table = scaling_train("status", str(sweep), cwd=tmp_path).stdout
    assert "lost" in table and launcher["job_id"] in table

    # relaunching resumes it from its last periodic checkpoint, in a new job
    again = scaling_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = results.read_summary(run)
    assert summary["status"] == "completed"
    assert summary["launcher"]["job_id"] != launcher["job_id"]
    assert "resuming from step" in Path(summary["launcher"]["stdout"]).read_text()


def test_usr2_in_the_first_instant_of_a_job_is_held_and_the_job_requeued(tmp_path):
    # A preemption can come as a job starts: a USR2 before submitit's handler was in place
    # ended the task (Python's default), and SLURM left the job FAILED, not requeued
    sweep = tmp_path / "r" / "smoke"
    args = ("-m", "experiment=smoke", "model.d_model=16", "train.tokens=65536")
    proc = popen(*args, *SLURM, "results_dir=r", cwd=tmp_path)
    try:
        t0 = time.time()
        while (pid := holding_usr2(sweep / ".submitit")) is None:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() - t0 < 120, "no job started"
            time.sleep(0.005)
        os.kill(pid, signal.SIGUSR2)  # as SLURM's preemption warning reaches the task
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    summary = results.read_summary(only_run(sweep))
    assert summary["status"] == "completed"
    job = summary["launcher"]["job_id"]
    assert sacct(job) == ["REQUEUED", "COMPLETED"]
    logs = "".join(f.read_text() for f in (sweep / ".submitit" / job).glob("*_log.*"))
    assert "USR2 came before submitit's handler was in place: delivered now" in logs
    assert len(signals(logs, "preempted")) == 1


CHAOS = Path(__file__).resolve().parents[1] / "benchmarks" / "slurm_chaos.py"


def test_sweep_under_requeues_preemptions_and_kills_ends_as_if_uninterrupted(tmp_path):
    # 12 runs as one array; 6 faults at random moments (2 of each kind, the kinds in
    # proportion to their rates), then relaunches until done; the same configs train
    # meanwhile in one local process
    out_dir = tmp_path / "chaos"
    args = ["--runs", "12", "--seed", "3", "--max-faults", "6", "--faulty-launches", "1"]
    rates = ["--requeue-rate", "6", "--preempt-rate", "6", "--kill-rate", "6"]
    cmd = [sys.executable, str(CHAOS), *args, *rates, "--time-limit", "600"]
    out = subprocess.run([*cmd, "--out", str(out_dir)], capture_output=True, text=True, timeout=700)
    assert out.returncode == 0, out.stdout + out.stderr[-5000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert (report["runs"], report["completed"], report["torn_files"]) == (12, 12, 0)
    assert (report["requeues"], report["preemptions"], report["kills"]) == (2, 2, 2)

    # SLURM's own account of the faults the script says it made
    faults = [json.loads(ln) for ln in (out_dir / "faults.jsonl").read_text().splitlines()]
    done = [f for f in faults if f["ok"]]
    assert len(done) == 6
    for f in done:
        if f["kind"] == "requeue":
            assert "REQUEUED" in sacct(f["job"])
        elif f["kind"] == "kill":
            # killed outright, never requeued: the relaunch trains what it lost
            assert sacct(f["job"])[-1] == "FAILED"
        else:
            assert sacct(f["job"].split(",")[0]) == ["COMPLETED"]  # the `high` job ran
    assert report["relaunches"] >= 1

    # every record is whole, and the same as its uninterrupted twin, bit for bit
    slurm, local = records(out_dir / "slurm" / "chaos"), records(out_dir / "local" / "chaos")
    assert len(slurm) == 12 and slurm.keys() == local.keys()
    for rid, summary in slurm.items():
        assert summary["status"] == "completed"
        assert summary["final_val_loss"] == local[rid]["final_val_loss"]
        got = comparable(out_dir / "slurm" / "chaos" / rid)
        assert got == comparable(out_dir / "local" / "chaos" / rid)
        steps = [row["step"] for row in got]
        assert steps == sorted(set(steps)) and len(steps) == 8  # smoke: train.n_evals=8
    assert not list(out_dir.glob("slurm/chaos/*/*.tmp"))
