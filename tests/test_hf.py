"""Hugging Face Trainer runs: one trainer_state.json, and directories of run directories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.io import DataError, DataWarning, load, load_hf_runs, load_trainer_state

# Two-layer llamas of a 256-token vocabulary and 128 context, by width: heads, d_ff, and
# their non-embedding, matmul (non-embedding + head) and total counts and training FLOPs
# per token, as scaling.families.param_counts and scaling.flops.flops_per_token give them
# (e.g. width 64: 2·(4·64² + 3·64·160 + 2·64) + 64 = 94528; 6·110912 + 12·2·128·64).
LADDER = {
    64: (2, 160, 94528, 110912, 127296, 862080.0),
    96: (3, 256, 221664, 246240, 270816, 1772352.0),
    128: (2, 352, 402048, 434816, 467584, 3002112.0),
    192: (3, 512, 885696, 934848, 984000, 6198912.0),
    256: (4, 672, 1557760, 1623296, 1688832, 10526208.0),
    320: (5, 864, 2479680, 2561600, 2643520, 16352640.0),
}
STEPS = (100, 200, 300, 400)
TOKENS_PER_STEP = 1024


def llama_config(width: int) -> dict:
    """A config.json as LlamaConfig.save_pretrained writes it (the fields that matter)."""
    heads, d_ff = LADDER[width][:2]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": width,
        "intermediate_size": d_ff,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": width // heads,
        "vocab_size": 256,
        "max_position_embeddings": 128,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
    }


def final_loss(nonembed: float) -> float:
    return 2.0 + 50.0 * nonembed**-0.3


def state_for(nonembed: float, n_hf: float, upto: int = 400, tokens: bool = True) -> dict:
    """A trainer_state.json: training and evaluation entries every 100 steps; the loss
    ends at L(N) = 2 + 50 N^-0.3; total_flos is the Trainer's 6 · N_HF · D."""
    history = []
    for step in [s for s in STEPS if s <= upto]:
        train = {"epoch": step / 400, "loss": final_loss(nonembed) + 0.1, "step": step}
        if tokens:
            train["num_input_tokens_seen"] = step * TOKENS_PER_STEP
        history.append(train)
        loss = final_loss(nonembed) + (400 - step) / 1000
        history.append({"epoch": step / 400, "eval_loss": loss, "step": step})
    total = 6.0 * n_hf * upto * TOKENS_PER_STEP
    history.append({"step": upto, "train_runtime": 1.0, "total_flos": total})
    return {"global_step": upto, "max_steps": 400, "total_flos": total, "log_history": history}


def write_hf_sweep(root: Path, checkpointed: int = 128) -> Path:
    """One run directory per width, ``w<width>``; the ``checkpointed`` one has only its
    checkpoints' states (no num_input_tokens_seen), as a Trainer without save_state."""
    sweep = root / "hf_sweep"
    for width, (_, _, nonembed, matmul, _, _) in LADDER.items():
        run = sweep / f"w{width}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(llama_config(width)))
        if width == checkpointed:
            for step in (200, 400):
                folder = run / f"checkpoint-{step}"
                folder.mkdir()
                state = state_for(nonembed, matmul, upto=step, tokens=False)
                (folder / "trainer_state.json").write_text(json.dumps(state))
                (folder / "config.json").write_text(json.dumps(llama_config(width)))
        else:
            (run / "trainer_state.json").write_text(json.dumps(state_for(nonembed, matmul)))
    return sweep


def test_a_directory_of_run_directories_is_one_row_per_run(tmp_path, caplog):
    sweep = write_hf_sweep(tmp_path)
    with caplog.at_level(logging.INFO, logger="analysis.io"):
        runs = load(sweep)
    assert sorted(runs["run"]) == sorted(f"w{w}" for w in LADDER)
    tokens = 400 * TOKENS_PER_STEP
    for row in runs.itertuples():
        _, _, nonembed, matmul, total, per_token = LADDER[int(row.run[1:])]
        assert row.params == nonembed
        assert (row.params_matmul, row.params_total) == (matmul, total)
        assert row.step == 400
        assert row.loss == pytest.approx(final_loss(nonembed))
        # the checkpointed run logs no tokens: recovered from total_flos = 6 · N_HF · D
        assert row.tokens == pytest.approx(tokens)
        assert row.flops == pytest.approx(tokens * per_token)  # attention included
        assert row.total_flos == pytest.approx(6.0 * matmul * tokens)  # kept as it was
    notes = [r.getMessage() for r in caplog.records if "total_flos counts" in r.getMessage()]
    assert len(notes) == 1 and "without attention" in notes[0]


def test_the_convention_picks_the_count_and_curves_have_every_evaluation(tmp_path):
    sweep = write_hf_sweep(tmp_path)
    runs = load(sweep, params="total")
    assert sorted(runs["params"]) == sorted(v[4] for v in LADDER.values())
    curves = load(sweep, kind="curves")
    assert len(curves) == len(LADDER) * len(STEPS)
    w128 = curves[curves["run"] == "w128"]
    assert list(w128["step"]) == list(STEPS)  # from checkpoint-400, not checkpoint-200
    assert list(w128["tokens"]) == pytest.approx([s * TOKENS_PER_STEP for s in STEPS])


def test_a_mapping_file_gives_the_counts_of_runs_of_unknown_families(tmp_path):
    sweep = write_hf_sweep(tmp_path)
    config = sweep / "w64" / "config.json"
    config.write_text(json.dumps({**llama_config(64), "model_type": "mistral"}))
    runs = load(sweep)
    assert np.isnan(runs.set_index("run").loc["w64", "params"])
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("run,params,other\n" + "".join(f"w{w},{w * 1000},1\n" for w in LADDER))
    mapped = load(sweep, params_map=sizes).set_index("run")
    assert mapped.loc["w64", "params"] == 64000 and mapped.loc["w256", "params"] == 256000
    assert "params_nonembed" not in mapped.columns  # the counts are not the config's
    by_column = load(sweep, params_map=sizes, params_col="other")
    assert set(by_column["params"]) == {1.0}
    sizes.write_text("run,params\nw64,1000\n")
    with pytest.raises(DataError, match=r"sizes.csv: no line for run 'w128'"):
        load(sweep, params_map=sizes)


def test_bad_mapping_files_are_named_with_their_line(tmp_path):
    sweep = write_hf_sweep(tmp_path)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("name,params\nw64,1\n")
    with pytest.raises(DataError, match=r"sizes.csv: no column 'run'"):
        load(sweep, params_map=sizes)
    sizes.write_text("run,params\nw64,1\nw96,big\n")
    with pytest.raises(DataError, match=r"sizes.csv, line 3: run 'w96', params 'big'"):
        load(sweep, params_map=sizes)
    sizes.write_text("run,params\nw64,1\nw64,2\n")
    with pytest.raises(DataError, match=r"line 3: run 'w64' listed again"):
        load(sweep, params_map=sizes)


def test_cli_fits_a_hugging_face_sweep_one_point_per_run(tmp_path, capsys):
    sweep = write_hf_sweep(tmp_path)
    args = ["fit", str(sweep), "--law", "saturating", "--x", "params", "--bootstrap", "0"]
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(LADDER)
    # the final losses follow L(N) = 2 + 50 N^-0.3 exactly
    assert result["params"]["E"] == pytest.approx(2.0, rel=1e-3)
    assert result["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    assert err.count("total_flos counts 6·N·D without attention") == 1
    code = main(args)
    out, _ = capsys.readouterr()
    assert code == 0 and "(N = non-embedding parameters)" in out
    code = main([*args, "--curves", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["n"] == len(LADDER) * len(STEPS)


def test_cli_says_which_run_the_mapping_file_lacks(tmp_path, capsys):
    sweep = write_hf_sweep(tmp_path)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("run,params\nw64,1000\n")
    code = main(["fit", str(sweep), "--params-map", str(sizes), "--law", "power"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "sizes.csv: no line for run 'w128'" in err and "hf_sweep" in err
    code = main(["fit", str(sweep / "nope"), "--law", "power"])
    assert code == 2 and "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# One trainer_state.json


def trainer_state(with_tokens: bool = True, with_eval: bool = True) -> dict:
    history = []
    for step in (100, 200, 300):
        train = {"epoch": step / 300, "loss": 4.0 - step / 200, "learning_rate": 1e-4, "step": step}
        if with_tokens:
            train["num_input_tokens_seen"] = step * 1024
        history.append(train)
        if with_eval:
            history.append({"epoch": step / 300, "eval_loss": 4.1 - step / 200, "step": step})
    history.append({"step": 300, "train_runtime": 12.0, "total_flos": 1e15})
    return {"global_step": 300, "max_steps": 300, "log_history": history}


def test_trainer_state_curve(tmp_path):
    path = tmp_path / "my-run" / "trainer_state.json"
    path.parent.mkdir()
    path.write_text(json.dumps(trainer_state()))
    df = load(path, kind="curves", n_params=1e6)
    assert list(df["step"]) == [100, 200, 300]
    assert np.allclose(df["loss"], [4.1 - s / 200 for s in (100, 200, 300)])
    assert np.allclose(df["train_loss"], [4.0 - s / 200 for s in (100, 200, 300)])
    assert list(df["tokens"]) == [102400, 204800, 307200]
    # no config.json: no shape, so 6·N·D from the count given
    assert np.allclose(df["flops"], 6 * 1e6 * df["tokens"])
    assert set(df["run"]) == {"my-run"}
    final = load(path.parent, kind="runs", n_params=1e6)  # a directory holding it works too
    assert len(final) == 1 and final["step"].iloc[0] == 300


def test_trainer_state_takes_the_count_and_flops_from_the_config_beside_it(tmp_path):
    path = tmp_path / "run" / "trainer_state.json"
    path.parent.mkdir()
    path.write_text(json.dumps(trainer_state()))
    (path.parent / "config.json").write_text(json.dumps(llama_config(96)))
    df = load_trainer_state(path)
    assert set(df["params"]) == {221664}
    assert np.allclose(df["flops"], df["tokens"] * 1772352.0)


def test_trainer_state_tokens_per_step_and_train_loss_fallback(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(trainer_state(with_tokens=False, with_eval=False)))
    with pytest.warns(DataWarning, match="training loss"):
        df = load_trainer_state(path, tokens_per_step=512)
    assert list(df["tokens"]) == [100 * 512, 200 * 512, 300 * 512]
    assert np.allclose(df["loss"], [4.0 - s / 200 for s in (100, 200, 300)])
    assert df["params"].isna().all()


def test_trainer_state_without_log_history(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text('{"global_step": 3}')
    with pytest.raises(DataError, match="log_history"):
        load(path)
    with pytest.raises(DataError, match="no trainer_state.json"):
        load_hf_runs(tmp_path / "elsewhere")


def _write_state(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "run" / "trainer_state.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(state))  # json writes inf as Infinity, as Python's json reads it
    return path


def test_a_step_that_is_not_a_whole_number_is_named_not_an_overflow(tmp_path):
    state = trainer_state()
    state["log_history"][2]["step"] = float("inf")
    path = _write_state(tmp_path, state)
    with pytest.raises(DataError, match=r"field 'log_history\[2\]\.step' is inf \(infinite\)"):
        load(path, n_params=1e6)
    state["log_history"][2]["step"] = True
    path.write_text(json.dumps(state))
    with pytest.raises(DataError, match=r"'log_history\[2\]\.step' is True.*a boolean"):
        load(path, n_params=1e6)


def test_a_history_whose_steps_go_back_or_disagree_is_refused(tmp_path):
    state = trainer_state()
    history = state["log_history"]
    evals = [i for i, e in enumerate(history) if "eval_loss" in e]
    history.insert(evals[-1] + 1, dict(history[evals[0]]))  # step 100's eval after step 300
    path = _write_state(tmp_path, state)
    with pytest.raises(DataError, match=rf"log_history\[{evals[-1] + 1}\]: step 100 comes after "
                                        r"step 300.*goes backwards"):  # fmt: skip
        load(path, n_params=1e6)
    state = trainer_state()
    twice = dict(state["log_history"][evals[0]], eval_loss=9.0)
    state["log_history"].insert(evals[0] + 1, twice)  # another eval_loss at the same step
    path.write_text(json.dumps(state))
    with pytest.raises(DataError, match=r"'eval_loss' at step 100 is 9\.0.*two entries claim"):
        load(path, n_params=1e6)


def test_a_negative_loss_in_a_trainer_state_is_refused_with_its_entry(tmp_path):
    state = trainer_state()
    index = next(i for i, e in enumerate(state["log_history"]) if "eval_loss" in e)
    state["log_history"][index]["eval_loss"] = -3.0
    path = _write_state(tmp_path, state)
    with pytest.raises(DataError, match=rf"'log_history\[{index}\]\.eval_loss' is -3\.0 \(not"):
        load(path, n_params=1e6)
