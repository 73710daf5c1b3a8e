"""`scaling-train`: a Hydra multirun in a subprocess, relaunching, failures, `status`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaling import results

QUICK = ("train.tokens=16384",)


def scaling_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # the console script, from another directory: the config tree ships with the package
    exe = Path(sys.executable).with_name("scaling-train")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def records(sweep_dir: Path) -> dict[str, dict]:
    return {d.name: s for d, s in results.iter_runs(sweep_dir)}


def test_sweep_trains_every_point_then_relaunch_trains_only_what_is_missing(tmp_path):
    out = scaling_train("-m", "experiment=smoke", "results_dir=runs/r", *QUICK, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    sweep = tmp_path / "runs" / "r" / "smoke"
    first = records(sweep)
    assert len(first) == 3
    assert {s["status"] for s in first.values()} == {"completed"}
    assert sorted(s["d_model"] for s in first.values()) == [16, 32, 48]
    assert out.stdout.count("training in") == 3
    assert "completed" in out.stdout and "sweep smoke" in out.stdout  # the closing table

    # the same command again: nothing is trained, and each run says why
    again = scaling_train("-m", "experiment=smoke", "results_dir=runs/r", *QUICK, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already completed") == 3
    assert "training in" not in again.stdout
    assert "Launching 0 jobs" in again.stdout  # the sweeper skipped them before launching
    assert records(sweep) == first  # not even rewritten

    # one run lost, one interrupted: only those two are trained
    lost, interrupted, kept = sorted(first)
    shutil.rmtree(sweep / lost)
    s = results.read_summary(sweep / interrupted)
    results.write_summary(sweep / interrupted, {**s, "status": "interrupted"})
    third = scaling_train("-m", "experiment=smoke", "results_dir=runs/r", *QUICK, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("training in") == 2
    assert third.stdout.count("already completed") == 1
    assert "Launching 2 jobs" in third.stdout
    after = records(sweep)
    assert after[kept] == first[kept]
    assert {s["status"] for s in after.values()} == {"completed"}
    # a retrained run lands on the same numbers (deterministic on CPU)
    assert after[lost]["final_val_loss"] == first[lost]["final_val_loss"]


def test_failed_point_is_recorded_and_reported_while_the_others_complete(tmp_path):
    out = scaling_train(
        "-m", "experiment=smoke", "model.n_heads=1,7", "results_dir=r", *QUICK, cwd=tmp_path
    )
    assert out.returncode == 1
    recs = records(tmp_path / "r" / "smoke")
    by_status = {}
    for rid, s in recs.items():
        by_status.setdefault(s["status"], []).append(rid)
    assert len(by_status["completed"]) == 3 and len(by_status["failed"]) == 3
    for rid in by_status["failed"]:
        assert rid in out.stderr
        assert str(Path("r") / "smoke" / rid / "error.txt") in out.stderr
        assert "Traceback" in (tmp_path / "r" / "smoke" / rid / "error.txt").read_text()
    assert "3 run(s) failed" in out.stderr


def test_status_shows_each_run_and_marks_dead_ones_lost(tmp_path):
    out = scaling_train(
        "experiment=smoke", "model.d_model=16", "results_dir=r", *QUICK, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    sweep = tmp_path / "r" / "smoke"
    (rid,) = records(sweep)
    # a record left `running` by a process that no longer exists
    s = results.read_summary(sweep / rid)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = sweep / "0123456789ab"
    ghost.mkdir()
    results.write_summary(
        ghost, {**s, "status": "running", "launcher": {**s["launcher"], "pid": dead.pid}}
    )

    status = scaling_train("status", str(sweep), "--json", cwd=tmp_path)
    assert status.returncode == 1, status.stderr  # a lost run: scripts can test for it
    rows = {r["run_id"]: r for r in json.loads(status.stdout)}
    assert rows[rid]["status"] == "completed"
    assert rows["0123456789ab"]["status"] == "lost"
    assert rows[rid]["loss"] == s["final_val_loss"]

    table = scaling_train("status", str(sweep), cwd=tmp_path)
    assert rid in table.stdout and "lost" in table.stdout and "1 of 2 completed" in table.stdout
    # its progress lines went to the run's own log, which the log column points at
    row = rows[rid]
    assert row["log"] == str(sweep / rid / "train.log")
    assert f"[{rid}] step " in (sweep / rid / "train.log").read_text()


def test_status_of_a_finetune_sweep_shows_its_sources_tokens_and_its_task_loss(tmp_path):
    from scaling.status import sweep_rows

    sweep = tmp_path / "finetune"
    record = {
        "status": "completed",
        "job": "finetune",
        "family": "llama",
        "d_model": 32,
        "params_nonembed": 26784,
        "pretrain": {"tokens": 524288, "final_val_loss": 2.07},
        "val_loss": 1.91,
        "test_accuracy": 0.3,
    }
    results.write_summary(sweep / "0123456789ab", record)
    (row,) = sweep_rows(sweep)
    assert (row["tokens"], row["loss"], row["params"]) == (524288, 1.91, 26784)


def test_a_slurm_job_whose_run_is_done_ignores_the_time_limit_warning(
    compose, tmp_path, monkeypatch
):
    # USR2 would make submitit requeue the job while it writes its result, and the
    # requeued job fail on the half-written file: once the run is done, it is ignored
    import signal

    from omegaconf import OmegaConf

    from scaling.main import run

    cfg = compose("experiment=smoke", f"results_dir={tmp_path}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    out = results.run_dir(tmp_path, "smoke", results.run_id(resolved))
    results.write_summary(out, {"status": "completed", "final_val_loss": 2.0})
    before = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        run(cfg)  # not under SLURM: signals are left alone
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
        monkeypatch.setenv("SLURM_JOB_ID", "1")
        assert run(cfg)["status"] == "completed"
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, before)


# ---------------------------------------------------------------------------------------
# Bad input: one line naming the key (or file) and the fix, and nothing written


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("scaling-train: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["model.d_model=abc"], "model.d_model='abc' must be a positive whole number"),
        (["train.tokens=-1"], "train.tokens=-1 must be a positive"),
        (["train.tokens=0"], "train.tokens=0 must be a positive"),
        (["optim.batch_tokens=0"], "optim.batch_tokens=0 must be a positive"),
        (["data=text"], "data.path is not set: add data.path=VALUE"),
        (["data=text", "data.path=missing.txt"], "data.path='missing.txt' does not exist"),
        (["-m", "model.d_model=16,abc"], "model.d_model='abc'"),  # checked before launching
        (["-m", "data=text", "data.path=a.txt,b.txt"], "data.path='a.txt' does not exist"),
    ],
)
def test_a_bad_config_ends_with_one_line_and_leaves_no_record(tmp_path, args, says):
    multi = args[:1] == ["-m"]
    rest = args[1:] if multi else args
    first = ["-m"] if multi else []
    out = scaling_train(*first, "experiment=smoke", "results_dir=r", *QUICK, *rest, cwd=tmp_path)
    assert says in one_line_error(out)
    assert records(tmp_path / "r" / "smoke") == {}
    assert "training in" not in out.stdout


@pytest.mark.parametrize("where", ["afile", "afile/sub"])
def test_a_results_dir_that_cannot_be_made_is_one_line(tmp_path, where):
    # a path through a regular file cannot be created even by root
    (tmp_path / "afile").write_text("")
    out = scaling_train(
        "experiment=smoke", "model.d_model=16", f"results_dir={where}", cwd=tmp_path
    )
    line = one_line_error(out)
    assert f"results_dir='{where}' cannot be created: afile is a file" in line
    assert (tmp_path / "afile").read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="permission bits do not stop root")
def test_a_results_dir_without_write_permission_is_one_line(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        out = scaling_train("experiment=smoke", "results_dir=locked/r", cwd=tmp_path)
        assert "cannot be written: no write permission in locked" in one_line_error(out)
    finally:
        (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize(
    "content", [b'{"status": "compl', b"", b"\xff\xfe\x00", b'["completed"]'], ids=str
)
@pytest.mark.parametrize("multi", [False, True], ids=["run", "multirun"])
def test_relaunching_over_an_unreadable_summary_names_the_file(resolved, tmp_path, content, multi):
    cfg = resolved("experiment=smoke", "model.d_model=16", "results_dir=r", *QUICK)
    out_dir = results.run_dir(tmp_path / "r", "smoke", results.run_id(cfg))
    out_dir.mkdir(parents=True)
    (out_dir / "summary.json").write_bytes(content)
    first = ["-m"] if multi else []
    out = scaling_train(
        *first, "experiment=smoke", "model.d_model=16", "results_dir=r", *QUICK, cwd=tmp_path
    )
    line = one_line_error(out)
    assert str(Path("r") / "smoke" / out_dir.name / "summary.json") in line
    assert "delete it to retrain this run" in line
    assert os.listdir(out_dir) == ["summary.json"]  # left as it was


def test_run_refuses_a_bad_config_before_making_its_directory(compose, tmp_path):
    from scaling.checks import ConfigError
    from scaling.main import run

    with pytest.raises(ConfigError, match="train.tokens=-1") as err:
        run(compose("experiment=smoke", f"results_dir={tmp_path}", "train.tokens=-1"))
    assert err.value.key == "train.tokens"
    assert list(tmp_path.iterdir()) == []


def test_help_names_every_experiment_the_groups_status_and_examples(tmp_path):
    out = scaling_train("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    ours, hydra_part = text.split("Hydra's help", 1)
    experiments = sorted(
        p.stem for p in (Path(__file__).parent.parent / "sweeps" / "experiment").glob("*.yaml")
    )
    assert len(experiments) >= 7
    listed = [line.split()[0] for line in ours.splitlines() if line.startswith("  ")]
    for name in experiments:
        assert name in listed, name
    # a line of the smoke experiment's own header, not a name alone
    assert "Three tiny sizes, a few seconds each" in ours
    assert "status PATH" in ours and "scaling-train status" in ours
    assert sum(line.startswith("  scaling-train ") for line in ours.splitlines()) >= 3
    for group in ("model/", "data/", "optim/", "train/", "hydra/launcher/"):
        assert group in ours
    assert "llama*" in ours and "stdlib*" in ours  # the defaults marked
    assert "== Configuration groups ==" in hydra_part and "== Config ==" in hydra_part
