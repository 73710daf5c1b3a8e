"""The ``scaling-analyze`` command: JSON shapes, human output, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import (
    ISOFLOP_BUDGETS,
    LADDER,
    TRUE,
    write_isoflop_trunk_sweep,
    write_trunk_sweep,
)
from cli_fixtures import run_main, write_sweeps

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
EPOCH = ROOT.parent / "shared" / "data" / "chinchilla-epoch" / "svg_extracted_data.csv"
EPOCH_ARGS = [
    "--law",
    "chinchilla",
    "--params-col",
    "Model Size",
    "--flops-col",
    "Training FLOP",
    "--loss-col",
    "loss",
    "--where",
    "loss < 3.44",
    "--json",
]


def console_script() -> str | None:
    """The installed ``scaling-analyze`` next to this interpreter, if any."""
    beside = Path(sys.executable).parent / "scaling-analyze"
    return str(beside) if beside.exists() else shutil.which("scaling-analyze")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    return write_sweeps(tmp_path_factory.mktemp("results"))


@pytest.mark.skipif(not EPOCH.exists(), reason="reference data not present")
def test_epoch_chinchilla_fit_as_written_in_the_issue():
    """The documented command, through the console script, reproduces Besiroglu et al."""
    script = console_script()
    if script is None:
        pytest.skip("scaling-analyze is not installed")
    proc = subprocess.run(
        [script, "fit", "../shared/data/chinchilla-epoch/svg_extracted_data.csv", *EPOCH_ARGS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {"law", "n", "params", "intervals", "objective", "converged", "derived"}
    assert result["law"] == "chinchilla" and result["n"] == 240
    assert set(result["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert set(result["derived"]) >= {"a", "b"}
    # Besiroglu et al.'s 95 % bootstrap interval for E is 1.769 - 1.871, a = 0.513 ± 0.020.
    assert 1.769 <= result["params"]["E"] <= 1.871
    assert 0.473 <= result["derived"]["a"] <= 0.553
    lo, hi = result["intervals"]["E"]
    assert lo < result["params"]["E"] < hi and lo > 1.69
    assert result["converged"] is True
    assert "bootstrap" in proc.stderr  # progress went to stderr, stdout is pure JSON


def test_power_fit_json(sweeps, capsys):
    code, out, _ = run_main(
        capsys, "fit", sweeps["demo"], "--law", "power", "--x", "params", "--y", "flops", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["law"] == "power" and result["n"] == len(LADDER)
    assert set(result["params"]) == {"a", "k"}
    k = result["params"]["k"]
    # Every size trains on 20 tokens per parameter and C is close to 6·N·D, so C ∝ N^2.
    assert 1.9 < k < 2.2
    lo, hi = result["intervals"]["k"]
    assert lo < k < hi


def test_fit_human_output_has_formula_and_table(sweeps, capsys):
    code, out, err = run_main(
        capsys, "fit", sweeps["demo"], "--law", "saturating", "--bootstrap", "30"
    )
    assert code == 0
    assert "saturating fit of 7 points" in out
    lines = out.splitlines()
    assert any(line.strip().startswith("loss = ") for line in lines)  # the formula
    rows = {line.split()[0]: line for line in lines if line.startswith("  ") and line.split()}
    for name in ("E", "A", "alpha"):
        assert "[" in rows[name] and "]" in rows[name]  # value with its interval
    assert "divergedrun1" in err and "warning" in err  # the diverged run was named


def test_frontier_approach3_json_shape(sweeps, capsys):
    code, out, _ = run_main(
        capsys, "frontier", sweeps["iso"], "--approach", "3", "--bootstrap", "30", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"approach", "a", "interval", "points"}
    assert result["approach"] == 3
    true_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert abs(result["a"] - true_a) < 0.1
    assert isinstance(result["points"], list) and result["points"]
    assert len(result["interval"]) == 2


def test_frontier_approach1_and_budget(sweeps, capsys):
    code, out, _ = run_main(capsys, "frontier", sweeps["fixed"], "--approach", "1", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["approach"] == 1 and result["points"]
    code, out, _ = run_main(
        capsys,
        "frontier",
        sweeps["iso"],
        "--approach",
        "3",
        "--bootstrap",
        "0",
        "--budget",
        "1e15",
        "--json",
    )
    assert code == 0
    allocation = json.loads(out)["allocations"][0]
    assert allocation["flops"] == 1e15
    # C = 6·N·D ties the recommended size and data to the budget.
    assert allocation["tokens"] == pytest.approx(1e15 / (6 * allocation["params"]), rel=1e-6)


def test_backtest_json(sweeps, capsys):
    code, out, _ = run_main(capsys, "backtest", sweeps["demo"], "--json")
    assert code == 0
    result = json.loads(out)
    (row,) = result["rows"]
    assert row["run"] == "run060384"  # the largest run is the one held out
    # At 20 tokens per parameter the synthetic loss is a saturating law in N plus 0.5 %
    # noise, so the extrapolation one size up lands within a few percent.
    assert abs(row["rel_error"]) < 0.05
    assert row["predicted"] == pytest.approx(row["loss"] * (1 + row["rel_error"]))


def test_plot_writes_files(sweeps, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    code, out, _ = run_main(
        capsys, "plot", sweeps["demo"], "--out", out_dir, "--bootstrap", "20", "--format", "png"
    )
    assert code == 0
    listed = [Path(line) for line in out.splitlines()]
    assert listed and all(p.exists() and p.parent == out_dir for p in listed)
    assert {p.name for p in listed} >= {"loss_vs_compute.png", "compute_vs_params.png"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "{tmp}/nowhere"], "no such file or directory"),
        (["fit", "{demo}", "--where", "los < 3"], "'los < 3'"),
        (["fit", "{csv}", "--law", "chinchilla"], "--tokens-col"),
        (["fit", "{bad}", "--law", "power"], "line 3"),
        (["fit", "{demo}", "--law", "chinchilla", "--x", "params"], "--x does not apply"),
        (
            ["frontier", "{demo}", "--approach", "2", "--budget", "1e15"],
            "--budget needs --approach 3",
        ),
        (["frontier", "{demo}", "--approach", "2", "--envelope", "final"], "--envelope applies"),
        (["frontier", "{demo}", "--method", "hoffmann"], "--method applies to --approach 2"),
        (
            ["fit", "{demo}", "--law", "overtraining", "--x", "params"],
            "--x does not apply to overtraining, which uses flops and tokens",
        ),
        (
            ["frontier", "{demo}", "--approach", "2", "--bootstrap", "0"],
            "--bootstrap 0: approach 2 by Porian",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(sweeps, tmp_path, capsys, args, message):
    csv = tmp_path / "only_params.csv"
    csv.write_text("params,loss\n" + "".join(f"{10**i},{5 - i / 3}\n" for i in range(3, 9)))
    bad = tmp_path / "bad.csv"
    bad.write_text("params,flops\n1,2\n3,x\n")
    argv = [a.format(tmp=tmp_path, demo=sweeps["demo"], csv=csv, bad=bad) for a in args]
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("scaling-analyze: error: ")


def test_console_script_exit_status(tmp_path):
    script = console_script()
    if script is None:
        pytest.skip("scaling-analyze is not installed")
    proc = subprocess.run(
        [script, "fit", str(tmp_path / "none.csv")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no such file" in proc.stderr


def test_single_run_log_is_fitted_along_its_curve(tmp_path, capsys):
    """A trainer_state.json holds one run: fit and backtest use its learning curve."""
    history = []
    for step in range(100, 3100, 100):
        tokens = step * 4096
        history.append(
            {"step": step, "loss": 2.1 + 30 * tokens**-0.3, "num_input_tokens_seen": tokens}
        )
        history.append({"step": step, "eval_loss": 2.05 + 30 * tokens**-0.3})
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))
    args = ["fit", path, "--law", "saturating", "--x", "tokens", "--bootstrap", "0", "--json"]
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 30
    # The eval losses follow L(D) = 2.05 + 30 D^-0.3 exactly.
    assert result["params"]["E"] == pytest.approx(2.05, rel=1e-3)
    assert result["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    assert "learning curve (30 evaluations)" in err
    code, out, _ = run_main(capsys, "backtest", path, "--x", "tokens", "--k", "5", "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert len(rows) == 5 and all(abs(r["rel_error"]) < 1e-4 for r in rows)


@pytest.fixture(scope="module")
def trunks(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return {
        "wsd": write_trunk_sweep(root, "wsd", trunk_sd=0.01),
        "isowsd": write_isoflop_trunk_sweep(root, "isowsd"),
    }


def test_fit_of_budget_records_says_it_resampled_trunks(trunks, capsys):
    code, out, err = run_main(
        capsys, "fit", trunks["wsd"], "--law", "chinchilla", "--bootstrap", "20"
    )
    assert code == 0, err
    assert "chinchilla fit of 63 points" in out  # 7 trunks x 9 budgets, no trunk records
    assert "bootstrap: 20 resamples of 7 trunks (the budgets of one trunk drawn together)" in out
    assert "with 20 bootstrap resamples of 7 trunks" in err  # the progress line
    assert "only 7 trunks" in err  # fewer than chinchilla's 10 points: said once
    code, out, _ = run_main(
        capsys, "fit", trunks["wsd"], "--law", "chinchilla", "--bootstrap", "20", "--json"
    )
    boot = json.loads(out)["bootstrap"]
    assert boot == {"resamples": 20, "resampled": "trunks", "n_groups": 7}


def test_frontier_approach2_groups_by_the_asked_budget(trunks, capsys):
    code, out, err = run_main(capsys, "frontier", trunks["isowsd"], "--approach", "2")
    assert code == 0, err
    assert "grouped by the asked compute budget (flops_target)" in out
    code, out, _ = run_main(capsys, "frontier", trunks["isowsd"], "--approach", "2", "--json")
    result = json.loads(out)
    assert result["grouping"] == "flops_target"
    assert [p["flops"] for p in result["points"]] == list(ISOFLOP_BUDGETS)
    assert [p["n_runs"] for p in result["points"]] == [7, 7, 7]
    assert result["method"] == "porian"
    code, out, _ = run_main(
        capsys, "frontier", trunks["isowsd"], "--approach", "2", "--method", "hoffmann"
    )
    assert code == 0 and "one parabola over every size, unweighted regression" in out


def test_frontier_approach1_reads_decayed_points_or_warns_on_cosine(trunks, sweeps, capsys):
    code, out, err = run_main(capsys, "frontier", trunks["wsd"], "--approach", "1")
    assert code == 0, err
    assert "decayed" in out and "warning" not in err
    code, out, _ = run_main(capsys, "frontier", trunks["wsd"], "--approach", "1", "--json")
    assert json.loads(out)["envelope"] == "final"
    code, out, err = run_main(capsys, "frontier", sweeps["fixed"], "--approach", "1")
    assert code == 0
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert "cosine" in warning and "optim.schedule=wsd_s" in warning
    code, out, err = run_main(
        capsys, "frontier", sweeps["fixed"], "--approach", "1", "--envelope", "all"
    )
    assert code == 0 and "warning" not in err


def test_trunk_col_maps_a_table_column(tmp_path, capsys):
    rows = ["size,data,loss,lineage"]
    for i, n in enumerate([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7]):
        for r in (5, 20, 80):
            d = r * n
            loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
            rows.append(f"{n},{d},{loss * (1 + 0.003 * (-1) ** i)},t{i}")
    path = tmp_path / "budgets.csv"
    path.write_text("\n".join(rows) + "\n")
    args = ["fit", path, "--law", "saturating", "--params-col", "size", "--tokens-col", "data",
            "--x", "tokens", "--bootstrap", "20"]  # fmt: skip
    code, out, err = run_main(capsys, *args, "--trunk-col", "lineage")
    assert code == 0, err
    assert "bootstrap: 20 resamples of 6 trunks" in out
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert "bootstrap: 20 resamples of 18 points" in out


@pytest.mark.parametrize(
    "command", ["fit", "predict", "frontier", "backtest", "plot", "report", "downstream"]
)
def test_every_subcommand_help_has_a_description_and_an_example(command, capsys):
    from analysis.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[command]
    text = sub.format_help()
    assert sub.description and len(sub.description.split()) >= 15
    examples = text.split("examples:", 1)[1].splitlines()
    assert any(line.strip().startswith(f"scaling-analyze {command} ") for line in examples)


def test_quiet_is_accepted_by_the_fitting_commands_and_turns_bars_off(tmp_path, capsys):
    from analysis import progress

    table = tmp_path / "runs.csv"
    # C = 6ND at 20 tokens per parameter: an exact power law C ∝ N^2
    rows = "".join(f"{n},{120 * n * n},{1.7 + 400 * n**-0.35}\n" for n in (1e3, 1e4, 1e5, 1e6))
    table.write_text("params,flops,loss\n" + rows)
    try:
        args = ["fit", str(table), "--law", "power", "--x", "params", "--y", "flops", "--quiet"]
        assert main(args) == 0
        assert not progress.shown()
    finally:
        progress.set_quiet(False)


def test_overtraining_fits_from_a_table_of_params_tokens_and_flops(tmp_path, capsys):
    """M = tokens/params is derived from the table's columns; the printed M_opt is
    (B/A)^(1/(2 eta)) of the truth, (98.2/40)^(1/0.3) = 19.96."""
    n = np.repeat(np.geomspace(1e7, 1e9, 8), 7)
    d = n * np.tile([5.0, 10, 20, 40, 80, 160, 320], 8)
    c, m = 6 * n * d, d / n
    loss = 1.8 + (40.0 * m**0.15 + 98.2 * m**-0.15) * c**-0.15
    table = tmp_path / "runs.csv"
    pd.DataFrame({"params": n, "tokens": d, "flops": c, "loss": loss}).to_csv(table, index=False)
    code, out, err = run_main(capsys, "fit", table, "--law", "overtraining", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["params"]["eta"] == pytest.approx(0.15, rel=1e-6)
    assert result["derived"]["M_opt"] == pytest.approx(19.96, abs=0.01)


def test_data_constrained_fits_from_a_unique_tokens_column(tmp_path, capsys):
    """Runs repeating 1-40 epochs of their unique data, from a known truth: the CLI turns
    params, tokens and unique_tokens into the law's ratios and prints the half-life of
    repeated data, R*_D ln 2 = 15.4 x 0.693 = 10.67 epochs."""
    from analysis.laws import get_law
    from analysis.laws.repeated import repetition_inputs

    truth = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353,
             "R_N": 5.3, "R_D": 15.4}  # fmt: skip
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 21)
    u = np.tile(np.repeat([2e8, 1e9, 5e9], 7), 6)
    d = u * np.tile([0.5, 1, 2, 4, 8, 16, 40], 18)
    loss = get_law("data_constrained").predict(truth, *repetition_inputs(n, d, u))
    table = tmp_path / "runs.csv"
    frame = pd.DataFrame({"params": n, "tokens": d, "unique_tokens": u, "loss": loss})
    frame.to_csv(table, index=False)
    code, out, err = run_main(capsys, "fit", table, "--law", "data_constrained", "--json")
    assert code == 0, err
    assert json.loads(out)["derived"]["half_life_D"] == pytest.approx(10.67, abs=0.01)
    frame.drop(columns="unique_tokens").to_csv(table, index=False)
    code, _, err = run_main(capsys, "fit", table, "--law", "data_constrained")
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "missing or empty: unique_tokens" in errors[0]


DEMO_SEEDS = ROOT / "results" / "demo_seeds"


@pytest.mark.skipif(not DEMO_SEEDS.is_dir(), reason="no demo_seeds records")
def test_frontier_approach3_from_kaplans_law_gives_the_fits_a(capsys):
    """On the committed demo_seeds records Kaplan's form is the one that fits (README,
    "The demo with seeds"): approach 3 solves its optimum, and its a is the fit's own
    a = alpha_D/(alpha_N + alpha_D), with the same bootstrap interval."""
    code, out, _ = run_main(capsys, "fit", str(DEMO_SEEDS), "--law", "kaplan", "--json")
    assert code == 0
    fitted = json.loads(out)
    code, out, err = run_main(
        capsys, "frontier", str(DEMO_SEEDS), "--approach", "3", "--law", "kaplan", "--json"
    )
    assert code == 0, err
    frontier = json.loads(out)
    assert frontier["law"] == "kaplan" and frontier["identified"]
    p = fitted["params"]
    assert frontier["a"] == pytest.approx(p["alpha_D"] / (p["alpha_N"] + p["alpha_D"]))
    assert frontier["interval"] == pytest.approx(fitted["intervals"]["a"])
    code, _, err = run_main(capsys, "frontier", str(DEMO_SEEDS), "--approach", "2", "--law", "kaplan")
    assert code != 0 and "--law applies to --approach 3" in err
