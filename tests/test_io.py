"""Loading run records and imported logs into the canonical DataFrame."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import (
    LADDER,
    write_isoflop_trunk_sweep,
    write_run,
    write_sweep,
    write_trunk,
    write_trunk_sweep,
)

from analysis.io import (
    DataError,
    DataWarning,
    load,
    load_curves,
    load_runs,
    load_table,
    require,
)


def read_summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


# --------------------------------------------------------------------------------------
# Our run records


def test_runs_one_row_per_completed_run_and_diverged_named_in_warning(tmp_path):
    sweep = write_sweep(tmp_path, diverged=True)
    with pytest.warns(DataWarning, match="divergedrun1.*diverged"):
        df = load_runs(sweep)
    summaries = read_summaries(sweep)
    assert len(df) == len(LADDER)
    assert "divergedrun1" not in set(df["run"])
    assert list(df.columns[:5]) == ["run", "params", "tokens", "flops", "loss"]
    for row in df.itertuples():
        s = summaries[row.run]
        assert row.params == s["params_nonembed"]
        assert row.loss == s["final_val_loss"]
        assert row.flops == s["flops"]
        assert (row.params_matmul, row.params_total) == (s["params_matmul"], s["params_total"])
    assert df.attrs["excluded"][0]["run"] == "divergedrun1"
    assert set(df["sweep"]) == {"demo"}


@pytest.mark.parametrize("convention", ["matmul", "total"])
def test_params_convention_picks_the_column(tmp_path, convention):
    sweep = write_sweep(tmp_path, ladder=LADDER[:3])
    df = load_runs(sweep, params=convention)
    assert (df["params"] == df[f"params_{convention}"]).all()
    assert (df["params"] > df["params_nonembed"]).all()


def test_unknown_convention_is_an_error(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    with pytest.raises(DataError, match="embedding"):
        load_runs(sweep, params="embedding")


def test_running_and_failed_runs_are_left_out(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    write_run(sweep, "stillgoing01", n_layers=2, d_model=64, tokens=1e6, status="running")
    write_run(sweep, "crashed00001", n_layers=2, d_model=64, tokens=1e6, status="failed")
    with pytest.warns(DataWarning) as record:
        df = load_runs(sweep)
    message = str(record[0].message)
    assert "stillgoing01 (running)" in message and "crashed00001 (failed)" in message
    assert len(df) == 2


def test_results_dir_of_several_sweeps_and_single_run_dir(tmp_path):
    write_sweep(tmp_path, "a", ladder=LADDER[:2])
    b = write_sweep(tmp_path, "b", ladder=LADDER[:3])
    df = load_runs(tmp_path)
    assert df.groupby("sweep").size().to_dict() == {"a": 2, "b": 3}
    one = load_runs(next(b.iterdir()))
    assert len(one) == 1


def test_loss_and_flops_columns_can_be_remapped(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:3])
    df = load_runs(sweep, loss_col="best_val_loss", flops_col="flops_6nd")
    assert (df["loss"] == df["best_val_loss"]).all()
    assert np.allclose(df["flops"], 6 * df["params_nonembed"] * df["tokens"])
    assert (df["flops_original"] > df["flops"]).all()  # the analytic count includes more


def test_curves_long_form_from_metrics(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:3], diverged=True)
    with pytest.warns(DataWarning, match="divergedrun1"):
        curves = load_curves(sweep)
    expected = {}
    for run_dir in sweep.iterdir():
        if run_dir.name == "divergedrun1":
            continue
        expected[run_dir.name] = [json.loads(x) for x in open(run_dir / "metrics.jsonl")]
    assert sorted(curves["run"].unique()) == sorted(expected)
    assert len(curves) == sum(len(v) for v in expected.values())
    for run, lines in expected.items():
        mine = curves[curves["run"] == run]
        assert list(mine["step"]) == [x["step"] for x in lines]
        assert list(mine["loss"]) == [x["val_loss"] for x in lines]
        assert list(mine["train_loss"]) == [x["train_loss"] for x in lines]
        assert mine["params"].nunique() == 1


def test_mixed_corpora_warn(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    first = next(sweep.glob("*/summary.json"))
    record = json.loads(first.read_text())
    record["corpus"]["fingerprint"] = "other"
    first.write_text(json.dumps(record))
    with pytest.warns(DataWarning, match="2 different corpora"):
        load_runs(sweep)


# --------------------------------------------------------------------------------------
# Multi-budget records: trunks, schedules, compute targets


def test_budget_records_carry_their_trunk_and_the_trunk_record_is_skipped(tmp_path):
    sweep = write_trunk_sweep(tmp_path, ladder=LADDER[:3], budgets_per_param=(1, 4, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trunks' own records are skipped silently
        df = load_runs(sweep)
    summaries = read_summaries(sweep)
    budget_records = {k: v for k, v in summaries.items() if v.get("role") != "trunk"}
    assert len(summaries) == 12 and len(budget_records) == 9  # 3 trunks + 9 budgets
    assert sorted(df["run"]) == sorted(budget_records)
    assert df.attrs["excluded"] == []
    for row in df.itertuples():
        s = budget_records[row.run]
        assert (row.schedule, row.trunk, row.budget_index) == (
            "wsd_s",
            s["trunk_id"],
            s["budget_index"],
        )
        assert row.budgets == s["budgets"] and row.loss == s["final_val_loss"]
        assert math.isnan(row.flops_target) and math.isnan(row.epochs)
    assert df.groupby("trunk")["budget_index"].apply(sorted).tolist() == [[0, 1, 2]] * 3


def test_records_without_the_new_fields_read_as_single_budget_cosine_runs(tmp_path):
    df = load_runs(write_sweep(tmp_path, ladder=LADDER[:3]))
    assert (df["schedule"] == "cosine").all()
    assert (df["trunk"] == df["run"]).all()
    assert (df["budget_index"] == 0).all()
    for column in ("flops_target", "unique_tokens", "epochs"):
        assert df[column].isna().all()
    curves = load_curves(tmp_path / "demo")
    assert curves["phase"].isna().all()
    assert (curves["schedule"] == "cosine").all() and (curves["trunk"] == curves["run"]).all()


def test_a_trunk_record_without_run_id_and_still_running_is_no_excluded_run(tmp_path):
    sweep = write_trunk_sweep(tmp_path, ladder=LADDER[:1], budgets_per_param=(1, 4))
    trunk = next(p for p in sweep.glob("*/summary.json") if "role" in p.read_text())
    record = json.loads(trunk.read_text())
    record.pop("run_id", None)
    record["status"] = "running"
    trunk.write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = load_runs(sweep)
        curves = load_curves(sweep)
    assert len(df) == 2 and df.attrs["excluded"] == []
    assert set(curves["run"]) == set(df["run"])


def test_curves_keep_phase_and_trunk_and_end_at_the_decayed_loss(tmp_path):
    sweep = tmp_path / "wsd"
    dirs = write_trunk(sweep, "trunkA", n_layers=2, d_model=64, tokens=[2e5, 8e5, 3.2e6])
    curves = load_curves(sweep)
    for k, run_dir in enumerate(dirs):
        lines = [json.loads(x) for x in open(run_dir / "metrics.jsonl")]
        summary = json.loads((run_dir / "summary.json").read_text())
        mine = curves[curves["run"] == run_dir.name]
        assert list(mine["phase"]) == [x["phase"] for x in lines]
        assert set(mine["trunk"]) == {"trunkA"} and set(mine["budget_index"]) == {k}
        assert set(mine["schedule"]) == {"wsd_s"}
        assert mine["loss"].iloc[-1] == summary["final_val_loss"]
        assert mine["phase"].iloc[-1] == "decay"
    # WSD-S goes on from the earlier budgets' decayed weights: their decays are on the
    # last budget's curve, so it holds decay rows before its own decay starts.
    last = curves[curves["budget_index"] == 2]
    assert (last["phase"] == "decay").sum() > 4


def test_flops_target_unique_tokens_and_epochs(tmp_path):
    sweep = write_isoflop_trunk_sweep(tmp_path)
    df = load_runs(sweep)
    summaries = read_summaries(sweep)
    for row in df.itertuples():
        assert row.flops_target == summaries[row.run]["flops_target"]
        assert row.flops != row.flops_target  # whole steps: close, not equal
        assert abs(row.flops / row.flops_target - 1) < 0.02
    assert set(df["flops_target"]) == {3e13, 1e14, 3e14}
    other = tmp_path / "dc"
    (run_dir,) = write_trunk(other, "dc1", n_layers=2, d_model=64, tokens=[8e5],
                             unique_tokens=2e5)  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    (row,) = load_runs(other).itertuples()
    assert row.unique_tokens == 2e5 and row.epochs == summary["tokens"] / 2e5
    del summary["epochs"]  # derived when only the distinct tokens are recorded
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert load_runs(other)["epochs"].iloc[0] == summary["tokens"] / 2e5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "linear", r"field 'schedule' is 'linear'; expected one of cosine, wsd"),
        ("budget_index", -1, r"field 'budget_index' is -1; expected an integer >= 0"),
        ("budget_index", 1.5, r"field 'budget_index' is 1.5"),
        ("trunk_id", 7, r"field 'trunk_id' is 7; expected a string"),
        ("flops_target", "1e15", r"field 'flops_target' is '1e15'; expected a number"),
    ],
)
def test_bad_training_fields_are_named(tmp_path, field, value, message):
    sweep = tmp_path / "wsd"
    (run_dir,) = write_trunk(sweep, "t", n_layers=2, d_model=64, tokens=[2e5],
                             trunk_record=False)  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    summary[field] = value
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(DataError, match=message):
        load_runs(sweep)


def test_tables_may_carry_or_map_a_trunk_column(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss,traj\n1e6,2e7,3.0,a\n1e6,4e7,2.9,a\n2e6,4e7,2.8,b\n")
    mapped = load_table(path, trunk_col="traj")
    assert list(mapped["trunk"]) == ["a", "a", "b"]
    assert list(load(path, trunk_col="traj")["trunk"]) == ["a", "a", "b"]
    plain = load_table(path)
    assert "trunk" not in plain.columns and "schedule" not in plain.columns
    own = tmp_path / "own.csv"
    own.write_text("params,tokens,loss,trunk\n1e6,2e7,3.0,x\n")
    assert list(load(own)["trunk"]) == ["x"]
    with pytest.raises(DataError, match=r"no column 'lineage' \(given as trunk_col\)"):
        load_table(path, trunk_col="lineage")


# --------------------------------------------------------------------------------------
# Tables


def test_csv_with_mapping_derives_tokens(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("name,N,C,L\nx,1e6,6e12,3.5\ny,2e6,4.8e13,3.1\n")
    df = load_table(path, params_col="N", flops_col="C", loss_col="L", run_col="name")
    assert list(df["run"]) == ["x", "y"]
    assert list(df["params"]) == [1e6, 2e6]
    assert np.allclose(df["tokens"], [6e12 / (6 * 1e6), 4.8e13 / (6 * 2e6)])
    assert list(df["loss"]) == [3.5, 3.1]
    assert "N" in df.columns  # the source's own columns stay


def test_tsv_derives_flops_and_names_rows(tmp_path):
    path = tmp_path / "runs.tsv"
    path.write_text("params\ttokens\tloss\n1000\t20000\t4.0\n2000\t40000\t3.5\n")
    df = load(path)
    assert np.allclose(df["flops"], [6 * 1000 * 20000, 6 * 2000 * 40000])
    assert list(df["run"]) == ["runs:2", "runs:3"]  # file stem and line


def test_jsonl_with_mapping(tmp_path):
    path = tmp_path / "log.jsonl"
    rows = [
        {"model": "s", "n": 1e7, "d": 2e8, "eval": 3.0},
        {"model": "m", "n": 3e7, "d": 6e8, "eval": 2.7},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    df = load(path, params_col="n", tokens_col="d", loss_col="eval", run_col="model")
    assert list(df["run"]) == ["s", "m"]
    assert np.allclose(df["flops"], [6 * 1e7 * 2e8, 6 * 3e7 * 6e8])


def test_missing_mapped_column_names_it(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,L\n1,2\n")
    with pytest.raises(DataError, match=r"'Model Size'.*columns: N, L"):
        load_table(path, params_col="Model Size")


def test_exact_duplicates_dropped_with_warning(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1,2,3\n4,5,6\n1,2,3\n1,2,3.5\n")
    with pytest.warns(DataWarning, match=r"dropped 1 exact duplicate row.*line 4"):
        df = load_table(path)
    assert len(df) == 3


def test_where_filters_after_loading(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("Model Size,Training FLOP,loss\n1e6,1e13,3.5\n2e6,1e13,3.3\n4e6,1e13,3.6\n")
    df = load(path, params_col="Model Size", flops_col="Training FLOP", where="loss < 3.55")
    assert sorted(df["loss"]) == [3.3, 3.5]
    df = load(
        path,
        params_col="Model Size",
        flops_col="Training FLOP",
        where="`Model Size` > 1.5e6 and tokens > 0",
    )
    assert list(df["params"]) == [2e6, 4e6]


def test_bad_where_names_expression_and_columns(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1,2,3\n")
    with pytest.raises(DataError, match=r"'lss < 3'.*Available columns: run, params"):
        load(path, where="lss < 3")
    with pytest.raises(DataError, match="left no rows"):
        load(path, where="loss > 10")


def test_malformed_csv_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("params,tokens,loss\n1,2,3\n4,5,6\n7,8,9,10\n")
    with pytest.raises(DataError, match=r"bad\.csv.*line 4"):
        load(path)


def test_non_numeric_cell_names_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("params,tokens,loss\n1,2,3\n4,5,oops\n")
    with pytest.raises(
        DataError, match=r"bad\.csv, line 3: column 'loss' is 'oops'; expected a number"
    ):
        load(path)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"params": 1, "tokens": 2, "loss": 3}\n{"params": 2, tokens: 3}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: invalid JSON"):
        load(path)
    path.write_text('{"params": 1, "tokens": 2, "loss": 3}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load(path)


def test_malformed_summary_names_file_and_line(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    summary = next(sweep.glob("*/summary.json"))
    summary.write_text('{"run_id": "abc",\n "status": "completed",\n "tokens": }')
    with pytest.raises(DataError, match=rf"{summary.parent.name}/summary\.json, line 3"):
        load_runs(sweep)


def test_summary_missing_field_is_named(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    summary = next(sweep.glob("*/summary.json"))
    record = json.loads(summary.read_text())
    del record["final_val_loss"]
    summary.write_text(json.dumps(record))
    with pytest.raises(
        DataError, match=r"summary\.json: field 'final_val_loss' is missing; expected a number"
    ):
        load_runs(sweep)


def test_bad_metrics_line_is_named_and_torn_last_line_skipped(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:1])
    metrics = next(sweep.glob("*/metrics.jsonl"))
    lines = metrics.read_text().splitlines()
    n = len(lines)
    # A run killed mid-append leaves a partial last line with no newline: skipped.
    metrics.write_text("\n".join(lines) + '\n{"step": 99, "tok')
    with pytest.warns(DataWarning, match=rf"line {n + 1}: incomplete last line"):
        curves = load_curves(sweep)
    assert len(curves) == n
    # A bad value inside the file is an error naming its line and field.
    bad = json.loads(lines[2])
    bad["val_loss"] = "nan?"
    metrics.write_text("\n".join([*lines[:2], json.dumps(bad), *lines[3:]]) + "\n")
    with pytest.raises(DataError, match=r"metrics\.jsonl, line 3: field 'val_loss'"):
        load_curves(sweep)


def test_unknown_format_and_missing_path(tmp_path):
    path = tmp_path / "runs.parquet"
    path.write_text("x")
    with pytest.raises(DataError, match="unknown format"):
        load(path)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no summary.json"):
        load(tmp_path)


# --------------------------------------------------------------------------------------
# Checking what a use needs


def test_require_explains_missing_columns_and_drops_incomplete_rows():
    df = pd.DataFrame(
        {"run": ["a", "b", "c"], "params": [1.0, 2.0, 3.0], "loss": [3.0, np.nan, 2.0]}
    )
    with pytest.raises(DataError, match=r"chinchilla needs.*tokens.*--tokens-col"):
        require(df, ["params", "tokens", "loss"], "chinchilla")
    with pytest.warns(DataWarning, match=r"dropped 1 row.*: b"):
        kept = require(df, ["params", "loss"], "saturating")
    assert list(kept["run"]) == ["a", "c"]


# --------------------------------------------------------------------------------------
# The rules of analysis.io.checks, as each reader applies them


def test_a_table_value_past_the_float_range_figures_draw_is_named_by_line(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,flops,loss\n1e7,2e8,1.2e16,3.1\n2e7,4e8,4.8e16,2.9\n"
                    "1e308,2e8,1e308,3.0\n")  # fmt: skip
    with pytest.raises(DataError, match=r"runs\.csv, line 4: column 'params' is 1e\+308 \(too"):
        load(path)


def test_a_derived_column_that_overflows_says_how_it_was_derived(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e7,2e8,3.1\n1e60,1e60,3.0\n")
    with pytest.raises(DataError, match=r"line 3: column 'flops' is 6e\+120 .*6 · params · tokens"):
        load(path)


def test_booleans_are_refused_in_jsonl_as_in_csv(tmp_path):
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text('{"params": 1e7, "tokens": 2e8, "loss": 3.1}\n'
                     '{"params": 2e7, "tokens": 4e8, "loss": true}\n')  # fmt: skip
    with pytest.raises(DataError, match=r"runs\.jsonl, line 2: column 'loss' is True"):
        load(jsonl)
    jsonl.write_text('{"params": 1e7, "tokens": 2e8, "loss": "3.1"}\n')
    with pytest.raises(DataError, match=r"line 1: column 'loss' is '3\.1'.*without quotes"):
        load(jsonl)
    csv = tmp_path / "runs.csv"
    csv.write_text("params,tokens,loss\n1e7,2e8,True\n2e7,4e8,False\n")
    with pytest.raises(DataError, match=r"runs\.csv, line 2: column 'loss' is (np\.)?True"):
        load(csv)


def test_a_mapped_column_is_named_as_the_source_calls_it(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,L\n1e7,2e8,3.1\n2e7,4e8,-3\n")
    with pytest.raises(DataError, match=r"line 3: column 'L' is -3 \(not > 0\)"):
        load(path, params_col="N", tokens_col="D", loss_col="L")


def test_a_run_of_zero_tokens_is_refused_but_a_curve_may_start_at_zero(tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text("params,tokens,loss\n1e7,2e8,3.1\n2e7,0,3.0\n")
    with pytest.raises(DataError, match=r"line 3: column 'tokens' is 0 \(zero\)"):
        load(runs)
    curve = tmp_path / "curve.csv"
    curve.write_text("run,step,params,tokens,loss\na,0,1e7,0,9.0\na,10,1e7,1e5,4.0\n"
                     "a,20,1e7,2e5,3.5\n")  # fmt: skip
    df = load(curve)
    assert list(df["tokens"]) == [0, 1e5, 2e5]
    with pytest.warns(DataWarning, match=r"left out 1 point\(s\) at 0 tokens.*: a"):
        used = require(df, ["params", "tokens", "loss"], "the fit")
    assert list(used["step"]) == [10, 20]


def test_steps_of_a_table_must_be_whole_and_not_repeat(tmp_path):
    path = tmp_path / "curve.csv"
    path.write_text("run,step,params,tokens,loss\na,10,1e7,1e5,4.0\na,10.5,1e7,2e5,3.5\n")
    with pytest.raises(DataError, match=r"line 3: column 'step' is 10\.5 \(not a whole number\)"):
        load(path)
    path.write_text("run,step,params,tokens,loss\na,10,1e7,1e5,4.0\na,10,1e7,2e5,3.5\n")
    with pytest.raises(DataError, match=r"line 3: run 'a' has step 10 again \(first at .*line 2\)"):
        load(path)
    path.write_text("run,step,params,tokens,loss\na,20,1e7,2e5,3.5\na,10,1e7,1e5,4.0\n")
    with pytest.warns(DataWarning, match=r"line 3: the steps of run 'a' go backwards"):
        load(path)


def test_every_row_says_where_it_was_read_and_require_names_it(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss,width\n1e7,2e8,3.1,64\n2e7,4e8,2.9,wide\n")
    df = load(path)
    assert list(df["origin"]) == [f"{path}, line 2", f"{path}, line 3"]
    # a column of the source's own (--x width) gets the rules when a use needs it
    with pytest.raises(DataError, match=r"runs\.csv, line 3: column 'width' is 'wide'"):
        require(df, ["width", "loss"], "the fit")
    with pytest.raises(DataError, match=r"runs\.csv, line 3: column 'width' is -1 \(not > 0\)"):
        require(df.assign(width=[64.0, -1.0]), ["width", "loss"], "the fit")


def test_params_convention_picks_a_table_column_or_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,params_matmul,tokens,loss\n1e7,1.2e7,2e8,3.1\n2e7,2.3e7,4e8,2.9\n")
    assert list(load(path, params="matmul")["params"]) == [1.2e7, 2.3e7]
    assert list(load(path)["params"]) == [1e7, 2e7]  # no convention asked: as given
    with pytest.raises(DataError, match=r"no 'params_total' column: its parameter column is "
                                        r"taken as given.*--params-col COL"):  # fmt: skip
        load(path, params="total")


def test_run_records_with_bad_numbers_name_the_file_and_field(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    summary = next(sweep.glob("*/summary.json"))
    record = json.loads(summary.read_text())
    record["params_nonembed"] = math.inf  # json writes Infinity
    summary.write_text(json.dumps(record))
    with pytest.raises(DataError, match=rf"{summary.parent.name}/summary\.json: field "
                                        r"'params_nonembed' is inf \(infinite\)"):  # fmt: skip
        load_runs(sweep)
    record["params_nonembed"], record["final_val_loss"] = 1e6, True
    summary.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"summary\.json: field 'final_val_loss' is True"):
        load_runs(sweep)


def test_metrics_whose_steps_go_back_are_refused(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:1])
    metrics = next(sweep.glob("*/metrics.jsonl"))
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*lines, lines[1]]) + "\n")  # the second line again
    with pytest.raises(DataError, match=rf"metrics\.jsonl, line {len(lines) + 1}: run .* has "
                                        r"step \d+ again \(first at .*line 2\)"):  # fmt: skip
        load_curves(sweep)
    bad = json.loads(lines[1])
    bad["val_loss"] = True
    metrics.write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"metrics\.jsonl, line 2: field 'val_loss' is True"):
        load_curves(sweep)


def test_two_records_of_one_run_are_refused_by_name(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    run_dir = next(p for p in sweep.iterdir() if p.is_dir())
    copy = sweep / f"{run_dir.name}-copy"
    copy.mkdir()
    for name in ("summary.json", "metrics.jsonl"):
        (copy / name).write_text((run_dir / name).read_text())
    with pytest.raises(DataError, match=rf"run_id '{run_dir.name}' of sweep 'demo' is also the "
                                        r"run of .*: two records claim one run"):  # fmt: skip
        load_runs(sweep)


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        ({"schema": "1"}, r"field 'schema' is '1'; expected a whole number from 1 to 1"),
        ({"schema": 2}, r"field 'schema' is 2, newer than this reader understands"),
        ({"role": "branch"}, r"field 'role' is 'branch'; expected 'trunk' or no role"),
    ],
)
def test_records_of_an_unknown_schema_are_refused(tmp_path, change, outcome):
    sweep = write_sweep(tmp_path, ladder=LADDER[:2])
    summary = next(sweep.glob("*/summary.json"))
    summary.write_text(json.dumps({**json.loads(summary.read_text()), **change}))
    with pytest.raises(DataError, match=outcome):
        load_runs(sweep)


def test_records_of_an_unknown_job_are_left_out_by_name(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:3])
    summary = next(sweep.glob("*/summary.json"))
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "job": "distill"}))
    with pytest.warns(DataWarning, match=rf"{summary.parent.name}/summary\.json \(job 'distill'\)"):
        df = load_runs(sweep)
    assert len(df) == 2
