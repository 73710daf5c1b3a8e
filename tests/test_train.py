"""The training loop: records, divergence, failure, budgets, and bit-for-bit resume."""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scaling import results
from scaling.families import param_counts, shape_for
from scaling.flops import flops_per_token
from scaling.train import train

# the fields DESIGN.md / docs/run-record.md promise in every summary
SUMMARY_FIELDS = """schema run_id sweep status family n_layers d_model n_heads d_ff vocab_size context
params_total params_nonembed params_matmul tokens flops flops_6nd final_val_loss best_val_loss
wall_s tokens_per_s mfu device versions git_sha corpus tokenizer seed optim launcher""".split()
METRIC_FIELDS = {"step", "tokens", "flops", "train_loss", "val_loss", "lr", "phase", "elapsed_s"}
TINY = ("experiment=smoke", "model.d_model=32")


def run_once(resolved, tmp_path, *overrides):
    cfg = resolved(*TINY, f"results_dir={tmp_path}", *overrides)
    out = results.run_dir(tmp_path, cfg["sweep"], results.run_id(cfg))
    return cfg, out


def test_short_run_writes_a_complete_record(resolved, tmp_path):
    cfg, out = run_once(resolved, tmp_path)
    summary = train(cfg, out)

    assert summary["status"] == "completed"
    assert set(SUMMARY_FIELDS) <= set(summary), set(SUMMARY_FIELDS) - set(summary)
    shape = shape_for("llama", 32, summary["vocab_size"], cfg["model"]["context"])
    counts = param_counts(shape)
    assert summary["params_total"] == counts["total"]
    assert summary["params_nonembed"] == counts["nonembed"]
    assert summary["tokens"] >= cfg["train"]["tokens"]
    assert summary["tokens"] == summary["step"] * summary["optim"]["batch_tokens"]
    assert summary["flops"] == pytest.approx(summary["tokens"] * flops_per_token(shape))
    assert summary["flops_6nd"] == pytest.approx(6 * counts["nonembed"] * summary["tokens"])
    assert summary["corpus"]["name"] == "stdlib" and len(summary["corpus"]["fingerprint"]) >= 12

    rows = results.read_metrics(out)
    assert len(rows) == cfg["train"]["n_evals"]
    assert all(set(r) == METRIC_FIELDS for r in rows)
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert rows[-1]["val_loss"] == summary["final_val_loss"]
    assert summary["best_val_loss"] == min(r["val_loss"] for r in rows)
    # it learned something: far below the loss of a uniform guess over the vocabulary
    assert rows[-1]["val_loss"] < math.log(summary["vocab_size"]) - 1.5

    # the stored config is the run's identity; the checkpoint is gone once complete
    assert results.run_id(yaml.safe_load((out / "config.yaml").read_text())) == out.name
    assert not (out / "checkpoint.pt").exists()


def test_bf16_autocast_trains_on_cpu(resolved, tmp_path):
    cfg, out = run_once(resolved, tmp_path, "train.dtype=bf16", "train.tokens=16384")
    summary = train(cfg, out)
    assert summary["dtype"] == "bf16" and summary["status"] == "completed"
    assert summary["final_val_loss"] < math.log(summary["vocab_size"])


def test_nan_loss_ends_the_run_as_diverged(resolved, tmp_path):
    # an absurd learning rate with clipping off blows the weights up within a few steps
    cfg, out = run_once(resolved, tmp_path, "optim.lr=1e5", "optim.grad_clip=1e30")
    summary = train(cfg, out)
    assert summary["status"] == "diverged"
    assert "loss" in summary["error"]
    assert summary["step"] < 64
    assert results.read_summary(out)["status"] == "diverged"


def test_exception_ends_the_run_as_failed_with_traceback(resolved, tmp_path):
    cfg, out = run_once(resolved, tmp_path, "model.n_heads=7")  # 32 wide, 7 heads: impossible
    with pytest.raises(ValueError, match="n_heads"):
        train(cfg, out)
    assert results.read_summary(out)["status"] == "failed"
    tb = (out / "error.txt").read_text()
    assert "Traceback" in tb and "shape_for" in tb


# ---------------------------------------------------------------------------------------
# Resume: a run killed mid-way and restarted ends exactly where an uninterrupted one does

RESUME = [*TINY, "train.tokens=327680", "train.ckpt_every=40", "train.threads=1"]


def launch(results_dir, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "scaling.main", *RESUME, f"results_dir={results_dir}", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def only_run(results_dir) -> Path:
    (run,) = [d for d in (Path(results_dir) / "smoke").iterdir() if not d.name.startswith(".")]
    return run


def comparable(run: Path) -> list[dict]:
    # wall-clock time differs between any two runs; everything else must not
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in results.read_metrics(run)]


def wait_for(predicate, proc, timeout=120):
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref")
    proc = launch(ref)
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()
    return only_run(ref)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_bit_for_bit(reference_run, tmp_path, how):
    proc = launch(tmp_path)
    # wait until it is past its first periodic checkpoint, then stop it mid-way
    wait_for(lambda: len(list(tmp_path.glob("smoke/*/checkpoint.pt"))) > 0, proc)
    wait_for(lambda: len(results.read_metrics(only_run(tmp_path))) >= 5, proc)
    proc.send_signal(getattr(signal, how))
    code = proc.wait(timeout=60)
    run = only_run(tmp_path)
    summary = results.read_summary(run)
    n_steps = json.loads((reference_run / "summary.json").read_text())["steps_total"]
    assert summary["step"] < n_steps, "stopped too late to test resuming"
    if how == "SIGTERM":
        # a polite stop checkpoints at once and says so
        assert code != 0 and summary["status"] == "interrupted"
    else:
        assert code == -signal.SIGKILL and summary["status"] == "running"

    proc = launch(tmp_path)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    assert "resuming from step" in output
    assert comparable(run) == comparable(reference_run)
    final, ref = results.read_summary(run), results.read_summary(reference_run)
    assert final["status"] == "completed"
    assert final["final_val_loss"] == ref["final_val_loss"]  # bit for bit, not approx


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_two_runs_on_a_gpu_write_identical_records(reference_run, tmp_path):
    # on a CPU the resume tests above imply it; on a GPU a kernel that adds with atomics
    # would make two runs differ, and a resumed run could not match its reference
    proc = launch(tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()
    assert results.read_summary(reference_run)["device"].startswith("NVIDIA")
    assert comparable(only_run(tmp_path)) == comparable(reference_run)


@contextlib.contextmanager
def usr2_after_evaluations(monkeypatch, n: int):
    """SIGUSR2 (SLURM's warning) while the ``n``-th evaluation runs, to a handler that
    returns as submitit's requeue does; the run must then stop ``Interrupted``. Later
    evaluations (a resumed run's) are left alone."""
    import scaling.train as train_module
    from scaling.stop import Interrupted

    real, calls = train_module.evaluate, []

    def evaluate_then_signal(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGUSR2)
        return loss

    monkeypatch.setattr(train_module, "evaluate", evaluate_then_signal)
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: None)
    try:
        with pytest.raises(Interrupted):
            yield
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_a_run_stopped_after_its_last_evaluation_resumes_to_its_loss(resolved, tmp_path, monkeypatch):
    # a requeue signal that lands during the last evaluation checkpoints at the last step;
    # the relaunch has no step left to take and must still record the loss it reached
    ref_cfg, ref_out = run_once(resolved, tmp_path / "ref")
    reference = train(ref_cfg, ref_out)

    cfg, out = run_once(resolved, tmp_path / "cut")
    with usr2_after_evaluations(monkeypatch, len(results.read_metrics(ref_out))):
        train(cfg, out)
    assert results.read_summary(out)["status"] == "interrupted"
    assert results.read_summary(out)["step"] == reference["step"]

    final = train(cfg, out)
    assert final["status"] == "completed"
    assert final["final_val_loss"] == reference["final_val_loss"]
    assert results.read_summary(out)["final_val_loss"] == reference["final_val_loss"]
    assert comparable(out) == comparable(ref_out)
    # the speed measured before the stop is kept, not lost to a process that took no step
    assert final["tokens_per_s"] > 0 and final["mfu"] > 0


@pytest.mark.slow
def test_torch_compile_trains_to_the_same_loss_as_eager(resolved, tmp_path, monkeypatch):
    # inductor writes its cache to one shared temp folder unless told otherwise
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    short = ("train.tokens=16384", "train.threads=2")
    eager_cfg, eager_out = run_once(resolved, tmp_path / "eager", *short)
    compiled_cfg, compiled_out = run_once(
        resolved, tmp_path / "compiled", *short, "train.compile=true"
    )
    eager, compiled = train(eager_cfg, eager_out), train(compiled_cfg, compiled_out)
    assert compiled["status"] == "completed"
    # the same computation, fused differently: equal up to float rounding
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)


# ---------------------------------------------------------------------------------------
# Several budgets from one run (scaling/budgets.py): records, equivalences, extension

WSD = ("optim.decay_frac=0.2", "optim.warmup_steps=4", "train.tokens=null")
B3 = "train.budgets=[16384,32768,65536]"  # 16, 32 and 64 steps of 1024 tokens


def budget_records(results_dir, cfg):
    """The trunk's record and its budgets' records, by index."""
    from scaling import budgets

    ids = budgets.record_ids(cfg)
    trunk = results.read_summary(results.run_dir(results_dir, "smoke", results.run_id(cfg)))
    return trunk, [results.run_dir(results_dir, "smoke", rid) for rid in ids]


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_each_budget_is_a_record_of_its_own(resolved, tmp_path, schedule):
    cfg, out = run_once(resolved, tmp_path, *WSD, B3, f"optim.schedule={schedule}")
    train(cfg, out)
    trunk, dirs = budget_records(tmp_path, cfg)
    assert trunk["role"] == "trunk" and trunk["status"] == "completed"
    # the cost: the largest budget, plus the earlier budgets' cooldowns (forks at 13 and
    # 26 of 16 and 32 steps) for wsd
    cooldowns = 3 + 6 if schedule == "wsd" else 0
    assert trunk["steps_trained"] == 64 + cooldowns
    for k, (d, steps) in enumerate(zip(dirs, (16, 32, 64), strict=True)):
        s, rows = results.read_summary(d), results.read_metrics(d)
        assert s["status"] == "completed" and s["schedule"] == schedule
        assert (s["trunk_id"], s["budget_index"]) == (out.name, k)
        assert s["tokens"] == steps * 1024 and s["step"] == steps
        assert s["flops"] == pytest.approx(s["tokens"] * s["flops_per_token"])
        # its curve ends decayed at its own budget, at the end of its decay window
        assert rows[-1]["step"] == steps and rows[-1]["phase"] == "decay"
        assert s["final_val_loss"] == rows[-1]["val_loss"]
        assert s["decay"]["end_step"] == steps
        period = steps - (steps // 2 if k and schedule == "wsd_s" else 0)
        assert s["decay"]["start_step"] == steps - round(0.2 * period)
        # the record's config is its identity, as for every run
        assert results.run_id(yaml.safe_load((d / "config.yaml").read_text())) == d.name
    # a forked cooldown's curve is the trunk up to its fork, then its own decay only
    if schedule == "wsd":
        rows = results.read_metrics(dirs[1])
        assert {r["phase"] for r in rows if r["step"] <= 26} <= {"warmup", "stable"}
        assert all(r["phase"] == "decay" for r in rows if r["step"] > 26)


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_a_budget_matches_a_one_budget_wsd_run_to_it(resolved, tmp_path, schedule):
    # wsd: every cooldown forks from a trunk that never decayed, so budget k is exactly a
    # plain WSD run to that budget; wsd_s: only the first budget is
    cfg, out = run_once(resolved, tmp_path / "trunk", *WSD, B3, f"optim.schedule={schedule}")
    train(cfg, out)
    _, dirs = budget_records(tmp_path / "trunk", cfg)
    k = 2 if schedule == "wsd" else 0
    tokens = (16384, 32768, 65536)[k]
    one_cfg, one_out = run_once(
        resolved, tmp_path / "one", *WSD, f"train.tokens={tokens}", "optim.schedule=wsd"
    )
    one = train(one_cfg, one_out)
    assert one["decay"] == results.read_summary(dirs[k])["decay"]
    assert one["final_val_loss"] == results.read_summary(dirs[k])["final_val_loss"]  # bitwise


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_asking_for_a_larger_budget_continues_the_trunk(resolved, tmp_path, schedule):
    two = "train.budgets=[16384,32768]"
    cfg2, out = run_once(resolved, tmp_path / "ext", *WSD, two, f"optim.schedule={schedule}")
    train(cfg2, out)
    first = budget_records(tmp_path / "ext", cfg2)[0]["steps_trained"]
    cfg3, out3 = run_once(resolved, tmp_path / "ext", *WSD, B3, f"optim.schedule={schedule}")
    assert out3 == out  # the same trunk
    train(cfg3, out3)
    trunk, dirs = budget_records(tmp_path / "ext", cfg3)
    # only the new budget was trained: from the trunk's stable state, not from scratch
    new = trunk["steps_trained"] - first
    assert new == (64 - 26 if schedule == "wsd" else 64 - 32)

    ref_cfg, ref_out = run_once(resolved, tmp_path / "ref", *WSD, B3, f"optim.schedule={schedule}")
    train(ref_cfg, ref_out)
    _, ref_dirs = budget_records(tmp_path / "ref", ref_cfg)
    for d, r in zip(dirs, ref_dirs, strict=True):
        assert d.name == r.name
        assert comparable(d) == comparable(r)


def test_budgets_with_a_cosine_schedule_are_refused(resolved, tmp_path):
    cfg, out = run_once(resolved, tmp_path, *WSD, B3, "optim.schedule=cosine")
    with pytest.raises(ValueError, match="one budget per run"):
        train(cfg, out)


def test_compute_budget_sets_the_tokens(resolved, tmp_path):
    cfg, out = run_once(resolved, tmp_path, "train.tokens=null", "train.flops=2e10")
    s = train(cfg, out)
    assert s["flops_target"] == 2e10
    # whole steps, within half a step of the asked compute
    per_step = s["optim"]["batch_tokens"] * s["flops_per_token"]
    assert abs(s["flops"] - 2e10) <= per_step / 2
    assert s["tokens"] == s["step"] * s["optim"]["batch_tokens"]


def test_too_few_steps_is_skipped_with_a_message(tmp_path):
    args = [*RESUME[:2], "train.tokens=null", "train.flops=1e9", "train.min_steps=50"]
    out = subprocess.run(
        [sys.executable, "-m", "scaling.main", *args, f"results_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "under train.min_steps=50: skipped" in out.stdout
    # no record: only a note saying why, for `status`, beside Hydra's own log folder
    dirs = [p for p in (tmp_path / "smoke").iterdir() if p.name != ".hydra"]
    assert len(dirs) == 1 and [p.name for p in dirs[0].iterdir()] == ["skipped.txt"]
    assert "min_steps" in (dirs[0] / "skipped.txt").read_text()


# Resume through every phase: a forked-WSD trunk of three budgets (64, 128, 256 steps:
# forks at 51, 102, 205) killed in the stable trunk, inside a cooldown, and just after a
# budget's record, then relaunched, must write the same records as an uninterrupted one

FORKED = [
    *TINY, "optim.schedule=wsd", *WSD, "train.budgets=[65536,131072,262144]",
    "train.ckpt_every=10", "train.threads=1", "train.n_evals=64",
]


def launch_forked(results_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "scaling.main", *FORKED, f"results_dir={results_dir}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def all_records(results_dir) -> dict[str, list[dict]]:
    runs = [d for d in (Path(results_dir) / "smoke").iterdir() if not d.name.startswith(".")]
    return {d.name: comparable(d) for d in runs if results.read_summary(d)}


def checkpoint_segment(results_dir) -> tuple[str, int] | None:
    import torch

    for ckpt in Path(results_dir).glob("smoke/*/checkpoint.pt"):
        with contextlib.suppress(Exception):  # being replaced at this instant
            state = torch.load(ckpt, weights_only=False)
            return state["segment"], state["step"]
    return None


@pytest.fixture(scope="module")
def forked_reference(tmp_path_factory):
    ref = tmp_path_factory.mktemp("forked")
    proc = launch_forked(ref)
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()
    return all_records(ref)


def _in_trunk(d):
    seg = checkpoint_segment(d)
    return seg is not None and seg[0].startswith("trunk") and seg[1] >= 20


def _in_cooldown(d):
    seg = checkpoint_segment(d)
    return seg is not None and seg[0] == "branch:128"


def _after_budget(d):
    return any(
        (s := results.read_summary(p)) and s.get("budget_index") == 1
        for p in (Path(d) / "smoke").iterdir()
        if p.is_dir() and not p.name.startswith(".")
    )


@pytest.mark.parametrize("where", [_in_trunk, _in_cooldown, _after_budget])
def test_a_trunk_killed_in_any_phase_resumes_bit_for_bit(forked_reference, tmp_path, where):
    proc = launch_forked(tmp_path)
    wait_for(lambda: (tmp_path / "smoke").is_dir() and where(tmp_path), proc, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert len(all_records(tmp_path)) < len(forked_reference), "killed too late"

    proc = launch_forked(tmp_path)
    output = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, output
    assert all_records(tmp_path) == forked_reference


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_a_trunk_stopped_as_a_budget_ends_writes_the_same_records(
    resolved, tmp_path, monkeypatch, schedule
):
    # the signal lands during the evaluation that ends the first budget, before its record
    # is written: the relaunch resumes at that step, writes it, and trains the rest
    args = (f"optim.schedule={schedule}", *WSD, B3)
    ref_cfg, _ = run_once(resolved, tmp_path / "ref", *args)
    train(ref_cfg, results.run_dir(tmp_path / "ref", "smoke", results.run_id(ref_cfg)))
    _, ref_records = budget_records(tmp_path / "ref", ref_cfg)
    evals_to_first = len(results.read_metrics(ref_records[0]))

    cfg, out = run_once(resolved, tmp_path / "cut", *args)
    with usr2_after_evaluations(monkeypatch, evals_to_first):
        train(cfg, out)
    _, records = budget_records(tmp_path / "cut", cfg)
    assert results.read_summary(records[0]) is None  # stopped before its record

    assert train(cfg, out)["status"] == "completed"
    assert all_records(tmp_path / "cut") == all_records(tmp_path / "ref")
    for got, ref in zip(records, ref_records, strict=True):
        a, b = results.read_summary(got), results.read_summary(ref)
        assert a["status"] == "completed" and a["final_val_loss"] == b["final_val_loss"]


# ---------------------------------------------------------------------------------------
# Checkpoints: loaded with weights_only=True, and never left half-written


def test_a_checkpoint_loads_weights_only_and_resumes_to_the_same_loss(resolved, tmp_path):
    import torch

    cfg, out = run_once(resolved, tmp_path, "train.keep_checkpoint=true")
    first = train(cfg, out)
    # tensors, numbers, strings and containers only: the safe unpickler takes it whole
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 0 < state["step"] < first["step"]
    # train again: it resumes from that checkpoint and must land on the same numbers
    again = train(cfg, out)
    assert again["step"] == first["step"]
    assert again["final_val_loss"] == first["final_val_loss"]


class _RunsCode:
    def __reduce__(self):
        return (open, ("pwned", "w"))


def test_a_checkpoint_holding_an_object_is_refused(tmp_path, monkeypatch):
    import pickle

    import torch

    from scaling.train import _load

    monkeypatch.chdir(tmp_path)
    torch.save({"step": 1, "x": _RunsCode()}, tmp_path / "checkpoint.pt")
    with pytest.raises(pickle.UnpicklingError):
        _load(tmp_path / "checkpoint.pt", torch.device("cpu"))
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_write_that_fails_leaves_no_temp_file(resolved, tmp_path, monkeypatch):
    import torch

    def disk_full(state, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    cfg, out = run_once(resolved, tmp_path)
    with pytest.raises(OSError, match="No space left"):
        train(cfg, out)
    assert results.read_summary(out)["status"] == "failed"  # a failure while training
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
