"""Muennighoff et al. (2023)'s fit of R*_N and R*_D reproduced on their 182 C4 runs.

The data and every expected value come from the paper and its repository (see
``tests/data/muennighoff2023/README.md``): the runs, the five Chinchilla parameters held
(the paper's C4 fit), the published R*_N = 5.309743 and R*_D = 15.387756, the objective
0.015825936570763588 and R^2 = 0.7722 they reach, and the two losses of Figure 1 the
repository's formula predicts. Nothing expected is taken from running our fitter; the
thresholds on what it returns are justified where they are set.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fit import FitResult, fit_frame
from analysis.laws import get_law
from analysis.laws.repeated import optimal_unique_params, repetition_inputs
from analysis.repetition import fit_two_stage

CSV = Path(__file__).resolve().parent / "data" / "muennighoff2023" / "c4_runs.csv"

# The paper's C4 law (fitted on Hoffmann et al.'s C4 IsoFLOP points, alpha tied to beta),
# held while R*_N and R*_D are fitted; the repository prints it as a, b, e = log A, B, E.
C4 = {
    "E": math.exp(0.6254804),
    "A": math.exp(6.255414),
    "B": math.exp(7.3049974),
    "alpha": 0.3526596,
    "beta": 0.3526596,
}
PUBLISHED = {**C4, "R_N": 5.309743, "R_D": 15.387756}
# The objective at PUBLISHED as the repository's notebook prints it (summed in float32),
# and the R^2 of the paper's comparison of fits (appendix A), to the four places printed.
PUBLISHED_OBJECTIVE = 0.015825936570763588
PUBLISHED_R2 = 0.7722
DELTA = 1e-3  # the paper's Huber threshold on log residuals

LAW = get_law("data_constrained")


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return pd.read_csv(CSV)


def paper_inputs(df: pd.DataFrame, chinchilla: dict[str, float] = C4) -> tuple[np.ndarray, ...]:
    """The law's inputs with U_N sized as the paper sizes it: the compute-optimal size
    for U_D under the held Chinchilla law (U_D / 19.6 for the C4 law)."""
    n, d, u = (df[c].to_numpy(dtype=float) for c in ("params", "tokens", "unique_tokens"))
    return repetition_inputs(n, d, u, optimal_unique_params(u, chinchilla))


def objective(params: dict[str, float], xs: tuple[np.ndarray, ...], loss: np.ndarray) -> float:
    """The paper's objective: the Huber loss (threshold DELTA; 0.5 r^2 inside, DELTA (|r|
    - DELTA/2) outside, as torch's) of the log residuals, summed over runs."""
    r = np.log(LAW.predict(params, *xs)) - np.log(loss)
    a = np.abs(r)
    return float(np.where(a < DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA)).sum())


@pytest.fixture(scope="module")
def joint(runs: pd.DataFrame) -> FitResult:
    """All seven parameters free, as ``--law data_constrained`` fits them (U_N = U_D/20)."""
    return fit_frame(runs, "data_constrained", bootstrap=0)


@pytest.fixture(scope="module")
def paper_way(runs: pd.DataFrame) -> FitResult:
    """R*_N and R*_D fitted as the paper fits them: the C4 law held, U_N its optimum."""
    stage1, stage2 = fit_two_stage(
        runs, chinchilla=C4, unique_params="optimal", bootstrap=200, seed=0
    )
    assert stage1 is None  # the five come from elsewhere, as in the paper
    return stage2


def test_the_data_and_the_objective_are_the_papers(runs: pd.DataFrame) -> None:
    """182 runs of 7M to 9B parameters, from one epoch up (the paper's description; its
    "up to 500 epochs" leaves out the 14M model's 9,000 on 100M tokens); at the published
    parameters our objective is the one the notebook printed, to float32's precision
    (1e-6), and the R^2 that of the paper's table."""
    assert len(runs) == 182 and runs["run"].is_unique
    assert runs["params"].min() == pytest.approx(7.1e6, rel=0.01)
    assert runs["params"].max() == pytest.approx(8.67e9)
    epochs = runs["tokens"] / runs["unique_tokens"]
    assert epochs.min() == 1.0 and epochs.max() == pytest.approx(9000.0)
    xs = paper_inputs(runs)
    loss = runs["loss"].to_numpy()
    assert objective(PUBLISHED, xs, loss) == pytest.approx(PUBLISHED_OBJECTIVE, rel=1e-6)
    predicted = LAW.predict(PUBLISHED, *xs)
    r2 = 1 - ((loss - predicted) ** 2).sum() / ((loss - loss.mean()) ** 2).sum()
    assert r2 == pytest.approx(PUBLISHED_R2, abs=5e-5)


def test_the_law_predicts_the_papers_figure_1_losses() -> None:
    """The repository's formula at the published parameters: 2.2256440889984477 for 6.34B
    parameters on 242B tokens of 25B unique, 2.2269634075087867 for 8.67B on 178B (the
    9.7-epoch model the better, as the README marks it)."""
    n, d, u = np.array([6.34e9, 8.67e9]), np.array([242e9, 178e9]), np.array([25e9, 25e9])
    loss = LAW.predict(PUBLISHED, *repetition_inputs(n, d, u, optimal_unique_params(u, C4)))
    assert loss == pytest.approx([2.2256440889984477, 2.2269634075087867], rel=1e-12)


def test_fitted_as_the_paper_fits_our_optimum_is_at_least_as_low(
    runs: pd.DataFrame, paper_way: FitResult
) -> None:
    """The same data, inputs and objective: ours may not be higher than the published
    point's (a tolerance of 1e-9 relative, rounding). It is lower, by 0.13 %: the
    published point is not the minimum of its own objective (measured: ours 0.0158047 at
    R*_N = 1.71, R*_D = 95)."""
    assert paper_way.converged and paper_way.fixed.keys() == C4.keys()
    assert paper_way.objective <= PUBLISHED_OBJECTIVE * (1 + 1e-9)
    # the fitter's objective is the paper's, evaluated at its own optimum
    at_ours = objective(paper_way.params, paper_inputs(runs), runs["loss"].to_numpy())
    assert paper_way.objective == pytest.approx(at_ours, rel=1e-12)


def test_the_published_constants_lie_inside_our_intervals(paper_way: FitResult) -> None:
    """Our point estimates are far from the published ones (R*_D 95 against 15.4), so the
    comparison is by the 95 % bootstrap intervals, which hold both published values
    (measured: R*_N [0.25, 14.4], R*_D [6.5, 1.6e10] -- unbounded above: the data
    cannot tell a large R*_D from an infinite one)."""
    for name in ("R_N", "R_D"):
        lo, hi = paper_way.intervals[name]
        assert lo < PUBLISHED[name] < hi, name
    assert paper_way.intervals["R_D"][1] > 1e4  # no upper bound on R*_D
    assert paper_way.intervals["R_N"][1] < 100  # but one on R*_N


def test_the_objective_is_flat_in_r_d_and_not_in_r_n(
    runs: pd.DataFrame, paper_way: FitResult
) -> None:
    """On a grid of R*_N (0.05 to 1,000) by R*_D (1 to 1e5), the points within 1 % of the
    lowest objective reach every R*_D from 10 to the grid's top, but R*_N only from
    0.66 to 8.6 (measured on this grid; on a finer one R*_D from 7.9, R*_N 0.62 to 10).
    The published point is inside that set (0.13 % above the minimum). No grid point is
    below our optimum: it is the minimum, not one of the nearby local ones (from the data
    law's default three values per R*, stage 2 stops in one, 0.02 % higher)."""
    xs, loss = paper_inputs(runs), runs["loss"].to_numpy()
    r_d = np.geomspace(1.0, 1e5, 61)
    r_n = np.geomspace(0.05, 1e3, 51)
    grid = np.array([[objective({**C4, "R_N": n, "R_D": d}, xs, loss) for n in r_n] for d in r_d])
    assert grid.min() >= paper_way.objective * (1 - 1e-9)
    near = grid <= 1.01 * paper_way.objective
    d_near, n_near = r_d[near.any(axis=1)], r_n[near.any(axis=0)]
    assert d_near.min() <= 10 and d_near.max() == r_d.max()  # flat up to the edge
    assert 0.3 < n_near.min() and n_near.max() < 20  # a factor of about 13
    assert objective(PUBLISHED, xs, loss) <= 1.01 * paper_way.objective


def test_excess_parameters_decay_faster_than_repeated_tokens(
    paper_way: FitResult, joint: FitResult
) -> None:
    """The paper's conclusion R*_D > R*_N (repeated tokens keep their value longer, so
    compute should go to epochs before parameters) holds in our fit the paper's way and
    in the joint fit of all seven parameters; and our paper-way fit predicts the same
    winner of Figure 1 as the published law (the 6.34B model on 242B tokens)."""
    assert paper_way.params["R_D"] > paper_way.params["R_N"]
    assert paper_way.derived["half_life_D"] > paper_way.derived["half_life_N"]
    assert joint.converged and joint.params["R_D"] > joint.params["R_N"]
    n, d, u = np.array([6.34e9, 8.67e9]), np.array([242e9, 178e9]), np.array([25e9, 25e9])
    smaller, larger = paper_way.predict(*repetition_inputs(n, d, u, optimal_unique_params(u, C4)))
    assert smaller < larger


def test_the_joint_fit_reaches_a_lower_objective_on_the_same_inputs(
    runs: pd.DataFrame, joint: FitResult
) -> None:
    """All seven free, on the inputs ``--law data_constrained`` reads (U_N = U_D/20):
    its objective may not exceed the published parameters' on those inputs (it is 60 %
    lower, measured 0.00636 against 0.01582: the C4 law held by the paper is not the
    best Chinchilla law for these runs)."""
    n, d, u = (runs[c].to_numpy(dtype=float) for c in ("params", "tokens", "unique_tokens"))
    published = objective(PUBLISHED, repetition_inputs(n, d, u), runs["loss"].to_numpy())
    assert joint.objective <= published * (1 + 1e-9)
