"""Approach 2 on a public IsoFLOP table: Minchilla's 32 runs at five budgets.

The data (``tests/data/minchilla``) are character-level transformers of 3.2M to 49M
parameters trained at 1e15 to 3e16 FLOPs, 5 to 7 sizes per budget. The study's own
fit -- a robust (RANSAC) parabola in log N per budget, then a line of log N_opt on
log C -- publishes N_opt ∝ C^0.48.

What these profiles are like decides what each method can say:

* at 1e15 the smallest model is the best one, so that budget's optimum lies below the
  sizes tried: Porian et al.'s method leaves the group out, while Hoffmann's parabola
  through all five sizes, bent by the larger ones, puts its vertex at 4.8M, between
  the two smallest;
* the largest size of three budgets sits far above the parabola through the others
  (at 6e15 the 49M model's loss is 1.18 against 0.97 for 36M), the outliers RANSAC
  discards: they inflate the residual noise Porian's bootstrap draws from.

Expected values are the published exponent and plain arithmetic on the table, never
our fitter's output: the published 0.48 must lie inside both methods' 95 % intervals;
Hoffmann's method, an ordinary parabola through every size, must land within 0.06 of
it (what the robust fit's outlier removal can move it); and Porian's interval, from
four groups whose parabolas leave large residuals, reaches past both 0 and 1, which
approach 2 must report as not identified instead of as an estimate.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.isoflop import approach2

DATA = Path(__file__).resolve().parent / "data" / "minchilla" / "isoflops.csv"
PUBLISHED_A = 0.48  # the repository's README: N_opt ∝ C^0.48, D_opt ∝ C^0.52


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return pd.read_csv(DATA).rename(columns={"budget_flops": "flops"})


def test_the_table_is_an_isoflop_grid(runs):
    """Five budgets of 5-7 sizes, each run's compute 6·N·D within 1 % of its budget."""
    assert runs.groupby("flops").size().tolist() == [5, 6, 7, 7, 7]
    spent = 6 * runs["params"] * runs["tokens"]
    assert np.allclose(spent / runs["flops"], 1, atol=0.01)


def test_hoffmanns_method_gives_the_published_exponent(runs):
    frontier = approach2(runs, method="hoffmann", group_col="flops")
    lo, hi = frontier.interval
    assert lo < PUBLISHED_A < hi
    assert frontier.a == pytest.approx(PUBLISHED_A, abs=0.06)
    assert frontier.b == pytest.approx(1 - frontier.a)
    assert frontier.identified
    # every budget gives a vertex, and the optima grow with compute
    optima = frontier.points.sort_values("flops")["params_opt"].to_numpy()
    assert len(optima) == 5 and np.all(np.diff(optima) > 0)


def test_porians_method_leaves_out_the_budget_whose_optimum_was_not_tried(runs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frontier = approach2(runs, method="porian", group_col="flops")
    messages = [str(w.message) for w in caught]
    assert any("minimum at the edge of the sizes tried (C = 1e+15)" in m for m in messages)
    assert sorted(frontier.points["flops"]) == pytest.approx([3e15, 6e15, 1e16, 3e16])
    lo, hi = frontier.interval
    assert lo < PUBLISHED_A < hi
    # four noisy vertices pin nothing down: the interval spans past (0, 1), and says so
    assert lo < 0 and hi > 1
    assert not frontier.identified
    assert "reaches past (0, 1)" in frontier.identification[0]


def test_the_cli_says_when_approach_2_is_not_identified(capsys):
    from analysis.cli import main

    cols = ("--flops-col", "budget_flops", "--params-col", "params", "--tokens-col", "tokens")
    args = ["frontier", str(DATA), "--approach", "2", *cols, "--loss-col", "loss", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "(not identified: not an estimate)" in out
    assert "warning: approach 2's exponent is not identified" in err
    assert main([*args, "--strict"]) == 2
    assert "reaches past (0, 1)" in capsys.readouterr().err
    assert main([*args, "--method", "hoffmann", "--strict"]) == 0
