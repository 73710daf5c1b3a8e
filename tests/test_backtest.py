"""Backtesting: a right law predicts the held-out largest runs; a wrong one does not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.backtest import backtest

E, A, ALPHA = 1.69, 406.4, 0.34  # Hoffmann et al.'s E, A, alpha as an L(N) law
SIZES = np.geomspace(1e7, 1e10, 12)  # 1.87x apart; the 2 largest are 5.3e9 and 1e10


def runs(seed: int, noise: float, plateau_from: float | None = None) -> pd.DataFrame:
    """Final losses of 12 sizes following L = E + A N^-alpha (times log-normal noise).

    With ``plateau_from``, the loss stops improving beyond that size: a change of regime
    (a data or architecture bottleneck) that the law cannot know about.
    """
    rng = np.random.default_rng(seed)
    effective = SIZES if plateau_from is None else np.minimum(SIZES, plateau_from)
    loss = (E + A * effective**-ALPHA) * np.exp(rng.normal(0, noise, len(SIZES)))
    return pd.DataFrame(
        {"run": [f"r{i:02d}" for i in range(len(SIZES))], "params": SIZES,
         "tokens": 20 * SIZES, "flops": 120 * SIZES**2, "loss": loss}
    )  # fmt: skip


def test_right_law_predicts_the_largest_runs() -> None:
    """0.1 % noise, the 2 largest held out (the fit sees 1e7..2.8e9, so this extrapolates
    up to 3.5x in size). Over 30 seeds the worst held-out error was 0.34 %; 1 % bounds it
    with room, and is still far below the error of a wrong law (next test)."""
    bt = backtest(runs(0, noise=0.001), "saturating", k=2)
    assert bt.k == 2 and bt.law == "saturating"
    assert bt.fit.n == 10 and bt.fit.converged
    assert list(bt.table["params"]) == list(SIZES[-2:])  # the largest, smallest first
    assert list(bt.table.columns) == [
        "run", "params", "tokens", "flops", "loss", "predicted", "rel_error"
    ]  # fmt: skip
    np.testing.assert_allclose(
        bt.table["rel_error"], bt.table["predicted"] / bt.table["loss"] - 1, rtol=1e-12
    )
    assert bt.max_abs_rel_error < 0.01


def test_wrong_law_shows_a_large_error() -> None:
    """The loss stops improving beyond 1e9 parameters. At 1e10 the law's own value is
    9.3 % below the plateau (E + A·1e10^-α = 1.852 vs E + A·1e9^-α = 2.042); the fit
    partly bends towards the two plateaued runs it sees, and over 30 seeds the held-out
    error was 5.3-6.0 %. Requiring more than 3 % -- ten times the right law's worst --
    tells the two cases apart."""
    bt = backtest(runs(0, noise=0.001, plateau_from=1e9), "saturating", k=2)
    assert bt.max_abs_rel_error > 0.03
    assert (bt.table["rel_error"] < 0).all()  # the law keeps improving; the data do not


def test_chinchilla_backtest_holds_out_the_largest_budgets() -> None:
    rng = np.random.default_rng(1)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 40))
    d = n * np.exp(rng.uniform(np.log(5), np.log(100), 40))
    loss = (E + A / n**ALPHA + 410.7 / d**0.28) * np.exp(rng.normal(0, 0.001, 40))
    df = pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "loss": loss})
    bt = backtest(df, "chinchilla", k=3)
    assert len(bt.table) == 3
    assert set(bt.table["flops"]) == set(np.sort(df["flops"])[-3:])
    assert "run" in bt.table.columns  # taken from the index when the table has none
    assert bt.max_abs_rel_error < 0.01


def test_power_backtest_on_other_columns() -> None:
    df = pd.DataFrame({"params": SIZES, "flops": 6 * SIZES**1.02})
    bt = backtest(df, "power", k=1, x="params", y="flops")
    assert bt.table["rel_error"].abs().max() < 1e-9  # noise-free power law: exact
    assert bt.fit.params["k"] == pytest.approx(1.02)


def test_to_dict_is_json_ready() -> None:
    bt = backtest(runs(0, noise=0.001), "saturating", k=2)
    d = json.loads(json.dumps(bt.to_dict()))
    assert d["law"] == "saturating" and d["k"] == 2 and len(d["rows"]) == 2
    assert d["fit"]["n"] == 10
    assert d["max_abs_rel_error"] == pytest.approx(bt.max_abs_rel_error)


def test_refusals() -> None:
    df = runs(0, noise=0.001)
    with pytest.raises(ValueError, match="k must be between 1 and 11"):
        backtest(df, k=12)
    with pytest.raises(ValueError, match="k must be"):
        backtest(df, k=0)
    with pytest.raises(ValueError, match="too few points"):
        backtest(df, "saturating", k=7)  # 5 left, 6 needed


def test_bootstrap_of_the_fit_draws_whole_trunks() -> None:
    """Three budgets per size, cut from one trunk each: the fit on all but the three
    largest runs (by compute) resamples its trunks, not its runs, and the held-out runs
    are still predicted by the law (noise 0.1 %, as in the first test)."""
    rng = np.random.default_rng(2)
    n = np.repeat(SIZES, 3)
    d = n * np.tile([10.0, 20.0, 40.0], len(SIZES))
    loss = (E + A / n**ALPHA + 410.7 / d**0.28) * np.exp(rng.normal(0, 0.001, n.size))
    df = pd.DataFrame(
        {"run": [f"r{i:02d}" for i in range(n.size)], "trunk": np.repeat(np.arange(12), 3),
         "params": n, "tokens": d, "flops": 6 * n * d, "loss": loss}
    )  # fmt: skip
    bt = backtest(df, "chinchilla", k=3, bootstrap=20, seed=0)
    held = df.nlargest(3, "flops")
    assert set(bt.table["run"]) == set(held["run"])
    # the largest size's smallest budget (6 N 10N) has less compute than the next size's
    # largest (6 N' 40N', N/N' = 1.87): it stays in the fit, and with it all 12 trunks
    assert "r33" not in set(held["run"]) and "r32" in set(held["run"])
    assert bt.fit.resampled == "trunks" and bt.fit.n_groups == 12
    assert bt.max_abs_rel_error < 0.01
    assert json.loads(json.dumps(bt.to_dict()))["fit"]["bootstrap"]["resampled"] == "trunks"
