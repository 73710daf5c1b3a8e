"""A sweep of small models run one job after another against two jobs at once.

The same sweep, launched twice with `scaling-train` into two fresh folders, side by
side in one run, alternating which goes first over ``--rounds``:

  (a) local     Hydra's basic launcher: one run after another, torch's default threads
  (b) parallel  `hydra/launcher=parallel`: ``--jobs`` runs at once, the cores shared
                between them (one thread each on two cores)

The default sweep is the demo itself (``--budgets all``); ``--budgets 262144`` trains
each size to its first budget only, a launch of about half a minute, where the start
of the workers weighs more. Wall times are of the whole command, start-up included.
Both launches train the same run ids; their losses may differ in the last bits, which
the thread count changes.

    python benchmarks/parallel_sweep.py                          # ~10 min on 2 CPU cores
    python benchmarks/parallel_sweep.py --budgets 262144 --rounds 2

Ends with one JSON line: ``local_s``, ``parallel_s`` (medians), ``speedup`` and the
largest difference between the two launches' losses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.io import load


def launch(results: Path, sizes: str | None, budgets: str, extra: list[str]) -> float:
    exe = Path(sys.executable).with_name("scaling-train")
    cmd = [str(exe), "-m", "experiment=demo", "train.dtype=fp32"]
    if sizes is not None:
        cmd.append(f"model.d_model={sizes}")
    if budgets != "all":
        cmd.append(f"train.budgets=[{budgets}]")
    cmd += [f"results_dir={results}", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None, help="d_model values, in launch order (the demo's)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--budgets", default="all", help="token budgets, comma-separated; all: the demo's"
    )
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    kinds = {
        "local": [],
        "parallel": ["hydra/launcher=parallel", f"hydra.launcher.jobs={args.jobs}"],
    }
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    gap = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(kinds) if r % 2 == 0 else list(kinds)[::-1]
            losses = {}
            for kind in order:
                folder = Path(tmp) / f"{kind}{r}"
                walls[kind].append(launch(folder, args.sizes, args.budgets, kinds[kind]))
                df = load(folder / "demo")
                losses[kind] = df.set_index("run")["loss"].sort_index()
                print(f"round {r + 1}: {kind:8s} {walls[kind][-1]:6.1f} s", file=sys.stderr)
            a, b = losses["local"], losses["parallel"]
            assert list(a.index) == list(b.index), "the two launches trained different runs"
            gap = max(gap, float((a - b).abs().max()))
    local, parallel = statistics.median(walls["local"]), statistics.median(walls["parallel"])
    print(
        f"\nsizes d_model {args.sizes or 'of the demo'}, budgets {args.budgets}, {args.rounds} round(s), "
        "medians of the whole command"
    )
    print(f"  local (one after another)      {local:7.1f} s")
    print(f"  parallel ({args.jobs} at once)          {parallel:7.1f} s")
    print(f"  speedup                        {local / parallel:7.2f}x")
    print(f"  largest loss difference        {gap:.2e}")
    print(json.dumps({
        "sizes": args.sizes, "budgets": args.budgets, "jobs": args.jobs, "rounds": args.rounds,
        "local_s": round(local, 2), "parallel_s": round(parallel, 2),
        "speedup": round(local / parallel, 3), "max_loss_difference": gap,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
