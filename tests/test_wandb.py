"""Weights & Biases: CSV exports of runs and histories, and offline run directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.io import (
    DataError,
    DataWarning,
    OptionalDependencyError,
    csv_layout,
    load,
    load_wandb_offline,
    read_run_file,
)

# Two-layer llamas (256-token vocabulary, 128 context) by width: heads, d_ff, non-embedding
# count and training FLOPs per token, as scaling.families.param_counts and
# scaling.flops.flops_per_token give them.
LLAMAS = {64: (2, 160, 94528, 862080.0), 128: (2, 352, 402048, 3002112.0)}
SIZES = {"r1": 1e5, "r2": 3e5, "r3": 1e6, "r4": 3e6, "r5": 1e7, "r6": 3e7}
TOKENS = 40960


def final_loss(params: float) -> float:
    return 2.0 + 50.0 * params**-0.3


def hf_llama_config(width: int) -> dict:
    """What Hugging Face's W&B callback puts in a run's config: the training arguments,
    the model config's fields, and model/num_parameters (all parameters)."""
    heads, d_ff, _, _ = LLAMAS[width]
    return {
        "learning_rate": 3e-4,
        "model_type": "llama",
        "hidden_size": width,
        "intermediate_size": d_ff,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "vocab_size": 256,
        "max_position_embeddings": 128,
        "tie_word_embeddings": False,
        "model/num_parameters": 123,
    }


# --------------------------------------------------------------------------------------
# Runs-table exports


def write_script_export(path: Path) -> Path:
    """The layout of the W&B docs' "querying multiple runs" script (public API guide):

        runs_df = pd.DataFrame({"summary": summary_list, "config": config_list,
                                "name": name_list})
        runs_df.to_csv("project.csv")

    with summary_list from run.summary._json_dict and config_list from run.config."""
    summaries, configs, names = [], [], []
    for width in LLAMAS:
        names.append(f"llama-{width}")
        configs.append(hf_llama_config(width))
        summaries.append(
            {
                "eval/loss": final_loss(LLAMAS[width][2]),
                "train/loss": 9.0,
                "train/num_input_tokens_seen": TOKENS,
                "_step": 400,
                "_runtime": 12.5,
                "_wandb": {"runtime": 12},
            }
        )
    for run, size in SIZES.items():
        names.append(run)
        configs.append({"n_params": size, "optimizer": {"name": "adamw", "beta2": 0.95}})
        summaries.append({"eval/loss": final_loss(size), "train/num_input_tokens_seen": TOKENS})
    pd.DataFrame({"summary": summaries, "config": configs, "name": names}).to_csv(path)
    return path


def test_runs_export_of_the_public_api_script(tmp_path):
    path = write_script_export(tmp_path / "project.csv")
    assert csv_layout(path) == "runs"
    runs = load(path).set_index("run")
    assert len(runs) == len(LLAMAS) + len(SIZES)
    for width, (_, _, nonembed, per_token) in LLAMAS.items():
        row = runs.loc[f"llama-{width}"]
        # the model config gives our count, not the callback's model/num_parameters
        assert row["params"] == nonembed and row["params_nonembed"] == nonembed
        assert row["flops"] == pytest.approx(TOKENS * per_token)  # attention included
        assert row["loss"] == pytest.approx(final_loss(nonembed))
    for run, size in SIZES.items():
        assert runs.loc[run, "params"] == size
        assert runs.loc[run, "flops"] == pytest.approx(6 * size * TOKENS)
        assert runs.loc[run, "optimizer.beta2"] == 0.95  # nested config flattened
    # a key asked for must be in every run
    with pytest.raises(DataError, match=r"run 'r1' has no key 'model/num_parameters'"):
        load(path, params_col="model/num_parameters")


def test_runs_export_of_the_web_app_leaves_out_unfinished_runs(tmp_path):
    # The runs table's "Export as CSV": Name, State, Notes, User, Tags, Created, Runtime,
    # Sweep, then a column per config and summary key shown in the table.
    lines = ["Name,State,Notes,User,Tags,Created,Runtime,Sweep,n_params,lr,eval/loss,tokens"]
    for run, size in SIZES.items():
        lines.append(
            f"{run},finished,-,me,,2024-05-01T10:00:00.000Z,120,,{size},0.001,"
            f"{final_loss(size)},{TOKENS}"
        )
    lines.append("r7,crashed,-,me,,2024-05-01T10:00:00.000Z,3,,1e8,0.001,9.0,100")
    path = tmp_path / "wandb_export_2024-05-02.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(DataWarning, match=r"left out 1 run.*r7 \(crashed\)"):
        runs = load(path)
    assert sorted(runs["run"]) == sorted(SIZES)
    assert dict(zip(runs["run"], runs["params"], strict=True)) == SIZES
    assert set(runs["tokens"]) == {TOKENS}


def test_cli_fits_a_runs_export_one_point_per_run(tmp_path, capsys):
    path = write_script_export(tmp_path / "project.csv")
    args = ["fit", str(path), "--law", "saturating", "--x", "params", "--bootstrap", "0"]
    code = main([*args, "--where", "params >= 1e5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(SIZES) + 1  # llama-64 (94528 parameters) filtered out
    assert result["params"]["E"] == pytest.approx(2.0, rel=1e-3)
    assert result["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    code = main(["fit", str(path), "--loss-col", "eval/accuracy", "--law", "power"])
    assert code == 2 and "has no loss 'eval/accuracy'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# History exports


def write_history_export(path: Path) -> Path:
    """The layout of api.runs(path).histories(format="pandas") (wandb.apis.public.runs):
    one row per logged step of each run, a run_id column added, columns sorted."""
    rows = []
    for run, size in SIZES.items():
        for step in (100, 200, 300, 400):
            rows.append(
                {
                    "_step": step,
                    "_runtime": step / 10,
                    "_timestamp": 1.7e9 + step,
                    "eval/loss": final_loss(size) + (400 - step) / 1000,
                    "train/num_input_tokens_seen": step * 100,
                    "run_id": f"id{run}",
                }
            )
    df = pd.DataFrame(rows)
    df[sorted(df.columns)].to_csv(path, index=False)
    return path


def test_history_export_with_a_mapping_file_by_run_id(tmp_path, capsys):
    path = write_history_export(tmp_path / "history.csv")
    assert csv_layout(path) == "history"
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("run,params\n" + "".join(f"id{r},{n}\n" for r, n in SIZES.items()))
    curves = load(path, kind="curves", params_map=sizes)
    assert len(curves) == 4 * len(SIZES)
    first = curves[curves["run"] == "idr1"]
    assert list(first["step"]) == [100, 200, 300, 400]
    assert list(first["tokens"]) == [10000, 20000, 30000, 40000]
    runs = load(path, params_map=sizes)
    assert dict(zip(runs["run"], runs["params"], strict=True)) == {
        f"id{r}": n for r, n in SIZES.items()
    }
    code = main(["fit", str(path), "--params-map", str(sizes), "--law", "saturating",
                 "--x", "params", "--bootstrap", "0", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    sizes.write_text("run,params\nidr1,5\n")
    with pytest.raises(DataError, match=r"sizes.csv: no line for run 'idr2'"):
        load(path, params_map=sizes)


# --------------------------------------------------------------------------------------
# Offline run directories, written by the wandb package itself


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory):
    """Four runs logged with wandb in offline mode (plus one that exits with code 1),
    with every wandb directory in the test's own temporary folder."""
    wandb = pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wandb_runs")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            env.setenv(name, str(root / name.lower()))
        runs = {**dict(list(SIZES.items())[:4]), "broken": 1e9}
        for name, size in runs.items():
            run = wandb.init(
                mode="offline",
                dir=root,
                project="sweep",
                name=name,
                config={"n_params": size, "model": {"width": 8}},
            )
            for step in (10, 20, 30):
                loss = final_loss(size) + (30 - step) / 100
                run.log({"eval/loss": loss, "train/num_input_tokens_seen": step * 1000}, step=step)
            run.finish(exit_code=1 if name == "broken" else 0)
        # stop wandb's service, which writes the run files: on a loaded machine the
        # last run's file could otherwise still lack its run record when read
        wandb.teardown()
    return root / "wandb"


def test_an_offline_run_file_is_read_back(offline_runs):
    files = sorted(offline_runs.glob("offline-run-*/run-*.wandb"))
    assert len(files) == 5
    runs = {r["name"]: r for r in map(read_run_file, files)}
    assert sorted(runs) == ["broken", "r1", "r2", "r3", "r4"], [r["file"] for r in runs.values()]
    r1 = runs["r1"]
    assert r1["config"]["n_params"] == 1e5 and r1["config"]["model.width"] == 8
    assert [row["_step"] for row in r1["history"]] == [10, 20, 30]
    assert [row["eval/loss"] for row in r1["history"]] == pytest.approx(
        [final_loss(1e5) + 0.2, final_loss(1e5) + 0.1, final_loss(1e5)]
    )
    assert r1["exit_code"] == 0 and runs["broken"]["exit_code"] == 1


def test_offline_runs_one_row_per_finished_run(offline_runs):
    with pytest.warns(DataWarning, match=r"left out 1 run.*broken \(exit code 1\)"):
        runs = load(offline_runs)
    expected = dict(list(SIZES.items())[:4])
    assert dict(zip(runs["run"], runs["params"], strict=True)) == expected
    assert set(runs["tokens"]) == {30000} and set(runs["step"]) == {30}
    for row in runs.itertuples():
        assert row.loss == pytest.approx(final_loss(expected[row.run]))
    finished = next(  # the glob's order is the file system's: the broken run may come first
        f.parent
        for f in offline_runs.glob("offline-run-*/run-*.wandb")
        if read_run_file(f)["exit_code"] == 0
    )
    one = load_wandb_offline(finished, n_params=5.0)
    assert len(one) == 3 and set(one["params"]) == {5.0}


def test_cli_fits_offline_runs(offline_runs, capsys):
    # flops = 6 N D with one D for all: C ∝ N^1 exactly
    code = main(["fit", str(offline_runs), "--law", "power", "--y", "flops", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 4
    assert result["params"]["k"] == pytest.approx(1.0, abs=1e-9)


def test_a_cut_short_run_file_warns_and_a_foreign_one_fails(offline_runs, tmp_path):
    source = next(offline_runs.glob("offline-run-*/run-*.wandb"))
    cut = tmp_path / "run-cut.wandb"
    cut.write_bytes(source.read_bytes()[:-5])
    with pytest.warns(DataWarning, match="cut short"):
        read_run_file(cut)
    foreign = tmp_path / "run-x.wandb"
    foreign.write_bytes(b"not a run log at all")
    with pytest.raises(DataError, match="not a W&B run file"):
        read_run_file(foreign)


def test_without_wandb_the_error_says_how_to_install(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "wandb" or name.startswith("wandb."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    (tmp_path / "run-abc.wandb").write_bytes(b"")
    with pytest.raises(OptionalDependencyError, match=r'pip install "scaling-lab\[wandb\]"'):
        load(tmp_path)


# --------------------------------------------------------------------------------------
# The rules of analysis.io.checks on W&B exports


def test_a_boolean_or_text_loss_in_the_runs_export_is_refused_with_its_line(tmp_path):
    path = write_script_export(tmp_path / "project.csv")
    table = pd.read_csv(path, index_col=0)
    summary = {"eval/loss": True, "train/num_input_tokens_seen": TOKENS}
    table.loc[3, "summary"] = repr(summary)  # line 5: the header, then rows 0..3
    table.to_csv(path)
    with pytest.raises(DataError, match=r"project\.csv, line 5: run 'r2': field 'eval/loss' is "
                                        r"True.*a boolean"):  # fmt: skip
        load(path)
    table.loc[3, "summary"] = repr({**summary, "eval/loss": float("inf")})
    table.to_csv(path)
    with pytest.raises(DataError, match=r"line 5: run 'r2': field 'eval/loss' is inf"):
        load(path)


def test_runs_of_one_name_are_told_apart_and_a_row_listed_twice_is_refused(tmp_path):
    path = write_script_export(tmp_path / "project.csv")
    table = pd.read_csv(path, index_col=0)
    table.loc[3, "name"] = "r1"  # two different runs both called r1: lines 4 and 5
    table.to_csv(path)
    with pytest.warns(DataWarning, match=r"several runs share a name.*r1 \(2 runs\)"):
        runs = load(path)
    assert {"r1 (line 4)", "r1 (line 5)"} <= set(runs["run"])
    table.loc[3] = table.loc[2]  # the same run twice
    table.to_csv(path)
    with pytest.raises(DataError, match=r"line 5: run 'r1' again, with the values of line 4"):
        load(path)


def test_a_history_that_repeats_a_step_or_logs_text_as_loss_is_refused(tmp_path):
    path = write_history_export(tmp_path / "history.csv")
    table = pd.read_csv(path)
    table.loc[1, "_step"] = 100  # run idr1 logs step 100 twice (lines 2 and 3)
    table.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"history\.csv, line 3: the curve has step 100 again "
                                        r"\(first at .*line 2\)"):  # fmt: skip
        load(path, kind="curves", n_params=1e6)
    table = pd.read_csv(write_history_export(path))
    table["eval/loss"] = table["eval/loss"].astype(object)
    table.loc[2, "eval/loss"] = "diverged"
    table.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"line 4: column 'eval/loss' is 'diverged'"):
        load(path, kind="curves", n_params=1e6)
