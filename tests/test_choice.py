"""Which law a command fits by default: the one the design of the runs can identify."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.choice import choose_law, independent_sizes

SIZES = np.geomspace(1e6, 1e8, 5)


def table(params, tokens=None, flops=None) -> pd.DataFrame:
    data = {"params": np.asarray(params, dtype=float)}
    if tokens is not None:
        data["tokens"] = np.asarray(tokens, dtype=float)
    if flops is not None:
        data["flops"] = np.asarray(flops, dtype=float)
    return pd.DataFrame(data)


def test_a_size_ladder_tells_only_l_of_n():
    # 20 tokens per parameter, rounded to whole 4096-token steps: D is a function of N.
    ladder = table(SIZES, np.round(20 * SIZES / 4096) * 4096)
    assert not independent_sizes(ladder)
    law, reason = choose_law(ladder)
    assert law == "saturating"
    assert reason.startswith("law: saturating L(N) = E + A/N^alpha, because D follows N")
    assert "5 sizes and 5 token counts" in reason and reason.endswith("--law to choose another")


def test_a_fixed_budget_tells_only_l_of_n():
    law, reason = choose_law(table(SIZES, np.full(5, 1e9)))
    assert law == "saturating" and "every run has the same D" in reason
    law, reason = choose_law(table(SIZES))  # no tokens recorded
    assert law == "saturating" and "every run has the same D (or none is recorded)" in reason


def test_several_budgets_per_size_give_chinchilla():
    n = np.repeat(SIZES, 3)
    d = n * np.tile([5.0, 20.0, 80.0], 5)
    law, reason = choose_law(table(n, d))
    assert law == "chinchilla"
    assert reason == (
        "law: chinchilla L(N, D), because N and D vary independently "
        "(5 sizes and 15 token counts); --law to choose another"
    )


def test_an_isoflop_grid_without_repeated_sizes_gives_chinchilla():
    # Every run a size of its own (as when sizes are read off a figure): D falls with N
    # within each budget and rises between budgets, which no budget rule does.
    budgets = [1e18, 1e19, 1e20]
    n = np.concatenate([np.geomspace(1e7, 1e9, 4) * (1 + 0.1 * i) for i in range(3)])
    c = np.repeat(budgets, 4)
    assert len(np.unique(n)) == len(n)
    assert independent_sizes(table(n, c / (6 * n)))
    # ... and with compute but no tokens, N and C are looked at instead
    law, reason = choose_law(table(n, flops=c))
    assert law == "chinchilla" and "N and C vary independently" in reason


def test_sizes_within_the_tolerance_are_one_size():
    # Two runs of each size whose counts differ by 1 % (0.004 decades), the larger one
    # trained 1 % fewer tokens (whole steps): still one budget per size.
    n = np.concatenate([SIZES, SIZES * 1.01])
    d = 20 * np.concatenate([SIZES, SIZES * 0.99])
    assert not independent_sizes(table(n, d))
    # told to tell them apart, D falls from one "size" to the next and rises again
    assert independent_sizes(table(n, d), tol=0.001)


def test_a_law_asked_for_is_returned_with_a_warning_when_unidentified():
    ladder = table(SIZES, 20 * SIZES)
    assert choose_law(ladder, "saturating") == ("saturating", "law: saturating (asked with --law)")
    law, reason = choose_law(ladder, "chinchilla")
    assert law == "chinchilla"
    assert reason.startswith("law: chinchilla (asked with --law); N and D do not vary")


@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.0])
def test_unusable_values_are_ignored(bad):
    n = np.repeat(SIZES, 2)
    d = n * np.tile([10.0, 40.0], 5)
    d[0] = bad
    assert independent_sizes(table(n, d))
    assert not independent_sizes(table([1e6, bad], [1e8, 1e9]))  # one usable row
