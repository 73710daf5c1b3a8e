"""Predictions: the law at given points, on the frontier and for a ladder, each with its
band and its reach beyond the data.

Expectations come from the law that generated the data (Hoffmann et al.'s published
L = 1.69 + 406.4/N^0.34 + 410.7/D^0.28) and from arithmetic on the data's own sizes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.fit import FitResult, fit, fit_frame
from analysis.predict import predict

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
TRUE = {"E": E, "A": A, "B": B, "alpha": ALPHA, "beta": BETA}
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))


def law(n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
    return E + A / np.asarray(n) ** ALPHA + B / np.asarray(d) ** BETA


def grid(seed: int, noise: float) -> pd.DataFrame:
    """8 sizes 1e7..1e9 x 5 budgets 2e8..2e10 tokens, multiplicative noise."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 1e9, 8), 5)
    d = np.tile(np.geomspace(2e8, 2e10, 5), 8)
    loss = law(n, d) * np.exp(rng.normal(0, noise, n.size))
    return pd.DataFrame({"params": n, "tokens": d, "loss": loss})


@pytest.fixture(scope="module")
def noisy() -> FitResult:
    return fit_frame(grid(0, 0.01), "chinchilla", bootstrap=200, seed=0)


@pytest.fixture(scope="module")
def exact() -> FitResult:
    """The true law fitted to noise-free data (its parameters to ~1e-6)."""
    df = grid(0, 0.0)
    return fit_frame(df, "chinchilla", bootstrap=0)


def test_given_points_are_the_law_with_their_reach(exact) -> None:
    out = predict(exact, params=[1e8, 1e10], tokens=[2e9, 2e11])
    first, far = out.predictions
    assert first.loss == pytest.approx(float(law(1e8, 2e9)), rel=1e-6)
    assert far.loss == pytest.approx(float(law(1e10, 2e11)), rel=1e-6)
    assert far.flops == pytest.approx(6 * 1e10 * 2e11)
    assert far.tokens_per_param == pytest.approx(20.0)
    # the data's largest compute is 6 * 1e9 * 2e10 and its largest N is 1e9
    assert far.extrapolation == pytest.approx(6 * 1e10 * 2e11 / (6 * 1e9 * 2e10))
    assert far.beyond["params"] == pytest.approx(10.0)
    assert first.extrapolation < 1 and first.interval is None  # no bootstrap, no band
    assert out.farthest is far


def test_two_of_n_d_c_fix_the_third(exact) -> None:
    by_n = predict(exact, params=1e9, flops=[1e20, 1e21]).predictions
    assert [p.tokens for p in by_n] == pytest.approx([1e20 / 6e9, 1e21 / 6e9])
    by_d = predict(exact, tokens=1e10, flops=6e19).predictions[0]
    assert by_d.params == pytest.approx(1e9)
    with pytest.raises(ValueError, match="give two of"):
        predict(exact, params=1e9, tokens=1e10, flops=1e20)
    with pytest.raises(ValueError, match="3 values and --tokens 2"):
        predict(exact, params=[1e8, 1e9, 1e10], tokens=[1e9, 1e10])
    with pytest.raises(ValueError, match="--params N --tokens D"):
        predict(exact, params=1e9)
    with pytest.raises(ValueError, match="> 0"):
        predict(exact, flops=-1.0)


def test_a_budget_alone_is_the_compute_optimal_point(exact) -> None:
    (p,) = predict(exact, flops=1e22).predictions
    n_true = G * (1e22 / 6) ** (BETA / (ALPHA + BETA))
    assert p.kind == "optimum"
    assert p.params == pytest.approx(n_true, rel=1e-4)
    assert p.tokens == pytest.approx(1e22 / (6 * n_true), rel=1e-4)
    assert p.loss == pytest.approx(float(law(n_true, 1e22 / (6 * n_true))), rel=1e-6)
    others = n_true * np.array([0.7, 1.4])  # any other split of the budget is worse
    assert (law(others, 1e22 / (6 * others)) > p.loss).all()


def test_a_ladder_trains_each_size_on_each_budget(exact) -> None:
    ladder = [1e8, 1e9]
    preds = predict(exact, flops=[1e20, 1e21], ladder=ladder).predictions
    assert [p.params for p in preds] == pytest.approx([1e8, 1e9, 1e8, 1e9])
    assert [p.flops for p in preds] == pytest.approx([1e20, 1e20, 1e21, 1e21])
    for p in preds:
        assert p.kind == "ladder"
        assert p.loss == pytest.approx(float(law(p.params, p.flops / (6 * p.params))), rel=1e-6)
    with pytest.raises(ValueError, match="--ladder goes with --flops"):
        predict(exact, params=1e9, tokens=1e10, ladder=ladder)


def test_bands_hold_the_truth_and_widen_with_reach(noisy) -> None:
    """1 % noise on 40 runs: the 95 % bands hold the true law at 3x and at 100x the
    data's largest compute, and the band at 100x is wider than at 3x."""
    near, far = predict(noisy, params=[1e9, 1e10], tokens=[6e10, 2e12]).predictions
    for p in (near, far):
        lo, hi = p.interval
        assert lo < float(law(p.params, p.tokens)) < hi
        assert lo < p.loss < hi
    assert far.interval[1] - far.interval[0] > near.interval[1] - near.interval[0]
    (opt,) = predict(noisy, flops=1e23).predictions  # ~80x the data's 1.2e20
    n_true = G * (1e23 / 6) ** (BETA / (ALPHA + BETA))
    lo, hi = opt.intervals["params"]
    assert lo < n_true < hi
    lo, hi = opt.interval
    assert lo < float(law(n_true, 1e23 / (6 * n_true))) < hi


def test_json_has_the_documented_shape(noisy) -> None:
    d = json.loads(json.dumps(predict(noisy, flops=[1e21, 1e23]).to_dict()))
    assert d["law"] == "chinchilla" and d["identified"] is True
    for row in d["predictions"]:
        assert set(row) >= {"params", "tokens", "flops", "loss", "interval", "extrapolation"}
        assert row["interval"][0] < row["loss"] < row["interval"][1]
        assert row["tokens_per_param"] == pytest.approx(row["tokens"] / row["params"])
    assert d["predictions"][1]["extrapolation"] == pytest.approx(1e23 / (6 * 1e9 * 2e10))


def test_a_law_of_one_variable_takes_that_variable() -> None:
    n = np.geomspace(1e7, 1e10, 12)
    result = fit("saturating", n, E + A * n**-ALPHA, x_names=["params"], y_name="loss")
    (p,) = predict(result, params=1e11).predictions
    assert p.loss == pytest.approx(E + A * 1e11**-ALPHA, rel=1e-6)
    assert p.extrapolation == pytest.approx(10.0) and p.scale == "params"
    assert p.tokens is None and p.tokens_per_param is None
    with pytest.raises(ValueError, match="'params' alone: predict with --params"):
        predict(result, flops=1e20)
    with pytest.raises(ValueError, match="--ladder needs a law of N and D"):
        predict(result, flops=1e20, ladder=[1e9])
