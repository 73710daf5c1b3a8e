"""How many trunks does a tight compute-optimal exponent need? A power study on synthetic sweeps.

The demo's Chinchilla fit reports a = beta/(alpha+beta) with a 95 % bootstrap interval
that resamples whole trunks (the budgets of one trajectory share its noise). With few
trunks that interval is wide however good each point is: a resample of 6 trunks holds
about 4 distinct ones, too few to pin five parameters. This script measures the width
of a's interval for sweep designs the demo could use, on data drawn from a known law
with known noise, so a design can be chosen before it is trained:

  each trunk (size, seed) gets an offset ~ N(0, trunk_noise), shared by its budgets,
  and every budget point its own ~ N(0, point_noise) on top of
  L = E + A/N^alpha + B/D^beta (default: the demo's committed fit).

For every design x noise level it draws ``--reps`` datasets (seeds 0, 1, ...), fits
each with ``analysis.fit.fit_frame(df, "chinchilla", bootstrap=200)`` (trunks resampled
as the CLI does) and prints the median width of a's 95 % interval; the goal of the
demo is a width <= 0.16. Beside it, so that the width can be judged: the *spread*,
the width of the central 95 % of a fitted (without bootstrap) to ``--spread-reps``
fresh draws, which is what an exact 95 % interval would span, and how many of the
``--reps`` intervals cover the true a. Resampling a few whole trunks is conservative:
over 6 trunks the interval is 3-4 times as wide as the spread, over 12 trunks 1.1-2
times, and every one of the default run's 48 intervals covers the truth (``--reps 40``
for coverage worth the name). The demo's own residuals (``scaling-analyze fit
results/demo --law chinchilla``, rms of residuals) are about 0.025, and 0.017 without
its first, 256-step budget.

    python benchmarks/demo_power.py             # 4 designs x 3 noise levels, ~4 min
    python benchmarks/demo_power.py --reps 40   # coverage, ~30 min

Progress goes to stderr; the table to stdout, ending with one JSON line:
``{"law": {...}, "cells": [{"design", "trunks", "points", "noise", "widths",
"median_width", "spread", "covers", "reps"}]}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings

import numpy as np
import pandas as pd

from analysis.fit import fit_frame

# the demo's committed fit (results/demo, N non-embedding)
DEMO_LAW = {"E": 1.205, "A": 29.21, "alpha": 0.4693, "B": 506.7, "beta": 0.5117}
DEMO_SIZES = (5200, 13944, 26784, 55536, 94528, 221664)
DEMO_BUDGETS = (262144, 524288, 1048576, 1572864, 2097152)
NOISE = ((0.005, 0.005), (0.01, 0.01), (0.02, 0.01))  # (trunk, point)


def designs() -> dict[str, tuple[tuple[int, ...], tuple[int, ...], int]]:
    """Name -> (sizes, budgets, seeds per size)."""
    twelve = tuple(int(n) for n in np.geomspace(DEMO_SIZES[0], DEMO_SIZES[-1], 12))
    return {
        "demo: 6 sizes x 5 budgets": (DEMO_SIZES, DEMO_BUDGETS, 1),
        "6 sizes x 2 seeds x 5 budgets": (DEMO_SIZES, DEMO_BUDGETS, 2),
        "12 sizes x 5 budgets": (twelve, DEMO_BUDGETS, 1),
        "12 sizes x 4 budgets (no 0.25M)": (twelve, DEMO_BUDGETS[1:], 1),
    }


def draw(
    law: dict[str, float],
    sizes: tuple[int, ...],
    budgets: tuple[int, ...],
    seeds: int,
    trunk_noise: float,
    point_noise: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        for n in sizes:
            offset = rng.normal(0.0, trunk_noise)
            for d in budgets:
                clean = law["E"] + law["A"] / n ** law["alpha"] + law["B"] / d ** law["beta"]
                rows.append({
                    "params": n, "tokens": d, "trunk": f"{n}/{seed}", "run": f"{n}/{seed}/{d}",
                    "loss": clean + offset + rng.normal(0.0, point_noise),
                })  # fmt: skip
    return pd.DataFrame(rows)


def a_spread(
    sizes: tuple[int, ...],
    budgets: tuple[int, ...],
    seeds: int,
    trunk_noise: float,
    point_noise: float,
    reps: int,
) -> float:
    """The width of the central 95 % of the fitted a over ``reps`` fresh draws (seeds
    10,000 on), fitted without bootstrap: what a 95 % interval of one draw should span."""
    a = []
    for rep in range(reps):
        rng = np.random.default_rng(10_000 + rep)
        df = draw(DEMO_LAW, sizes, budgets, seeds, trunk_noise, point_noise, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a.append(fit_frame(df, "chinchilla", bootstrap=0).derived["a"])
    lo, hi = np.percentile(a, [2.5, 97.5])
    return round(float(hi - lo), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=4, help="datasets per cell (4)")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples per fit (200)")
    parser.add_argument(
        "--spread-reps", type=int, default=100, help="fits without bootstrap for the spread (100)"
    )
    args = parser.parse_args(argv)
    if args.reps < 1 or args.bootstrap < 20:
        parser.error("--reps must be >= 1 and --bootstrap >= 20")
    cells = []
    true_a = DEMO_LAW["beta"] / (DEMO_LAW["alpha"] + DEMO_LAW["beta"])
    print(f"{'design':34s} {'noise (trunk, point)':>20s}  median width  spread  covers  widths")
    for name, (sizes, budgets, seeds) in designs().items():
        for trunk_noise, point_noise in NOISE:
            widths, covers = [], 0
            for rep in range(args.reps):
                df = draw(DEMO_LAW, sizes, budgets, seeds, trunk_noise, point_noise,
                          np.random.default_rng(rep))  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # few-trunk warnings: the point here
                    result = fit_frame(df, "chinchilla", bootstrap=args.bootstrap, seed=rep)
                lo, hi = result.intervals["a"]
                widths.append(round(float(hi - lo), 3))
                covers += int(lo <= true_a <= hi)
            spread = a_spread(sizes, budgets, seeds, trunk_noise, point_noise, args.spread_reps)
            median = statistics.median(widths)
            print(f"{name:34s} {f'({trunk_noise}, {point_noise})':>20s}  {median:12.3f}  "
                  f"{spread:6.3f}  {covers:>3d}/{args.reps}  {widths}", flush=True)  # fmt: skip
            cells.append({
                "design": name, "trunks": len(sizes) * seeds, "points": len(df),
                "noise": [trunk_noise, point_noise], "widths": widths, "median_width": median,
                "spread": spread, "covers": covers, "reps": args.reps,
            })  # fmt: skip
        print(f"  done: {name}", file=sys.stderr, flush=True)
    print(json.dumps({"law": DEMO_LAW, "cells": cells}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
