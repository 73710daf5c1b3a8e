"""`scaling-train status`: every point of a sweep, its progress, and unreadable records."""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scaling import results
from scaling.status import main


@pytest.mark.parametrize(
    "content", [b'{"status": "compl', b"", b"\xff\xfe\x00", b'[{"status": "completed"}]']
)
def test_status_over_an_unreadable_summary_says_which_file_in_one_line(tmp_path, capsys, content):
    sweep = tmp_path / "smoke"
    results.write_summary(sweep / "0123456789ab", {"status": "completed", "final_val_loss": 2.0})
    (sweep / "ba9876543210").mkdir()
    (sweep / "ba9876543210" / "summary.json").write_bytes(content)

    assert main([str(sweep)]) == 1
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and out.out == ""
    assert str(sweep / "ba9876543210" / "summary.json") in lines[0]
    assert "delete it to retrain this run" in lines[0]


def test_status_of_readable_records_still_prints_the_table(tmp_path, capsys):
    sweep = tmp_path / "smoke"
    results.write_summary(sweep / "0123456789ab", {"status": "completed", "final_val_loss": 2.0})
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "0123456789ab  completed" in out and "2.0000" in out and "1 completed" in out


# ---- the whole sweep: points from its saved Hydra config ----------------------------------

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "results" / "demo"


def write_multirun_config(sweep: Path) -> None:
    """What Hydra saves of ``scaling-train -m experiment=demo`` that status reads: the
    command line's overrides and the sweeper's params (the run dirs' .hydra is not kept)."""
    experiment = yaml.safe_load((ROOT / "sweeps" / "experiment" / "demo.yaml").read_text())
    saved = {
        "hydra": {
            "overrides": {"task": ["experiment=demo"]},
            "sweeper": {"params": experiment["hydra"]["sweeper"]["params"]},
        }
    }
    (sweep / ".hydra").mkdir(parents=True)
    (sweep / ".hydra" / "multirun.yaml").write_text(yaml.safe_dump(saved))


def demo_trunks() -> dict[int, str]:
    """d_model -> trunk id of the demo sweep, as its launch wrote them (not recomputed)."""
    trunks = {}
    for d in DEMO.iterdir():
        s = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        if s.get("role") == "trunk":
            trunks[s["d_model"]] = d.name
    return trunks


def copy_points(dst: Path, d_models: list[int]) -> Path:
    """The demo sweep's saved config and the records of the trunks of ``d_models``."""
    sweep = dst / "demo"
    write_multirun_config(sweep)
    trunks = demo_trunks()
    for dm in d_models:
        trunk = trunks[dm]
        for d in DEMO.iterdir():
            s = d / "summary.json"
            if s.is_file() and json.loads(s.read_text()).get("trunk_id") == trunk:
                shutil.copytree(d, sweep / d.name)
    return sweep


def rows_of(capsys, argv: list[str]) -> tuple[int, list[dict]]:
    rc = main([*argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_half_done_sweep_lists_every_point_and_says_k_of_n(tmp_path, capsys):
    sweep = copy_points(tmp_path, [16, 24])
    trunks = demo_trunks()

    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "2 of 6 completed, 4 not started" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:12] in trunks.values()}
    for dm in (32, 48, 64, 96):  # the points no launch has reached, by their real ids
        assert "not started" in lines[trunks[dm]] and f" {dm} " in lines[trunks[dm]]
    for dm in (16, 24):
        assert "completed" in lines[trunks[dm]]


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("how", ["failed", "lost"])
def test_a_failed_or_lost_run_makes_status_exit_1(tmp_path, capsys, how):
    sweep = copy_points(tmp_path, [16, 24])
    trunk = demo_trunks()[24]
    s = results.read_summary(sweep / trunk)
    if how == "failed":
        s = {**s, "status": "failed", "error": "RuntimeError: boom"}
    else:
        s = {
            **s,
            "status": "running",
            "launcher": {"kind": "local", "host": platform.node(), "pid": dead_pid()},
        }
    s["budgets"] = [{**b, "status": "pending"} for b in s["budgets"]]
    results.write_summary(sweep / trunk, s)
    for b in s["budgets"][2:]:  # the trunk died before its last three budgets
        shutil.rmtree(sweep / b["run_id"])

    rc, rows = rows_of(capsys, [str(sweep)])
    assert rc == 1
    assert {r["run_id"]: r["status"] for r in rows}[trunk] == how


def test_status_of_a_results_root_shows_one_table_per_sweep(tmp_path, capsys):
    copy_points(tmp_path, [16])
    other = tmp_path / "smoke"
    results.write_summary(other / "0123456789ab", {"status": "completed", "final_val_loss": 2.0})
    (tmp_path / "README.md").write_text("not a sweep")

    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"sweep demo: {tmp_path / 'demo'}" in out and f"sweep smoke: {other}" in out
    assert "1 of 6 completed, 5 not started" in out and "1 of 1 completed" in out


def test_status_of_a_run_directory_shows_that_run_and_its_budgets(tmp_path, capsys):
    sweep = copy_points(tmp_path, [16, 24])
    trunks = demo_trunks()
    rc, rows = rows_of(capsys, [str(sweep / trunks[24])])
    assert rc == 0
    ids = {r["run_id"] for r in rows}
    budget_ids = {b["run_id"] for b in results.read_summary(DEMO / trunks[24])["budgets"]}
    assert ids == {trunks[24]} | budget_ids  # nothing of the other trunk, no unstarted point


def running_record(sweep: Path, rid: str, **extra) -> Path:
    d = sweep / rid
    launcher = {
        "kind": "local",
        "host": platform.node(),
        "pid": os.getpid(),
        "log": f"results/{sweep.name}/.hydra/0/main.log",
    }
    results.write_summary(
        d,
        {
            "status": "running",
            "tokens_target": 10_000,
            "tokens": 3000,
            "launcher": launcher,
            **extra,
        },
    )
    (d / "config.yaml").write_text("model: {family: llama, d_model: 16}\n")
    return d


def test_a_running_run_shows_tokens_per_s_and_eta_from_its_last_progress_line(tmp_path, capsys):
    sweep = tmp_path / "results" / "smoke"
    d = running_record(sweep, "0123456789ab")
    hydra_log = sweep / ".hydra" / "0" / "main.log"
    hydra_log.parent.mkdir(parents=True)
    hydra_log.write_text("")  # what a local run leaves in Hydra's log: nothing
    (d / "train.log").write_text(
        "[0123456789ab] step 10/100 loss 3.0000 lr 1.00e-03 900 tok/s mfu 1.0% eta 999s\n"
        "[0123456789ab] step 20/100 loss 2.9000 lr 1.00e-03 1,234 tok/s mfu 1.0% eta 600s\n"
    )
    rc, (row,) = rows_of(capsys, [str(sweep)])
    assert rc == 0
    assert row["tokens_per_s"] == 1234
    assert 590 <= row["eta_s"] <= 600  # the line was written moments ago
    assert row["log"] == str(d / "train.log")  # the file with the run's output
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "1,234" in out and ("10m00s" in out or "9m5" in out)


def test_without_a_progress_line_the_rate_comes_from_the_last_evaluations(tmp_path, capsys):
    sweep = tmp_path / "smoke"
    d = running_record(sweep, "0123456789ab")
    rows = [
        {"step": 1, "tokens": 1000, "elapsed_s": 10.0},
        {"step": 3, "tokens": 3000, "elapsed_s": 20.0},
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, (row,) = rows_of(capsys, [str(sweep)])
    # 2000 tokens in 10 s; 7000 tokens left to the 10,000 target
    assert row["tokens_per_s"] == pytest.approx(200.0)
    assert 33 <= row["eta_s"] <= 35


def test_a_recorded_relative_log_path_is_rebuilt_from_the_sweep_directory(
    tmp_path, capsys, monkeypatch
):
    sweep = tmp_path / "results" / "smoke"
    log = sweep / ".submitit" / "7_0" / "7_0_0_log.out"
    log.parent.mkdir(parents=True)
    log.write_text("[0123456789ab] starting\n")
    results.write_summary(
        sweep / "0123456789ab",
        {
            "status": "completed",
            "launcher": {
                "kind": "slurm",
                "job_id": "7_0",
                "stdout": "results/smoke/.submitit/7_0/7_0_0_log.out",
            },
        },
    )
    monkeypatch.chdir(tmp_path / "results")  # not where the sweep was launched from
    _, (row,) = rows_of(capsys, ["smoke"])
    assert Path(row["log"]).resolve() == log.resolve() and Path(row["log"]).is_file()


def test_a_point_skipped_for_too_few_steps_is_not_left_as_not_started(tmp_path, capsys):
    sweep = copy_points(tmp_path, [16, 24, 32, 48, 64])
    trunk = demo_trunks()[96]
    (sweep / trunk).mkdir()
    (sweep / trunk / "skipped.txt").write_text("only 3 steps, under train.min_steps=128\n")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 completed, 1 skipped" in out


def test_a_directory_with_no_runs_or_sweeps_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "empty")])
    assert e.value.code == 2
    assert "holds no run, sweep or sweeps" in capsys.readouterr().err
