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
    FIXED_TOKENS,
    ISOFLOP_BUDGETS,
    LADDER,
    TRUE,
    write_isoflop_sweep,
    write_isoflop_trunk_sweep,
    write_sweep,
    write_trunk_sweep,
)

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


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return {
        "demo": write_sweep(root, "demo", diverged=True),
        "iso": write_isoflop_sweep(root, "iso"),
        "fixed": write_sweep(root, "fixed", fixed_tokens=FIXED_TOKENS),
    }


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


# --------------------------------------------------------------------------------------
# Identification, predictions with intervals, an honest backtest
# --------------------------------------------------------------------------------------

FAMILY = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def _family_csv(path: Path, noise: float = 0.01, split: bool = False) -> Path:
    """40 runs, 8 sizes x 5 budgets (N and D varied independently), drawn from
    L = 1.8 + 400/N^0.34 + 2000/D^0.28 with 1 % log-normal noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e7, 1e9, 8), 5)
    d = np.tile(np.geomspace(1e9, 1e11, 5), 8)
    t = FAMILY
    loss = (t["E"] + t["A"] / n ** t["alpha"] + t["B"] / d ** t["beta"]) * np.exp(
        rng.normal(0, noise, n.size)
    )
    rows = ["params,tokens,loss" + (",split" if split else "")]
    for i, (a, b, c) in enumerate(zip(n, d, loss, strict=True)):
        rows.append(f"{a},{b},{c}" + ((",test" if i % 8 == 3 else ",train") if split else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_backtest_fits_chinchilla_where_n_and_d_vary_and_gives_intervals(tmp_path, capsys):
    path = _family_csv(tmp_path / "family.csv")
    code, out, err = run_main(capsys, "backtest", path, "--k", "3", "--json")
    assert code == 0, err
    assert "law: chinchilla L(N, D), because N and D vary independently" in err
    result = json.loads(out)
    assert result["law"] == "chinchilla" and result["k"] == 3
    assert "largest compute" in result["held_out"]
    errors = []
    for row in result["rows"]:
        lo, hi = row["interval"]
        assert lo < row["predicted"] < hi
        assert row["inside"] == (lo <= row["actual"] <= hi)
        # the right law, one step past the data: a few percent at most (1 % noise)
        assert abs(row["rel_error"]) < 0.03
        errors.append(abs(row["predicted"] / row["actual"] - 1))
    assert result["mean_abs_rel_error"] == pytest.approx(sum(errors) / 3)
    code, out, err = run_main(capsys, "backtest", path, "--k", "3")
    assert code == 0
    assert "held out the 3 row(s) with the largest compute C (flops)" in out
    assert "95% interval" in out and "inside" in out and "inside their 95% intervals" in out
    code, out, _ = run_main(capsys, "backtest", path, "--k", "3", "--bootstrap", "0")
    assert "no intervals: use --bootstrap N" in out


def test_backtest_test_where_predicts_the_rows_of_a_split(tmp_path, capsys):
    path = _family_csv(tmp_path / "split.csv", split=True)
    code, out, err = run_main(
        capsys, "backtest", path, "--test-where", 'split == "test"', "--bootstrap", "30", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert len(result["rows"]) == result["k"] == 5  # rows 3, 11, 19, 27, 35
    assert result["fit"]["n"] == 35
    import numpy as np

    sizes, budgets = np.geomspace(1e7, 1e9, 8), np.geomspace(1e9, 1e11, 5)
    expected = [(sizes[i // 5], budgets[i % 5]) for i in (3, 11, 19, 27, 35)]
    got = sorted((row["params"], row["tokens"]) for row in result["rows"])
    np.testing.assert_allclose(got, sorted(expected), rtol=1e-9)
    assert "matching" in result["held_out"]


def _isoflop_csv(path: Path) -> Path:
    """One compute budget (1e20) over sizes 3e8..1e10: the loss rises with N here."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = np.geomspace(3e8, 1e10, 12)
    d = 1e20 / (6 * n)
    t = FAMILY
    loss = (t["E"] + t["A"] / n ** t["alpha"] + t["B"] / d ** t["beta"]) * np.exp(
        rng.normal(0, 0.01, n.size)
    )
    lines = "".join(f"{a},{b},{c}\n" for a, b, c in zip(n, d, loss, strict=True))
    path.write_text("params,tokens,loss\n" + lines)
    return path


def test_fit_warns_when_not_identified_and_strict_exits_2(tmp_path, capsys):
    path = _isoflop_csv(tmp_path / "isoflop.csv")
    code, out, err = run_main(capsys, "fit", path, "--law", "saturating", "--bootstrap", "30")
    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if "not identified" in line]
    assert warning.startswith("scaling-analyze: warning: the saturating fit is not identified")
    assert "alpha = -" in warning and "does not fall with params" in warning
    assert "converged: yes, identified: NO" in out
    assert "·params^" in out and "/params^-" not in out  # a rising law reads as one
    code, out, err = run_main(capsys, "fit", path, "--law", "saturating", "--bootstrap", "30",
                              "--json")  # fmt: skip
    result = json.loads(out)
    assert result["identified"] is False and result["identification"]
    assert len(result["residuals"]) == 12
    code, out, err = run_main(capsys, "fit", path, "--law", "saturating", "--strict")
    assert code == 2 and out == ""
    (error,) = [line for line in err.splitlines() if "error:" in line]
    assert "not identified" in error and error.endswith("(--strict)")


def test_one_size_under_chinchilla_is_marked_and_the_default_fits_l_of_d(tmp_path, capsys):
    path = tmp_path / "one.csv"
    rows = [f"1e8,{d},{1.8 + 400 / 1e8**0.34 + 2000 / d**0.28 * (1 + 0.01 * (-1) ** i)}"
            for i, d in enumerate([1e9 * 1.5**k for k in range(12)])]  # fmt: skip
    path.write_text("params,tokens,loss\n" + "\n".join(rows) + "\n")
    code, out, err = run_main(capsys, "fit", path, "--law", "chinchilla", "--bootstrap", "20")
    assert code == 0, err
    assert "one model size only" in err
    assert "(from an unidentified fit: not estimates)" in out
    code, out, err = run_main(capsys, "frontier", path, "--bootstrap", "20", "--budget", "1e19")
    assert "(not identified: not an estimate)" in out
    assert "(from an unidentified fit: not a recommendation)" in out
    code, out, err = run_main(capsys, "fit", path, "--bootstrap", "20")
    assert code == 0, err
    assert "law: saturating L(D) = E + A/D^alpha, because there is one model size" in err
    assert "/tokens^" in out and "identified: yes" in out


def test_predict_gives_bands_tokens_per_parameter_and_reach(tmp_path, capsys):
    path = _family_csv(tmp_path / "family.csv")
    largest = 6 * 1e9 * 1e11  # the data's largest 6ND
    code, out, err = run_main(capsys, "predict", path, "--flops", "1e22", "--bootstrap", "50",
                              "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["law"] == "chinchilla"
    (p,) = result["predictions"]
    assert set(p) >= {"params", "tokens", "flops", "loss", "interval", "extrapolation"}
    assert p["flops"] == pytest.approx(1e22)
    assert p["extrapolation"] == pytest.approx(1e22 / largest)
    assert p["interval"][0] < p["loss"] < p["interval"][1]
    assert p["tokens_per_param"] == pytest.approx(p["tokens"] / p["params"])
    code, out, err = run_main(capsys, "predict", path, "--params", "2e9", "--tokens", "1e11",
                              "--bootstrap", "50")  # fmt: skip
    assert code == 0, err
    assert "extrapolation: 2.0× the largest C in the data (2.0× the largest N)" in out
    t = FAMILY
    truth = t["E"] + t["A"] / 2e9 ** t["alpha"] + t["B"] / 1e11 ** t["beta"]
    row = next(line for line in out.splitlines() if line.strip().startswith("given"))
    lo, hi = (float(v) for v in row.split("[")[1].split("]")[0].split(","))
    assert lo < truth < hi
    code, out, err = run_main(capsys, "predict", path, "--bootstrap", "0")
    assert code == 2 and "nothing to predict" in err


def test_predict_params_takes_sizes_and_still_a_convention(capsys):
    from analysis.cli import build_parser

    args = build_parser().parse_args(["predict", "x.csv", "--params", "total", "1e9", "2e9"])
    assert args.params == "total" and args.at_params == [1e9, 2e9]
    args = build_parser().parse_args(["fit", "x.csv", "--params", "matmul"])
    assert args.params == "matmul"  # the other commands keep their option
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "x.csv", "--params", "big"])
    assert "neither a size nor a parameter convention" in capsys.readouterr().err


def test_frontier_budget_has_intervals_and_marks_rows_past_the_data(tmp_path, capsys):
    path = _family_csv(tmp_path / "family.csv")  # largest 6ND: 6 * 1e9 * 1e11 = 6e20
    args = ["frontier", path, "--bootstrap", "50", "--budget", "1e23"]
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("budget C = 1.000e+23"))
    assert line.count("[") == 3  # N, D and the loss, each with its interval
    assert "extrapolation: 167× the largest C in the data" in out
    assert "past the data" in out and "100×" in out  # the table runs to 100x the data
    code, out, err = run_main(capsys, *args, "--json")
    allocation = json.loads(out)["allocations"][0]
    assert set(allocation["intervals"]) == {"params", "tokens", "loss"}
    assert allocation["extrapolation"]["flops"] == pytest.approx(1e23 / (6 * 1e9 * 1e11))


def test_plot_states_the_law_it_used_and_why(sweeps, tmp_path, capsys):
    # A size ladder (20 tokens per parameter): L(N), because D follows N.
    code, _, err = run_main(
        capsys, "plot", sweeps["demo"], "--out", tmp_path / "a", "--bootstrap", "0",
        "--format", "png",
    )  # fmt: skip
    assert code == 0, err
    (line,) = [x for x in err.splitlines() if x.startswith("scaling-analyze: law: ")]
    assert line.startswith(
        "scaling-analyze: law: saturating L(N) = E + A/N^alpha, because D follows N"
    )
    # IsoFLOP profiles: several sizes at each budget, so N and D vary independently.
    code, _, err = run_main(
        capsys, "plot", sweeps["iso"], "--out", tmp_path / "b", "--bootstrap", "0",
        "--format", "png",
    )  # fmt: skip
    assert code == 0, err
    assert "scaling-analyze: law: chinchilla L(N, D), because N and D vary independently" in err
    # Told otherwise, it says so.
    code, _, err = run_main(
        capsys, "plot", sweeps["iso"], "--out", tmp_path / "c", "--bootstrap", "0",
        "--format", "png", "--law", "saturating",
    )  # fmt: skip
    assert code == 0, err
    assert "scaling-analyze: law: saturating (asked with --law)" in err.splitlines()


def test_report_command_takes_a_law(sweeps, tmp_path, capsys):
    out_file = tmp_path / "report.md"
    code, _, err = run_main(
        capsys, "report", sweeps["demo"], "--bootstrap", "0", "--law", "chinchilla",
        "--out", out_file,
    )  # fmt: skip
    assert code == 0, err
    # Asked on a size ladder: fitted as asked, with a warning that it cannot be identified.
    assert "law: chinchilla (asked with --law); N and D do not vary independently" in err
    text = out_file.read_text()
    assert "law: chinchilla (asked with --law)" in text and "### Chinchilla" in text
    with pytest.raises(SystemExit) as exit_info:  # not a law of the loss: argparse refuses
        main(["report", str(sweeps["demo"]), "--law", "power"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'power'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Every command applies the loaders' rules (analysis.io.checks): what fit refuses, all do


def _family_rows() -> list[str]:
    """A grid of sizes and token counts with a Chinchilla-shaped loss."""
    rows = ["params,tokens,flops,loss"]
    for n in (1e7, 3e7, 1e8, 3e8):
        for d in (2e8, 1e9, 5e9):
            rows.append(f"{n:g},{d:g},{6 * n * d:g},{1.8 + 400 / n**0.34 + 410 / d**0.28:.5f}")
    return rows


def _one_error(code: int, out: str, err: str, *needles: str) -> None:
    """Exit status 2, nothing on stdout, one error line holding every needle."""
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    "command",
    [
        ["fit"],
        ["predict", "--flops", "1e20"],
        ["frontier", "--approach", "1"],
        ["frontier", "--approach", "2"],
        ["frontier", "--approach", "3"],
        ["backtest"],
        ["plot", "--out", "{tmp}/plots"],
        ["report", "--out", "{tmp}/report.md"],
    ],
)
def test_a_value_past_what_figures_draw_is_refused_by_every_command(tmp_path, capsys, command):
    rows = _family_rows()
    rows.insert(3, "1e308,2e8,1e308,3.0")  # line 4 of the file
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    name, *rest = command
    argv = [name, path, *(a.format(tmp=tmp_path) for a in rest), "--bootstrap", "0"]
    _one_error(*run_main(capsys, *argv), f"{path}, line 4: column 'params' is 1e+308")
    assert not (tmp_path / "plots").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("bad", ["-3", "inf"])
def test_frontier_approach_2_refuses_the_loss_fit_refuses(tmp_path, capsys, bad):
    rows = _family_rows()
    rows[3] = rows[3].rsplit(",", 1)[0] + f",{bad}"
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(rows) + "\n")
    needle = f"{path}, line 4: column 'loss' is {bad}"
    _one_error(*run_main(capsys, "fit", path, "--bootstrap", "0"), needle)
    _one_error(*run_main(capsys, "frontier", path, "--approach", "2"), needle)
    # the same file line, not a row of whichever frame a command built
    _one_error(*run_main(capsys, "backtest", path, "--bootstrap", "0"), needle)


def test_a_trainer_state_with_an_infinite_step_is_one_line(tmp_path, capsys):
    history = [{"step": s, "eval_loss": 2.0 + 30 * (s * 4096) ** -0.3} for s in (100, 200, 300)]
    history[1]["step"] = float("inf")
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))  # "step": Infinity
    assert '"step": Infinity' in path.read_text()
    code, out, err = run_main(capsys, "fit", path, "--n-params", "1e6", "--tokens-per-step", "4096")
    _one_error(code, out, err, str(path), "'log_history[1].step' is inf")


def test_a_boolean_loss_in_jsonl_is_refused(tmp_path, capsys):
    rows = _family_rows()[1:]
    lines = []
    for i, row in enumerate(rows):
        n, d, _, loss = (float(x) for x in row.split(","))
        lines.append(json.dumps({"params": n, "tokens": d, "loss": True if i == 2 else loss}))
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _one_error(*run_main(capsys, "fit", path), f"{path}, line 3: column 'loss' is True")


@pytest.mark.parametrize("budget", ["inf", "nan", "0", "-1"])
def test_frontier_budget_must_be_finite_and_positive(tmp_path, capsys, budget):
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(_family_rows()) + "\n")
    with pytest.raises(SystemExit) as exit_:
        main(["frontier", str(path), "--approach", "3", "--budget", budget])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == "" and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert f"argument --budget: '{budget}': expected a number > 0" in line


def test_params_convention_on_a_table_applies_or_is_refused(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(_family_rows()) + "\n")
    code, out, err = run_main(capsys, "fit", path, "--params", "matmul", "--bootstrap", "0")
    _one_error(code, out, err, f"{path}: --params matmul", "taken as given", "--params-col COL")
    # a runs table written from our records has the column: the convention then applies
    rows = _family_rows()
    with_matmul = [rows[0] + ",params_matmul"] + [
        f"{r},{2 * float(r.split(',')[0]):g}" for r in rows[1:]
    ]
    path.write_text("\n".join(with_matmul) + "\n")
    base = ["fit", path, "--law", "saturating", "--bootstrap", "0", "--json"]
    code, out, err = run_main(capsys, *base, "--params", "matmul")
    assert code == 0, err
    matmul = json.loads(out)
    code, out, _ = run_main(capsys, *base)
    plain = json.loads(out)
    # L = E + A N^-alpha: doubling every N keeps alpha and E, and scales A by 2^alpha
    assert matmul["params"]["alpha"] == pytest.approx(plain["params"]["alpha"], rel=1e-4)
    ratio = matmul["params"]["A"] / plain["params"]["A"]
    assert ratio == pytest.approx(2 ** plain["params"]["alpha"], rel=1e-3)


def test_a_bad_run_record_is_named_by_its_file(sweeps, tmp_path, capsys):
    sweep = tmp_path / "demo"
    shutil.copytree(sweeps["demo"], sweep)
    summary = sorted(sweep.glob("run*/summary.json"))[0]
    record = json.loads(summary.read_text())
    record["final_val_loss"] = -3.0
    summary.write_text(json.dumps(record))
    for command in (["fit"], ["frontier", "--approach", "2"], ["backtest"]):
        code, out, err = run_main(capsys, command[0], sweep, *command[1:], "--bootstrap", "0")
        _one_error(code, out, err, f"{summary}: field 'final_val_loss' is -3.0 (not > 0)")


@pytest.mark.parametrize("option", ["--where", "--test-where"])
def test_a_filter_cannot_run_code(tmp_path, capsys, monkeypatch, option):
    """pandas' query would run this and create the file; our filter refuses it."""
    table = tmp_path / "t.csv"
    table.write_text("params,tokens,loss\n1e6,2e7,3.0\n2e6,4e7,2.9\n4e6,8e7,2.8\n8e6,1.6e8,2.7\n")
    monkeypatch.chdir(tmp_path)
    exploit = "loss.__class__.__init__.__globals__['sys'].modules['os'].system('touch pwned') == 0"
    command = "fit" if option == "--where" else "backtest"
    code = main([command, str(table), "--law", "power", "--x", "params", option, exploit])
    err = capsys.readouterr().err
    assert code == 2
    assert "is not allowed in a filter" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


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
