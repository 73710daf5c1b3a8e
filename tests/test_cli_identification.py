"""``scaling-analyze``: identification, predictions with intervals, an honest backtest,
and the law the figures and the report state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_fixtures import run_main, write_sweeps

from analysis.cli import main


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    return write_sweeps(tmp_path_factory.mktemp("results"))


FAMILY = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def _family_csv(path: Path, noise: float = 0.01, split: bool = False) -> Path:
    """40 runs, 8 sizes x 5 budgets (N and D varied independently), drawn from
    L = 1.8 + 400/N^0.34 + 2000/D^0.28 with 1 % log-normal noise."""

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

    sizes, budgets = np.geomspace(1e7, 1e9, 8), np.geomspace(1e9, 1e11, 5)
    expected = [(sizes[i // 5], budgets[i % 5]) for i in (3, 11, 19, 27, 35)]
    got = sorted((row["params"], row["tokens"]) for row in result["rows"])
    np.testing.assert_allclose(got, sorted(expected), rtol=1e-9)
    assert "matching" in result["held_out"]


def _isoflop_csv(path: Path) -> Path:
    """One compute budget (1e20) over sizes 3e8..1e10: the loss rises with N here."""

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
