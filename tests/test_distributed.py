"""Data parallelism: two CPU processes (gloo) train the same run as one process does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling import results

RUN = [
    "experiment=smoke",
    "model.d_model=32",
    "train.tokens=32768",
    "optim.batch_tokens=2048",  # two micro-batches a step: one for each process
    "train.threads=1",
]


def launch(results_dir: Path, nproc: int) -> subprocess.CompletedProcess:
    main = ["-m", "scaling.main", *RUN, f"results_dir={results_dir}"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc_per_node={nproc}", *main]
    else:
        cmd = [sys.executable, *main]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def only_run(results_dir: Path) -> Path:
    (run,) = [d for d in (results_dir / "smoke").iterdir() if not d.name.startswith(".")]
    return run


@pytest.mark.slow
def test_two_processes_train_the_same_run_as_one(tmp_path):
    single, ddp = launch(tmp_path / "one", 1), launch(tmp_path / "two", 2)
    assert single.returncode == 0, single.stderr[-3000:]
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    one, two = only_run(tmp_path / "one"), only_run(tmp_path / "two")
    assert one.name == two.name  # the number of processes is not part of the run's identity
    s1, s2 = results.read_summary(one), results.read_summary(two)
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    assert s2["status"] == "completed" and s2["step"] == s1["step"]
    # the same batches, gradients averaged by all-reduce instead of summed in one process:
    # equal up to float rounding, step after step
    m1, m2 = results.read_metrics(one), results.read_metrics(two)
    assert [r["step"] for r in m1] == [r["step"] for r in m2]
    for a, b in zip(m1, m2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    # only rank 0 wrote the record: one progress line per evaluation, not two
    assert ddp.stdout.count(f"step {s2['step']}/{s2['step']}") == 1
