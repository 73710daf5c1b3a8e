"""Finished sweeps as sources: saved weights, finding the usable runs, the job loop."""

import json

import pytest
import torch
from downstream_fixtures import SIZES, compose, pretrained_sweep
from safetensors.torch import load_file

from scaling import results
from scaling.data import DataSpec, prepare, val_batches
from scaling.sources import find_sources, run_job
from scaling.train import evaluate


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return pretrained_sweep(tmp_path_factory.getbasetemp() / "pretrained")


def test_saved_weights_load_back_into_the_trained_model(sweep):
    from transformers import AutoModelForCausalLM

    sources, skipped = find_sources(sweep)
    assert [s.summary["d_model"] for s in sources] == list(SIZES) and not skipped
    for src in sources:
        files = {p.name for p in src.model_dir.iterdir()}
        assert {"config.json", "model.safetensors"} <= files
        model = AutoModelForCausalLM.from_pretrained(src.model_dir, dtype=torch.float32)
        stored = load_file(src.model_dir / "model.safetensors")
        state = model.state_dict()
        assert set(stored) <= set(state)
        assert all(torch.equal(stored[k], state[k]) for k in stored)
        # the same numbers as at the end of training: its last evaluation, to the bit
        tc = src.config["train"]
        data = prepare(DataSpec.from_config(src.config["data"]))
        val = val_batches(data.val, tc["eval_batches"], tc["micro_batch"], 64, seed=0)
        val = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in val]
        loss = evaluate(model, val, torch.device("cpu"), "fp32")
        assert loss == pytest.approx(src.summary["final_val_loss"], abs=1e-6)


def test_save_model_is_not_part_of_a_runs_identity(tmp_path, capsys):
    from omegaconf import OmegaConf

    from scaling.main import run

    args = ("experiment=smoke", "model.d_model=16", "train.tokens=8192", f"results_dir={tmp_path}")
    plain = OmegaConf.to_container(compose(*args), resolve=True)
    keep = OmegaConf.to_container(compose(*args, "train.save_model=true"), resolve=True)
    assert results.run_id(plain) == results.run_id(keep)

    first = run(compose(*args))
    out = tmp_path / "smoke" / first["run_id"]
    assert not results.has_weights(out)
    # asking for the weights of a run finished without them retrains it, to the same numbers
    again = run(compose(*args, "train.save_model=true"))
    assert "retraining to save them" in capsys.readouterr().out
    assert results.has_weights(out)
    assert again["final_val_loss"] == first["final_val_loss"]
    # and once they are there, nothing more is done
    run(compose(*args, "train.save_model=true"))
    assert "already completed" in capsys.readouterr().out


def test_find_sources_says_why_runs_are_left_out(tmp_path):
    def record(name: str, status: str, weights: bool) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "config.yaml").write_text("seed: 0\n")
        results.write_summary(d, {"run_id": name, "status": status, "params_nonembed": 1})
        if weights:
            (d / "model").mkdir()
            (d / "model" / "config.json").write_text("{}")
            (d / "model" / "model.safetensors").write_bytes(b"")

    record("a", "completed", True)
    record("b", "completed", False)
    record("c", "failed", True)
    sources, skipped = find_sources(tmp_path)
    assert [s.run_id for s in sources] == ["a"]
    assert any(line.startswith("b:") and "train.save_model=true" in line for line in skipped)
    assert any(line.startswith("c:") and "failed" in line for line in skipped)


def test_a_job_without_usable_sources_fails_with_a_clear_message(tmp_path, capsys):
    cfg = {"source": str(tmp_path), "results_dir": str(tmp_path), "sweep": "x-finetune"}
    outcomes = run_job("finetune", cfg)
    assert [o[1] for o in outcomes] == ["failed"]
    assert "no completed run with saved weights" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown"):
        run_job("distill", cfg)


def test_source_fields_name_the_source_and_its_pretraining(sweep):
    src = find_sources(sweep)[0][0]
    fields = src.record_fields()
    assert fields["source"]["run_id"] == src.run_id
    assert fields["pretrain"]["final_val_loss"] == src.summary["final_val_loss"]
    assert fields["params_nonembed"] == src.summary["params_nonembed"]
    json.dumps(fields)  # goes into summary.json as it is


def test_source_budgets_last_keeps_one_model_per_trunk(tmp_path):
    """Of a WSD-S trunk with two budgets, ``last`` keeps the record with the most tokens
    and says why it left the other out; ``all`` keeps both; the trunk's own record is no
    model and is not reported as one without weights; a typo is refused."""
    from scaling.main import run

    args = (
        "experiment=smoke",
        "model.d_model=16",
        "optim.schedule=wsd_s",
        "train.tokens=null",
        "train.budgets=[4096,8192]",
        "train.save_model=true",
        f"results_dir={tmp_path}",
    )
    run(compose(*args))
    sweep = tmp_path / "smoke"
    every, _ = find_sources(sweep, "all")
    last, skipped = find_sources(sweep, "last")
    assert sorted(s.summary["tokens"] for s in every) == [4096, 8192]
    assert [s.summary["tokens"] for s in last] == [8192]
    assert len(skipped) == 1 and "not its last (source_budgets=last)" in skipped[0]
    with pytest.raises(ValueError, match="source_budgets='final': expected one of all, last"):
        find_sources(sweep, "final")
