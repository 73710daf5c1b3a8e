"""scaling/trackers.py: TensorBoard, W&B (offline) and MLflow (file store) get what
metrics.jsonl gets, read back through the analysis importers, and continue one tracker
run across a kill and a resume."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from scaling import checks, results, trackers
from scaling.train import train

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

import analysis.io  # noqa: E402
from analysis.fit import fit_frame  # noqa: E402
from analysis.io.wandb_offline import find_run_files, read_run_file  # noqa: E402

ALL = "train.loggers=[tensorboard,wandb,mlflow]"
TINY = ("experiment=smoke", "train.threads=1", "train.tokens=32768")
# what differs between any two launches of one run: wall-clock time and throughput
TIMED = {"elapsed_s", "tokens_per_s", "mfu"}


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    # W&B writes run files locally and never reaches a server or reads a login
    for var, sub in (
        ("WANDB_DIR", "wb"),
        ("WANDB_CONFIG_DIR", "wbc"),
        ("WANDB_CACHE_DIR", "wbk"),
        ("WANDB_DATA_DIR", "wbd"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def mlflow_runs(store: Path, sweep: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name(sweep)
    return client, client.search_runs([experiment.experiment_id])


def steps_of(history) -> list[int]:
    return [m.step for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


# ----------------------------------------------------------------------------------------
# config


def test_no_logger_by_default_and_the_keys_change_no_run_id(resolved, tmp_path):
    cfg = resolved(*TINY, f"results_dir={tmp_path}")
    assert cfg["train"]["loggers"] == []
    # the id a config had before these keys existed
    before = {
        **cfg,
        "train": {
            k: v
            for k, v in cfg["train"].items()
            if k not in ("loggers", "tracker_dir", "wandb_project", "mlflow_uri")
        },
    }
    logged = resolved(*TINY, f"results_dir={tmp_path}", ALL, "train.mlflow_uri=file:/x")
    assert results.run_id(cfg) == results.run_id(before) == results.run_id(logged)


def test_an_unknown_logger_is_refused_in_one_line(resolved, tmp_path):
    cfg = resolved(*TINY, f"results_dir={tmp_path}", "train.loggers=[neptune]")
    with pytest.raises(checks.ConfigError) as err:
        checks.check_config(cfg)
    assert err.value.key == "train.loggers"
    assert "'neptune'" in str(err.value) and "\n" not in str(err.value)


def test_a_missing_package_names_its_extra(resolved, tmp_path, monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(
        trackers.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name)
    )
    cfg = resolved(*TINY, f"results_dir={tmp_path}", "train.loggers=[tensorboard,mlflow]")
    with pytest.raises(checks.ConfigError, match=r"pip install 'scaling-lab\[mlflow\]'$"):
        checks.check_config(cfg)
    assert not (tmp_path / "smoke").exists()


def test_a_step_is_sent_once_and_in_order():
    class Seen:
        last_step = 20  # what a tracker already holds after a kill

        def __init__(self):
            self.got = []

        def log(self, step, scalars):
            self.got.append((step, dict(scalars)))

        def close(self, status):
            self.got.append(status)

    seen = Seen()
    group = trackers.Trackers([seen])
    for step in (10, 20, 30, 30, 40):
        group.log({"step": step, "val_loss": 1.0, "phase": "cosine", "mfu": None})
    group.close("interrupted")
    group.close("completed")  # once only
    assert seen.got == [(30, {"val_loss": 1.0}), (40, {"val_loss": 1.0}), "interrupted"]


# ----------------------------------------------------------------------------------------
# round trip: four sizes logged to every tracker, read back, fitted as the records are


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    root = tmp_path_factory.mktemp("sweep")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}
    env.update(
        {
            v: str(root / v.lower())
            for v in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
        }
    )
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for d in (16, 24, 32, 48):
            with initialize_config_module("sweeps", version_base="1.3"):
                node = compose(
                    "config", overrides=[*TINY, f"model.d_model={d}", f"results_dir={root}", ALL]
                )
            cfg = OmegaConf.to_container(node, resolve=True)
            train(cfg, results.run_dir(root, cfg["sweep"], results.run_id(cfg)))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return root / "smoke"


def test_tensorboard_and_wandb_give_the_records_fit(sweep):
    records = analysis.io.load(sweep)
    assert len(records) == 4
    ref = fit_frame(records, "power")
    for where in (sweep / "trackers" / "tensorboard", sweep / "trackers" / "wandb"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no run left out, no step logged twice
            logged = analysis.io.load(where)
        assert sorted(logged["params"]) == sorted(records["params"])
        got = fit_frame(logged, "power")
        for name, value in ref.params.items():
            # TensorBoard keeps scalars in float32
            assert got.params[name] == pytest.approx(value, rel=1e-5), (where.name, name)


def test_each_tracker_holds_every_row_at_its_step(sweep):
    runs = {d.name: results.read_metrics(d) for d, _ in results.iter_runs(sweep)}
    curves = analysis.io.load(sweep / "trackers" / "tensorboard", kind="curves")
    client, found = mlflow_runs(sweep / "trackers" / "mlflow", "smoke")
    assert sorted(r.info.run_name for r in found) == sorted(runs)
    wb = {read_run_file(f)["name"]: read_run_file(f) for f in find_run_files(sweep / "trackers")}
    assert sorted(wb) == sorted(runs)
    for rid, rows in runs.items():
        steps = [r["step"] for r in rows]
        tb = curves[curves["run"] == rid]
        assert list(tb["step"]) == steps
        assert list(tb["loss"]) == pytest.approx([r["val_loss"] for r in rows], rel=1e-6)
        history = wb[rid]["history"]
        assert [h["_step"] for h in history] == steps
        for h, r in zip(history, rows, strict=True):
            assert {k: h[k] for k in r if k not in ("step", "phase")} == {
                k: v for k, v in r.items() if k not in ("step", "phase")
            }
        assert "tokens_per_s" in history[-1] and "mfu" in history[-1]
        summary = json.loads((sweep / rid / "summary.json").read_text())
        assert wb[rid]["config"]["params"] == summary["params_nonembed"]
        assert wb[rid]["config"]["model.d_model"] == summary["d_model"]
        assert wb[rid]["exit_code"] == 0
        (run,) = [r for r in found if r.info.run_name == rid]
        assert run.info.status == "FINISHED"
        assert run.data.params["params_total"] == str(summary["params_total"])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert steps_of(history) == steps
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
            r["val_loss"] for r in rows
        ]


# ----------------------------------------------------------------------------------------
# a run killed mid-way and resumed leaves one tracker run, as an uninterrupted run's

RESUME = [*TINY, "train.tokens=163840", "train.ckpt_every=40", ALL]


def launch(results_dir):
    # a process that used W&B exports its service's address: a child would share it,
    # and with it the run a killed child left open there
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "scaling.main", *RESUME, f"results_dir={results_dir}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run_dir(results_dir: Path) -> Path:
    (run,) = [d for d, _ in results.iter_runs(results_dir / "smoke")]
    return run


def logged(results_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, val_loss) of every point each tracker holds, in the order it was written."""
    trackers_dir = results_dir / "smoke" / "trackers"
    rid = run_dir(results_dir).name
    tb = analysis.io.load(trackers_dir / "tensorboard" / rid, kind="curves")
    # offline, each launch writes its own piece of the one W&B run: in time order
    # (W&B buffers its writes: a piece a kill cut short may hold nothing but a header)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces = [read_run_file(f) for f in find_run_files(trackers_dir / "wandb")]
    pieces = [p for p in pieces if p["id"] is not None or p["history"]]
    assert {p["id"] for p in pieces} == {trackers.wandb_id("smoke", rid)}
    wb = [(h["_step"], h["val_loss"]) for p in pieces for h in p["history"]]
    client, found = mlflow_runs(trackers_dir / "mlflow", "smoke")
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    history = client.get_metric_history(found[0].info.run_id, "val_loss")
    ml = [(m.step, m.value) for m in sorted(history, key=lambda m: m.timestamp)]
    return {
        "tensorboard": list(zip(tb["step"], tb["loss"], strict=True)),
        "wandb": wb,
        "mlflow": ml,
    }


@pytest.mark.slow
def test_a_killed_and_resumed_run_is_one_tracker_run(tmp_path):
    ref = tmp_path / "ref"
    proc = launch(ref)
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()

    cut = tmp_path / "cut"
    proc = launch(cut)
    t0 = time.time()
    while not (
        list(cut.glob("smoke/*/checkpoint.pt")) and len(results.read_metrics(run_dir(cut))) >= 5
    ):
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() - t0 < 120, "timed out"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert results.read_summary(run_dir(cut))["step"] < 160, "stopped too late to test resuming"
    proc = launch(cut)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0 and "resuming from step" in output, output

    want = [(r["step"], r["val_loss"]) for r in results.read_metrics(run_dir(ref))]
    for name, points in logged(cut).items():
        steps = [s for s, _ in points]
        assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), (name, steps)
        assert steps == [s for s, _ in want], name
        assert [v for _, v in points] == pytest.approx([v for _, v in want], rel=1e-6), name
    assert logged(ref)["wandb"] == logged(cut)["wandb"]
