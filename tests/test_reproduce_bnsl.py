"""Caballero et al.'s 4-digit-addition extrapolation (arXiv:2210.14891, Figure 4 Left)
reproduced with one break.

The data are the paper's 17 measured points (``tests/data/caballero2022``): the first
14 (x <= 736) are fitted, the last 3 (x = 800, 864, 928) extrapolated, each scored by
RMSLE = sqrt(mean((log ŷ - log y)^2)), as in the paper. The paper's claim is that a
broken neural scaling law with one break extrapolates the sharp drop of the loss
accurately, where forms without a break cannot.

Expected values come from the paper's own method run on these points -- never from
our fitter: a brute-force grid search of the mean squared error of ``log(y + 1)``
followed by least squares (``curve_fit``) on ``log(y + 1)``. It lands at a = 0.4139,
b = 2.277, c0 = 0.05508, c1 = 5.663, d1 = 612.6, f1 = 0.05919 and scores

* RMSLE on the 14 fitted points: 5.9849e-4;
* RMSLE on the 3 extrapolated points: 1.0916e-2, predicting 0.76019, 0.63750 and
  0.56260 (measured: 0.75856, 0.64768, 0.55695).

Our fitter (default grid and Huber threshold) reaches the same basin and scores
5.9851e-4 and 1.126e-2: its extrapolation is 3 % above the paper's, not below it. The
difference is the objective alone, not the search: the paper squares residuals of
``log(y + 1)``, which weights each point's log residual by about ``y / (1 + y)`` (0.68
on the plateau, 0.49 at the last fitted point), whereas ours weights the log residuals
of all points alike. Each optimum, handed to the other objective, moves to the other's
optimum; running all 6,000 of our starts to convergence finds no lower objective than
the default search; and with ``delta`` large enough that the Huber loss is least
squares of ``log y`` -- the paper's own training score -- our fitter beats the paper's
method on that score (5.9833e-4) and extrapolates at 1.114e-2. The extrapolation is
therefore held to within 5 % of the paper's, and the three held-out predictions to
within 1 % of the paper's method's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fit import FitResult, fit
from analysis.laws import get_law

DATA = Path(__file__).resolve().parent / "data" / "caballero2022" / "four_digit_addition.csv"
N_FIT = 14  # the paper fits x <= 736 and extrapolates x = 800, 864, 928

# The paper's method on these points (see the module docstring).
PAPER_RMSLE_TRAIN = 5.9849e-4
PAPER_RMSLE_EXTRAPOLATE = 1.0916e-2
PAPER_HELD_OUT = np.array([0.76019, 0.63750, 0.56260])


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    table = pd.read_csv(DATA)
    return (
        table["dataset_size"].to_numpy(dtype=float),
        table["test_cross_entropy"].to_numpy(dtype=float),
    )


@pytest.fixture(scope="module")
def bnsl_fit(points: tuple[np.ndarray, np.ndarray]) -> FitResult:
    x, y = points
    return fit("bnsl", x[:N_FIT], y[:N_FIT])


def _rmsle(law: str, result: FitResult, x: np.ndarray, y: np.ndarray) -> float:
    pred = get_law(law).predict(result.params, x)
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


def test_the_data_are_the_papers_17_points(points: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = points
    assert len(x) == 17 and list(x[N_FIT:]) == [800.0, 864.0, 928.0]
    assert x[N_FIT - 1] == 736.0 and np.all(np.diff(x) > 0) and np.all(np.diff(y) < 0)


def test_one_break_extrapolates_the_sharp_drop_as_the_paper_does(
    points: tuple[np.ndarray, np.ndarray], bnsl_fit: FitResult
) -> None:
    x, y = points
    assert bnsl_fit.converged
    train = _rmsle("bnsl", bnsl_fit, x[:N_FIT], y[:N_FIT])
    extrapolate = _rmsle("bnsl", bnsl_fit, x[N_FIT:], y[N_FIT:])
    # As good a fit of the 14 points as the paper's method, to 0.1 %.
    assert train <= PAPER_RMSLE_TRAIN * 1.001
    # The paper's objective differs from ours (module docstring), which costs 3 %.
    assert extrapolate <= PAPER_RMSLE_EXTRAPOLATE * 1.05
    held_out = get_law("bnsl").predict(bnsl_fit.params, x[N_FIT:])
    np.testing.assert_allclose(held_out, PAPER_HELD_OUT, rtol=0.01)


def test_least_squares_of_log_y_beats_the_papers_training_score(
    points: tuple[np.ndarray, np.ndarray],
) -> None:
    """With the Huber threshold far above every residual the objective is the sum of
    squared log residuals, the quantity the paper's training RMSLE scores: our search
    must reach a lower one than the paper's method, which minimised another objective."""
    x, y = points
    result = fit("bnsl", x[:N_FIT], y[:N_FIT], delta=1.0)
    assert result.converged
    assert _rmsle("bnsl", result, x[:N_FIT], y[:N_FIT]) < PAPER_RMSLE_TRAIN
    assert _rmsle("bnsl", result, x[N_FIT:], y[N_FIT:]) <= PAPER_RMSLE_EXTRAPOLATE * 1.05


def test_the_break_sits_inside_the_observed_transition(
    points: tuple[np.ndarray, np.ndarray], bnsl_fit: FitResult
) -> None:
    """The transition, read off the data: from the first point where the loss falls by
    more than 2 % from its predecessor (x = 544; before it the drops are ~1 %) to the
    last fitted point. The break must lie inside it, and be sharp (the bend spans well
    under an e-fold of x; the paper's method finds f1 = 0.059)."""
    x, y = points
    xt, yt = x[:N_FIT], y[:N_FIT]
    falls = np.flatnonzero(yt[1:] / yt[:-1] < 0.98) + 1
    start, end = xt[falls[0]], xt[-1]
    assert start == 544.0
    assert start < bnsl_fit.params["d1"] < end
    assert bnsl_fit.params["f1"] < 0.2
    # The slope steepens across the break: the drop is the break, not the floor.
    assert bnsl_fit.params["c1"] > 1.0


@pytest.mark.parametrize("law", ["saturating", "power"])
def test_a_form_without_a_break_extrapolates_far_worse(
    points: tuple[np.ndarray, np.ndarray], bnsl_fit: FitResult, law: str
) -> None:
    """A power law, with or without a floor, cannot bend down at x ~ 600 after a
    plateau: fitted to the same 14 points it misses the held-out losses by tens of
    percent, ten times and more the error of one break."""
    x, y = points
    other = fit(law, x[:N_FIT], y[:N_FIT])
    broken = _rmsle("bnsl", bnsl_fit, x[N_FIT:], y[N_FIT:])
    assert _rmsle(law, other, x[N_FIT:], y[N_FIT:]) > 10 * max(broken, PAPER_RMSLE_EXTRAPOLATE)
    assert _rmsle(law, other, x[N_FIT:], y[N_FIT:]) > 0.1
