"""``scaling-analyze``: every command applies the loaders' rules (``analysis.io.checks``):
what ``fit`` refuses, all do, each with one clear line."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_fixtures import run_main, write_sweeps

from analysis.cli import main


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    return write_sweeps(tmp_path_factory.mktemp("results"))


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
