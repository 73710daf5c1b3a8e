"""TensorBoard event files: one run per directory, each with its own parameter count."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.io import DataError, DataWarning, OptionalDependencyError, load, load_tensorboard

pytest.importorskip("tensorboard")

# --------------------------------------------------------------------------------------
# TensorBoard


def write_tensorboard(root: Path) -> None:
    """Run "a" in the current tensor form, run "b" in the older simple_value form."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary import Writer
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = Writer(str(root / "a"))
    for step in (10, 20, 30):
        writer.add_scalar("eval/loss", 5.0 - step / 10, step=step)
        writer.add_scalar("train/loss", 5.5 - step / 10, step=step)
        writer.add_scalar("train/num_input_tokens_seen", step * 2048, step=step)
    writer.close()
    legacy = EventFileWriter(str(root / "b"))
    for step in (10, 20):
        value = Summary.Value(tag="val_loss", simple_value=4.0 - step / 10)
        legacy.add_event(Event(step=step, wall_time=time.time(), summary=Summary(value=[value])))
    legacy.close()


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    write_tensorboard(tmp_path)
    df = load(tmp_path, kind="curves", n_params=1e5, tokens_per_step=100)
    a, b = df[df["run"] == "a"], df[df["run"] == "b"]
    assert list(a["step"]) == [10, 20, 30]
    assert np.allclose(a["loss"], [4.0, 3.0, 2.0])
    assert np.allclose(a["train_loss"], [4.5, 3.5, 2.5])
    assert list(a["tokens"]) == [20480, 40960, 61440]  # from the tag
    assert np.allclose(b["loss"], [3.0, 2.0])
    assert list(b["tokens"]) == [1000, 2000]  # from tokens_per_step
    assert np.allclose(df["flops"], 6 * 1e5 * df["tokens"])
    runs = load(tmp_path, n_params=1e5, tokens_per_step=100)
    assert sorted(runs["run"]) == ["a", "b"] and len(runs) == 2


def test_tensorboard_missing_loss_tag_lists_tags(tmp_path):
    pytest.importorskip("tensorboard")
    write_tensorboard(tmp_path)
    with pytest.raises(DataError, match=r"no tag 'loss/eval'.*eval/loss"):
        load_tensorboard(tmp_path / "a", loss_col="loss/eval")


def test_tensorboard_missing_package_says_how_to_install(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith("tensorboard."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'scaling-lab\[tensorboard\]'"):
        load(tmp_path)


# --------------------------------------------------------------------------------------
# Several runs, each with its own size

SIZES = {"n1": 1e5, "n2": 3e5, "n3": 1e6, "n4": 3e6, "n5": 1e7, "n6": 3e7}


def final_loss(params: float) -> float:
    return 2.0 + 50.0 * params**-0.3


def write_sized_runs(root: Path) -> Path:
    """Six runs whose final eval/loss is L(N) = 2 + 50 N^-0.3. Their sizes are logged
    three ways: n1, n2 in the hparams plugin (hparams_pb, as tensorboard's own API writes
    it), n3, n4 as a scalar tag 'params', n5, n6 as PyTorch's add_hparams does (in a
    subdirectory <run>/<timestamp>/ of the run)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary import Writer
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir = root / "tb"
    for index, (run, size) in enumerate(SIZES.items()):
        writer = Writer(str(logdir / run))
        for step in (10, 20, 30):
            loss = final_loss(size) + (30 - step) / 100
            writer.add_scalar("eval/loss", loss, step=step)
            writer.add_scalar("train/num_input_tokens_seen", step * 1000, step=step)
        if index in (2, 3):
            writer.add_scalar("params", size, step=0)
        writer.close()
        if index in (0, 1, 4, 5):
            folder = logdir / run if index < 2 else logdir / run / "1712345678.9"
            events = EventFileWriter(str(folder))
            summary = hp.hparams_pb({"params": size, "lr": 1e-3, "act": "silu"})
            events.add_event(Event(step=0, wall_time=time.time(), summary=summary))
            events.close()
    return logdir


def test_each_run_takes_its_count_from_hparams_or_a_scalar_tag(tmp_path):
    logdir = write_sized_runs(tmp_path)
    runs = load(logdir)
    assert sorted(runs["run"]) == sorted(SIZES)  # the add_hparams folders are no runs
    for row in runs.itertuples():
        assert row.params == SIZES[row.run]
        assert row.loss == pytest.approx(final_loss(SIZES[row.run]))
        assert row.tokens == 30000
        assert row.flops == pytest.approx(6 * SIZES[row.run] * 30000)


def test_a_mapping_file_or_one_count_overrides_what_the_runs_log(tmp_path):
    logdir = write_sized_runs(tmp_path)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("run,n\n" + "".join(f"{run},{i + 1}\n" for i, run in enumerate(SIZES)))
    mapped = load(logdir, params_map=sizes, params_col="n").set_index("run")
    assert list(mapped.loc[list(SIZES), "params"]) == [1, 2, 3, 4, 5, 6]
    assert set(load(logdir, n_params=7.0)["params"]) == {7.0}
    sizes.write_text("run,params\nn1,5\n")
    with pytest.raises(DataError, match=r"sizes.csv: no line for run 'n2' of .*tb"):
        load(logdir, params_map=sizes)
    with pytest.raises(DataError, match=r"run 'n1' has no hparam or scalar tag 'width'"):
        load(logdir, params_col="width")


def test_cli_fits_a_tensorboard_directory_of_several_sizes(tmp_path, capsys):
    logdir = write_sized_runs(tmp_path)
    args = ["fit", str(logdir), "--law", "saturating", "--x", "params", "--bootstrap", "0"]
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(SIZES)  # one point per run, each at its own size
    assert result["params"]["E"] == pytest.approx(2.0, rel=1e-3)
    assert result["params"]["alpha"] == pytest.approx(0.3, rel=1e-3)
    code = main([*args, "--curves", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["n"] == 3 * len(SIZES)


def test_steps_logged_again_are_named_and_an_infinite_loss_is_refused(tmp_path):
    from tensorboard.summary import Writer

    write_tensorboard(tmp_path)
    again = Writer(str(tmp_path / "a"))  # a restart writes a second file into the run's dir
    again.add_scalar("eval/loss", 1.5, step=30)
    again.close()
    with pytest.warns(DataWarning, match=r"steps logged again.*later values kept: a \(1 step"):
        df = load(tmp_path, kind="curves", n_params=1e5)
    assert df.loc[(df["run"] == "a") & (df["step"] == 30), "loss"].item() == 1.5
    bad = Writer(str(tmp_path / "c"))
    bad.add_scalar("eval/loss", float("inf"), step=10)
    bad.close()
    with pytest.raises(DataError, match=r"run 'c', step 10: column 'loss' is inf \(infinite\)"):
        load(tmp_path, kind="curves", n_params=1e5)
