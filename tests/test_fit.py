"""The fitter: the published Chinchilla fit reproduced, recovery of known laws, refusals.

Expected values come from the published fit (Besiroglu et al. 2024, see the reference
data's README), from the law that generated synthetic data, or from mathematics -- never
from running the fitter.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fit import FitResult, _LogProblem, _objective, fit, fit_frame, min_points

EPOCH_CSV = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "chinchilla-epoch"
    / "svg_extracted_data.csv"
)
needs_epoch = pytest.mark.skipif(not EPOCH_CSV.exists(), reason="reference data not present")

# Hoffmann et al.'s published values (the paper's fit, which stopped short of the optimum).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


# --------------------------------------------------------------------------------------
# The published fit on the Epoch reconstruction of Hoffmann et al.'s data
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def epoch() -> pd.DataFrame:
    df = pd.read_csv(EPOCH_CSV)
    df = df[df["loss"] < 3.44]
    n = df["Model Size"].to_numpy()
    c = df["Training FLOP"].to_numpy()
    return pd.DataFrame({"params": n, "tokens": c / (6 * n), "flops": c, "loss": df["loss"]})


@pytest.fixture(scope="module")
def epoch_fit(epoch: pd.DataFrame) -> tuple[FitResult, float]:
    start = time.perf_counter()
    result = fit_frame(epoch, "chinchilla", bootstrap=1000, seed=0)
    return result, time.perf_counter() - start


def _assert_published_optimum(result: FitResult) -> None:
    """The bounds of the published point estimate (E 1.82, α 0.348, β 0.366, a 0.513)."""
    p = result.params
    assert 1.80 <= p["E"] <= 1.83
    assert 0.340 <= p["alpha"] <= 0.355
    assert 0.355 <= p["beta"] <= 0.380
    assert 0.50 <= result.derived["a"] <= 0.53
    assert result.derived["a"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    assert result.derived["b"] == pytest.approx(1 - result.derived["a"])


@needs_epoch
def test_epoch_reproduces_the_published_fit(epoch: pd.DataFrame, epoch_fit) -> None:
    result, _ = epoch_fit
    assert result.n == 240 == len(epoch)
    _assert_published_optimum(result)
    assert result.objective <= 1.0184e-3
    assert result.converged
    assert result.n_starts == 4500


@needs_epoch
def test_epoch_from_hoffmanns_values_reaches_the_same_optimum(epoch, epoch_fit) -> None:
    grid_result, _ = epoch_fit
    result = fit_frame(epoch, "chinchilla", init=HOFFMANN)
    assert result.n_starts == 1
    assert result.converged
    _assert_published_optimum(result)
    assert result.objective <= 1.0184e-3
    for name, value in grid_result.params.items():
        assert result.params[name] == pytest.approx(value, rel=1e-6)


@needs_epoch
def test_epoch_mean_objective_gives_the_same_fit(epoch, epoch_fit) -> None:
    summed, _ = epoch_fit
    averaged = fit_frame(epoch, "chinchilla", reduce="mean")
    assert averaged.converged
    for name, value in summed.params.items():
        assert averaged.params[name] == pytest.approx(value, rel=1e-4)
    # The mean is the sum divided by the number of points.
    assert averaged.objective * 240 == pytest.approx(summed.objective, rel=1e-6)


@needs_epoch
def test_epoch_bootstrap_interval_of_E(epoch_fit) -> None:
    result, seconds = epoch_fit
    lo, hi = result.intervals["E"]
    assert lo <= 1.817 <= hi  # Besiroglu et al.'s estimate
    assert not lo <= 1.69 <= hi  # Hoffmann et al.'s published E is excluded
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        lo, hi = result.intervals[name]
        value = {**result.params, **result.derived}[name]
        assert lo < value < hi
    assert result.bootstrap is not None and result.bootstrap.shape == (1000, 5)
    assert result.interval_kind == "bootstrap"
    assert seconds < 60  # the full fit plus 1,000 refits


@needs_epoch
def test_epoch_to_dict_is_json_ready(epoch_fit) -> None:
    result, _ = epoch_fit
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d) == {"law", "n", "params", "intervals", "objective", "converged", "derived"}
    assert d["law"] == "chinchilla" and d["n"] == 240 and d["converged"] is True
    assert list(d["params"]) == ["E", "A", "B", "alpha", "beta"]
    assert {"a", "b"} <= set(d["derived"])
    assert d["intervals"]["E"][0] < d["params"]["E"] < d["intervals"]["E"][1]


def test_full_grid_fit_is_fast() -> None:
    """4,500 starts on 240 points in well under the seconds a notebook loop takes."""
    n, d, loss = _chinchilla_data(240, noise=0.01, seed=5)
    start = time.perf_counter()
    result = fit("chinchilla", (n, d), loss)
    assert time.perf_counter() - start < 10
    assert result.n_starts == 4500 and result.converged


# --------------------------------------------------------------------------------------
# Recovery of known laws
# --------------------------------------------------------------------------------------


def _chinchilla_data(
    count: int, noise: float, seed: int, params: dict[str, float] = HOFFMANN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), count))
    d = n * np.exp(rng.uniform(np.log(2), np.log(200), count))
    loss = params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]
    return n, d, loss * np.exp(rng.normal(0, noise, count))


def test_chinchilla_recovers_its_generating_law_without_noise() -> None:
    n, d, loss = _chinchilla_data(60, noise=0.0, seed=1)
    result = fit("chinchilla", (n, d), loss)
    assert result.converged
    for name, value in HOFFMANN.items():
        assert result.params[name] == pytest.approx(value, rel=1e-5)
    assert np.abs(result.residuals).max() < 1e-8
    assert result.derived["a"] == pytest.approx(0.28 / 0.62, rel=1e-5)


def test_saturating_recovers_its_generating_law_without_noise() -> None:
    x = np.geomspace(1e6, 1e10, 12)
    y = 1.69 + 406.4 * x**-0.34
    result = fit("saturating", x, y)
    assert result.converged
    assert result.params == pytest.approx({"E": 1.69, "A": 406.4, "alpha": 0.34}, rel=1e-6)


def test_power_recovers_a_known_exponent_exactly() -> None:
    x = np.geomspace(1e6, 1e9, 7)
    result = fit("power", x, 6.0 * x**1.2)
    assert result.params["k"] == pytest.approx(1.2, abs=1e-12)
    assert result.params["a"] == pytest.approx(6.0, rel=1e-9)
    assert result.interval_kind == "t"
    lo, hi = result.intervals["k"]
    assert lo <= 1.2 <= hi and hi - lo < 1e-9


def test_power_intervals_cover_the_true_exponent_with_noise() -> None:
    rng = np.random.default_rng(0)
    x = np.geomspace(1e6, 1e9, 20)
    y = 6.0 * x**0.75 * np.exp(rng.normal(0, 0.05, 20))
    t_fit = fit("power", x, y)
    boot = fit("power", x, y, bootstrap=500, seed=1)
    for result in (t_fit, boot):
        lo, hi = result.intervals["k"]
        assert lo < 0.75 < hi
        assert hi - lo < 0.1  # 5 % noise over three decades pins k to a few hundredths
    assert boot.interval_kind == "bootstrap" and boot.bootstrap.shape == (500, 2)
    assert boot.params == t_fit.params  # the point estimate does not depend on the bootstrap


def test_formula_contains_the_fitted_numbers() -> None:
    n, d, loss = _chinchilla_data(60, noise=0.0, seed=1)
    result = fit("chinchilla", (n, d), loss)
    numbers = [float(m) for m in NUMBER.findall(result.formula())]
    expected = [result.params[k] for k in ("E", "A", "alpha", "B", "beta")]
    assert numbers == pytest.approx(expected, rel=5e-4)
    x = np.geomspace(1e6, 1e9, 7)
    text = fit_frame(pd.DataFrame({"params": x, "flops": 6 * x}), "power", y="flops").formula()
    assert text == "flops = 6 * params^1"


# --------------------------------------------------------------------------------------
# Options, determinism, convergence, bands
# --------------------------------------------------------------------------------------


def test_same_seed_same_result_and_other_seed_differs() -> None:
    n, d, loss = _chinchilla_data(80, noise=0.01, seed=2)
    one = fit("chinchilla", (n, d), loss, bootstrap=40, seed=7)
    two = fit("chinchilla", (n, d), loss, bootstrap=40, seed=7)
    other = fit("chinchilla", (n, d), loss, bootstrap=40, seed=8)
    assert one.params == two.params and one.objective == two.objective
    assert np.array_equal(one.bootstrap, two.bootstrap)
    assert one.intervals == two.intervals
    assert not np.array_equal(one.bootstrap, other.bootstrap)


def test_converged_flag_reflects_the_gradient() -> None:
    n, d, loss = _chinchilla_data(60, noise=0.01, seed=3)
    stopped = fit("chinchilla", (n, d), loss, init=HOFFMANN, max_iter=1)
    assert not stopped.converged
    assert stopped.message.startswith("NOT converged")
    done = fit("chinchilla", (n, d), loss, init=HOFFMANN)
    assert done.converged and done.grad_norm <= 1e-12 * 60
    assert done.objective < stopped.objective


def test_gradient_and_hessian_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    for k in (1, 2):
        prob = _LogProblem(rng.uniform(15, 25, (k, 40)), np.log(rng.uniform(1.5, 3, 40)), 0.05)
        theta = np.column_stack(
            [rng.normal(0.5, 0.3, (6, 1)), rng.normal(8, 2, (6, k)), rng.uniform(0.2, 0.6, (6, k))]
        )
        weights = rng.integers(0, 3, (6, 40)).astype(float)
        _, g, hess, _ = _objective(prob, theta, weights)
        eps = 1e-6
        for p in range(theta.shape[1]):
            step = np.zeros_like(theta)
            step[:, p] = eps
            f_hi, g_hi = _objective(prob, theta + step, weights, order=1)
            f_lo, g_lo = _objective(prob, theta - step, weights, order=1)
            np.testing.assert_allclose(g[:, p], (f_hi - f_lo) / (2 * eps), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(
                hess[:, :, p], (g_hi - g_lo) / (2 * eps), rtol=1e-5, atol=1e-8
            )


def test_predict_band_needs_a_bootstrap_and_widens_outside_the_data() -> None:
    n, d, loss = _chinchilla_data(80, noise=0.01, seed=4)
    plain = fit("chinchilla", (n, d), loss)
    with pytest.raises(ValueError, match="bootstrap"):
        plain.predict_band(n, d)
    result = fit("chinchilla", (n, d), loss, bootstrap=100, seed=0)
    inside_n, inside_d = np.array([1e8]), np.array([2e9])
    far_n, far_d = np.array([1e12]), np.array([2e13])
    lo_in, hi_in = result.predict_band(inside_n, inside_d)
    lo_far, hi_far = result.predict_band(far_n, far_d)
    assert lo_in < result.predict(inside_n, inside_d) < hi_in
    assert (hi_far - lo_far) > (hi_in - lo_in)


def test_grid_and_options_are_checked() -> None:
    n, d, loss = _chinchilla_data(30, noise=0.0, seed=1)
    with pytest.raises(ValueError, match="exactly the keys"):
        fit("chinchilla", (n, d), loss, grid={"e": [0.0]})
    with pytest.raises(ValueError, match="reduce"):
        fit("chinchilla", (n, d), loss, reduce="median")
    with pytest.raises(ValueError, match="init: A must be > 0"):
        fit("chinchilla", (n, d), loss, init={**HOFFMANN, "A": 0.0})
    small = fit("chinchilla", (n, d), loss, grid={"e": [0.5], "a": [5, 6], "b": [6],
                                                  "alpha": [0.3], "beta": [0.3]})  # fmt: skip
    assert small.n_starts == 2


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def test_refuses_nan_with_the_column_name() -> None:
    df = pd.DataFrame({"params": [1e8] * 12, "tokens": np.geomspace(1e9, 1e11, 12)})
    df["loss"] = 3.0
    df.loc[4, "tokens"] = np.nan
    with pytest.raises(ValueError, match=r"column 'tokens' has 1 NaN.*row 4"):
        fit_frame(df, "chinchilla")
    with pytest.raises(ValueError, match="NaN"):
        fit("saturating", np.geomspace(1, 10, 8), [1.0] * 7 + [np.nan])


def test_refuses_non_positive_values() -> None:
    x = np.geomspace(1e6, 1e9, 8)
    y = 2.0 + x**-0.3
    y[2] = 0.0
    with pytest.raises(ValueError, match=r"non-positive value.*0\.0 at row 2.*> 0"):
        fit("saturating", x, y)
    df = pd.DataFrame({"n": -x, "loss": 2.0 + x**-0.3})
    with pytest.raises(ValueError, match="column 'n' has 8 non-positive"):
        fit_frame(df, "saturating", x="n")


def test_refuses_too_few_points() -> None:
    assert [min_points(law) for law in ("power", "saturating", "chinchilla")] == [4, 6, 10]
    n, d, loss = _chinchilla_data(9, noise=0.0, seed=1)
    with pytest.raises(
        ValueError, match="too few points to fit 'chinchilla': got 9, need at least 10"
    ):
        fit("chinchilla", (n, d), loss)
    with pytest.raises(ValueError, match="too few points.*need at least 4"):
        fit("power", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])


def test_refuses_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="needs 2 input"):
        fit("chinchilla", np.ones(20), np.ones(20))
    with pytest.raises(ValueError, match="has 3 values but the other inputs have 4"):
        fit("power", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="column.*'tokens'.*not in the table"):
        fit_frame(pd.DataFrame({"params": [1.0], "loss": [1.0]}), "chinchilla")
    with pytest.raises(ValueError, match="unknown law"):
        fit("kaplan", [1.0], [1.0])


def test_importing_the_fitter_pulls_in_neither_torch_nor_scipy_optimize() -> None:
    code = (
        "import sys, analysis.fit, analysis.optimal, analysis.backtest, analysis.laws\n"
        "bad = [m for m in ('torch', 'matplotlib', 'scipy.optimize') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
