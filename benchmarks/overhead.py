"""Overheads a user pays before and around training, each against its floor.

  first_step_s      process start -> first optimiser step done, for a one-step smoke
                    run (measured as the whole process, evaluation and exit included:
                    an upper bound)
  import_floor_s    `import torch, transformers` + building the same model, in a fresh
                    process: what any training script pays
  relaunch_100_s    relaunching a finished 100-run sweep (nothing may be retrained)
  import_analysis_s `import analysis` and every module a fit needs (io, laws, fit,
                    optimal, backtest) in a fresh process; torch must not be loaded
  import_plots_s    `import analysis.plots`, against its floor `import seaborn`
                    (reported, no goal: plotting pays for matplotlib)

    python benchmarks/overhead.py        # about a minute

Medians over a few repeats; ends with one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SMOKE = ["experiment=smoke", "model.d_model=16", "train.max_steps=1", "train.eval_batches=1"]


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return elapsed, out


def first_step(workdir: Path, i: int) -> float:
    results_dir = workdir / f"first-{i}"  # a new directory: the run must really train
    return timed([str(BIN / "scaling-train"), *SMOKE, f"results_dir={results_dir}"])[0]


FLOOR = """
import torch, transformers
from scaling.families import build_model, shape_for
build_model(shape_for("llama", 16, 257, 64), seed=0)
"""


def import_floor() -> float:
    return timed([sys.executable, "-c", FLOOR])[0]


ANALYSIS = "analysis, analysis.io, analysis.laws, analysis.fit, analysis.optimal, analysis.backtest"


def import_time(modules: str) -> float:
    """Seconds to import `modules` in a fresh process, which must not load torch."""
    code = (
        f"import sys, time; t = time.perf_counter(); import {modules}; "
        "dt = time.perf_counter() - t; assert 'torch' not in sys.modules; print(dt)"
    )
    return float(timed([sys.executable, "-c", code])[1].stdout)


def finished_sweep(workdir: Path, n: int) -> list[str]:
    """Records of a finished n-run sweep, written where `scaling-train` will look for them."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from scaling import results

    overrides = ["experiment=smoke", "model.d_model=16", f"results_dir={workdir}"]
    with initialize_config_module("sweeps", version_base="1.3"):
        for seed in range(n):
            cfg = compose("config", overrides=[*overrides, f"seed={seed}"])
            cfg = OmegaConf.to_container(cfg, resolve=True)
            out = results.run_dir(workdir, "smoke", results.run_id(cfg))
            results.write_summary(
                out,
                {
                    "run_id": out.name,
                    "sweep": "smoke",
                    "status": "completed",
                    "final_val_loss": 3.0,
                },
            )
    return [*overrides, f"seed=range(0,{n})"]


def relaunch(workdir: Path, overrides: list[str], n: int) -> float:
    elapsed, out = timed([str(BIN / "scaling-train"), "-m", *overrides])
    skipped = out.stdout.count("already completed")
    if skipped != n or "training in" in out.stdout:
        raise SystemExit(
            f"relaunch retrained something: {skipped}/{n} skipped\n{out.stdout[-2000:]}"
        )
    return elapsed


def main() -> None:
    repeats = 3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("SCALING_LAB_CACHE", str(work / "cache"))
        first_step(work, -1)  # tokenizes the corpus into the cache: not startup cost
        firsts, floors, analysis_imports, plots, seaborns = [], [], [], [], []
        for i in range(repeats):  # interleaved, so load drifts hit both
            firsts.append(first_step(work, i))
            floors.append(import_floor())
            analysis_imports.append(import_time(ANALYSIS))
            plots.append(import_time("analysis.plots"))
            seaborns.append(import_time("seaborn"))
        overrides = finished_sweep(work / "sweep", 100)
        relaunches = [relaunch(work / "sweep", overrides, 100) for _ in range(repeats)]

    figures = {
        "first_step_s": statistics.median(firsts),
        "import_floor_s": statistics.median(floors),
        "relaunch_100_s": statistics.median(relaunches),
        "import_analysis_s": statistics.median(analysis_imports),
        "import_plots_s": statistics.median(plots),
        "import_seaborn_s": statistics.median(seaborns),
    }
    figures["first_step_above_floor_s"] = figures["first_step_s"] - figures["import_floor_s"]
    goals = {
        "first_step_above_floor_s": 1.5,
        "relaunch_100_s": 10.0,
        "import_analysis_s": 1.0,
    }
    print(f"{'figure':<26} {'median s':>9} {'goal':>8}  all runs")
    runs = {
        "first_step_s": firsts,
        "import_floor_s": floors,
        "relaunch_100_s": relaunches,
        "import_analysis_s": analysis_imports,
        "import_plots_s": plots,
        "import_seaborn_s": seaborns,
    }
    for k, v in figures.items():
        goal = f"<= {goals[k]}" if k in goals else ""
        spread = " ".join(f"{x:.2f}" for x in runs.get(k, []))
        print(f"{k:<26} {v:>9.2f} {goal:>8}  {spread}")
    rounded = {k: round(v, 3) for k, v in figures.items()}
    goals_met = all(figures[k] <= g for k, g in goals.items())
    print(json.dumps({"benchmark": "overhead", **rounded, "goals_met": goals_met}))


if __name__ == "__main__":
    main()
