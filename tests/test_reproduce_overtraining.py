"""Gadre et al. (2024)'s extrapolations to 1.4B and 6.9B parameters reproduced from the
paper's released runs (arXiv:2403.08540; data in ``tests/data/gadre2024``).

The paper's default configuration (its Table 2) fits the over-training law
``L(C, M) = E + (A·M^eta + B·M^-eta)·C^-eta`` to five small models per training set --
the four sizes of 11M to 411M parameters at M = 20 tokens per parameter and the 11M
model at M = 320 -- on the C4 eval loss, with C = 6ND, N the parameter count with
embeddings and D = M·N. It predicts the loss of the 1.4B model over-trained at M = 640
(RedPajama; C4 and RefinedWeb have it at M = 80 and M = 320) and of the 6.9B model at
M = 20. The downstream step fits ``Err(L) = eps - k·exp(-gamma·L)`` to the same five
models plus the 1.4B model at M = 20 (six: three parameters need that many), Err the
top-1 error averaged over the paper's 17-task subset, and predicts the large models'
error from their predicted loss.

Expected values come from the paper, never from our fitter: for RedPajama the relative
errors the repository's notebook prints for its Figure 1 (``scaling_explorer.ipynb``,
cell "reproduce figure 1"); for C4 and RefinedWeb, which the same notebook fits but
prints nothing for, those of the repository's fitting procedure (``scipy`` least squares
of the loss from its 128 starts, the lowest residual kept) run on these rows -- the
procedure that gives the published RedPajama numbers to the four places printed.

The paper's fit squares residuals of the loss; ours minimises the Huber loss (delta =
1e-3) of log residuals. With four parameters and five points one degree of freedom is
left, so the objective moves the extrapolation: both fits pass through the over-trained
11M point exactly and differ in how they share the misfit of the other four. Our default
search reaches the optimum of our objective (every start run to convergence finds no
lower one); the paper's parameters score 19 % worse on it (RedPajama). Our predictions are
held to be no worse than the paper's by more than half a point of relative error --
less than the paper's own published errors (0.71 % and 0.73 %).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.error_map import ErrorMap, fit_error_map
from analysis.fit import FitResult, fit
from analysis.laws import get_law

CSV = Path(__file__).resolve().parent / "data" / "gadre2024" / "models.csv"
LAW = get_law("overtraining")

DATASETS = ("c4_original", "rpj", "rw_original")
SMALL = ("d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8")
# The large models held out: (dataset, model, multiplier); M = 20 * multiplier.
TARGETS = (
    ("rpj", "open_lm_1b", 32.0),
    ("rpj", "open_lm_7b", 1.0),
    ("c4_original", "open_lm_1b", 4.0),
    ("c4_original", "open_lm_7b", 1.0),
    ("rw_original", "open_lm_1b", 16.0),
    ("rw_original", "open_lm_7b", 1.0),
)

# |predicted - measured| / measured of the paper's fit. RedPajama: printed by the
# notebook (0.7103 %, 0.7320 %; 3.6365 %, 0.0464 %). C4, RefinedWeb: the repository's
# procedure on these rows (the module docstring).
PAPER_LOSS_ERROR = {
    ("rpj", "open_lm_1b", 32.0): 0.007103,
    ("rpj", "open_lm_7b", 1.0): 0.007320,
    ("c4_original", "open_lm_1b", 4.0): 0.014979,
    ("c4_original", "open_lm_7b", 1.0): 0.042952,
    ("rw_original", "open_lm_1b", 16.0): 0.000052,
    ("rw_original", "open_lm_7b", 1.0): 0.016193,
}
PAPER_ERROR_ERROR = {
    ("rpj", "open_lm_1b", 32.0): 0.036365,
    ("rpj", "open_lm_7b", 1.0): 0.000464,
    ("c4_original", "open_lm_1b", 4.0): 0.095818,
    ("c4_original", "open_lm_7b", 1.0): 0.001370,
    ("rw_original", "open_lm_1b", 16.0): 0.056167,
    ("rw_original", "open_lm_7b", 1.0): 0.029388,
}
# Half a point of relative error on the loss (see the module docstring). On the error,
# twice that: Err(L) turns a relative change of the loss into one of the error larger by
# its elasticity gamma·L·(eps - Err)/Err, about 1.4 at these losses (gamma = 0.71, L =
# 2.4, eps = 0.86, Err = 0.47 in the paper's RedPajama fit).
LOSS_TOLERANCE = 0.005
ERROR_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def models() -> pd.DataFrame:
    return pd.read_csv(CSV)


def paper_fit_rows(models: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The five models the paper fits its loss law to (Table 2's default)."""
    d = models[models["dataset"] == dataset]
    at_20 = d["model"].isin(SMALL) & (d["multiplier"] == 1.0)
    over_trained = (d["model"] == SMALL[0]) & (d["multiplier"] == 16.0)
    return d[at_20 | over_trained]


def law_inputs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(C, M)`` as the paper counts them: C = 6ND, M = D/N (= 20 x multiplier)."""
    n = rows["params"].to_numpy(dtype=float)
    d = rows["tokens"].to_numpy(dtype=float)
    return 6 * n * d, d / n


def row(models: pd.DataFrame, dataset: str, model: str, multiplier: float) -> pd.Series:
    """The one model of ``dataset`` with architecture ``model`` at ``multiplier``."""
    match = models[
        (models["dataset"] == dataset)
        & (models["model"] == model)
        & (models["multiplier"] == multiplier)
    ]
    assert len(match) == 1, (dataset, model, multiplier)
    return match.iloc[0]


@pytest.fixture(scope="module")
def loss_fits(models: pd.DataFrame) -> dict[str, FitResult]:
    """Our ``overtraining`` fit of each training set, the paper's way. ``fit`` asks for
    twice as many points as parameters (``analysis.fit.min_points``); the paper fits the
    law's four parameters to five models, so the rule is relaxed to one point per
    parameter for these fits alone (``fit``'s ``min_points``)."""
    fits = {}
    for dataset in DATASETS:
        rows = paper_fit_rows(models, dataset)
        fits[dataset] = fit(
            LAW, law_inputs(rows), rows["loss_c4_eval"].to_numpy(dtype=float),
            x_names=("flops", "tokens_per_param"), y_name="loss_c4_eval",
            min_points=len(LAW.param_names),
        )  # fmt: skip
    return fits


@pytest.fixture(scope="module")
def error_maps(models: pd.DataFrame) -> dict[str, ErrorMap]:
    """Err(L) of each training set on the paper's six models: the five of the loss fit
    and the 1.4B model at M = 20."""
    maps = {}
    for dataset in DATASETS:
        rows = pd.concat(
            [paper_fit_rows(models, dataset), row(models, dataset, "open_lm_1b", 1.0).to_frame().T]
        )
        maps[dataset] = fit_error_map(
            rows["loss_c4_eval"].to_numpy(dtype=float), rows["err_17_tasks"].to_numpy(dtype=float)
        )
    return maps


def predicted_loss(
    result: FitResult, target: pd.Series, tokens_per_param: float | None = None
) -> float:
    """The law's loss at the target's compute, at its own M or at ``tokens_per_param``."""
    c, m = law_inputs(target.to_frame().T)
    if tokens_per_param is not None:
        m = np.full_like(m, tokens_per_param)
    return float(LAW.predict(result.params, c, m)[0])


def test_the_table_is_the_released_testbed(models: pd.DataFrame) -> None:
    """104 models on three training sets; every file states D = 20 x multiplier x N; at
    M = 20 the loss falls and the error falls with every size -- a misread row would show."""
    assert len(models) == 104 and not models["name"].duplicated().any()
    assert models.groupby("dataset").size().to_dict() == {
        "c4_original": 34, "rpj": 35, "rw_original": 35
    }  # fmt: skip
    assert (models["tokens"] == 20 * models["multiplier"] * models["params"]).all()
    assert models["err_17_tasks"].between(0.3, 1.0).all()
    for _, d in models[models["multiplier"] == 1.0].groupby("dataset"):
        d = d.sort_values("params")
        assert d["loss_c4_eval"].is_monotonic_decreasing
        assert d["err_17_tasks"].is_monotonic_decreasing


def test_the_papers_default_fits_five_models_per_training_set(models: pd.DataFrame) -> None:
    for dataset in DATASETS:
        rows = paper_fit_rows(models, dataset)
        assert len(rows) == 5
        _, m = law_inputs(rows)
        assert sorted(m) == [20.0, 20.0, 20.0, 20.0, 320.0]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t[0]}-{t[1]}-M{20 * t[2]:g}")
def test_losses_extrapolate_as_well_as_the_papers_fit(
    models: pd.DataFrame, loss_fits: dict[str, FitResult], target: tuple[str, str, float]
) -> None:
    """Published (RedPajama): 0.71 % at 1.4B/M = 640, 0.73 % at 6.9B/M = 20; ours 0.40 %
    and 0.42 %, both predictions high, as the paper's. On C4 the 6.9B model's loss lies
    4.3 % above the paper's prediction and 4.7 % above ours: both fits miss it alike."""
    dataset, model, multiplier = target
    measured = row(models, dataset, model, multiplier)
    assert loss_fits[dataset].converged
    ours = predicted_loss(loss_fits[dataset], measured) / measured["loss_c4_eval"] - 1
    assert abs(ours) <= PAPER_LOSS_ERROR[target] + LOSS_TOLERANCE


def test_five_models_leave_the_over_training_term_unidentified(
    models: pd.DataFrame, loss_fits: dict[str, FitResult]
) -> None:
    """Two values of M (20 and 320) for a term with a coefficient and an exponent of its
    own: the fit converges and says the data do not pin it. M_opt = (B/A)^(1/(2 eta))
    comes out between 3 and 8, not near Chinchilla's 20 (7.4 on RedPajama, 5 to 35 over
    200 bootstrap resamples of the five models). The one over-trained model is what
    the M term is spent on: the fit passes through it exactly."""
    for dataset, result in loss_fits.items():
        assert result.converged and not result.identified
        assert any("2 distinct values of M" in reason for reason in result.identification)
        over_trained = paper_fit_rows(models, dataset)["multiplier"].to_numpy() == 16.0
        assert abs(result.residuals[over_trained][0]) < 1e-6
        assert np.abs(result.residuals[~over_trained]).max() > 1e-3


@pytest.mark.parametrize("dataset, multiplier", [("rpj", 32.0), ("rw_original", 16.0)])
def test_the_over_training_term_carries_the_extrapolation(
    models: pd.DataFrame, loss_fits: dict[str, FitResult], dataset: str, multiplier: float
) -> None:
    """Read off the law's M = 20 curve at the same compute -- as if the over-trained 1.4B
    model were compute-optimal -- the loss comes out 3.8 % (RedPajama, M = 640) and 3.4 %
    (RefinedWeb, M = 320) too low; the law at the model's own M is within the paper's 1 %.
    (On C4, whose 1.4B model is over-trained only to M = 80, it is the other way round:
    the M = 20 curve misses by 0.6 %, the law by 1.3 %, its curvature in M set by the
    single point at M = 320.)"""
    measured = row(models, dataset, "open_lm_1b", multiplier)
    loss = measured["loss_c4_eval"]
    at_own_m = abs(predicted_loss(loss_fits[dataset], measured) / loss - 1)
    as_if_20 = abs(predicted_loss(loss_fits[dataset], measured, tokens_per_param=20.0) / loss - 1)
    assert at_own_m < 0.01 < 0.02 < as_if_20


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t[0]}-{t[1]}-M{20 * t[2]:g}")
def test_average_error_extrapolates_as_well_as_the_papers_fit(
    models: pd.DataFrame,
    loss_fits: dict[str, FitResult],
    error_maps: dict[str, ErrorMap],
    target: tuple[str, str, float],
) -> None:
    """The two steps composed: Err at the predicted loss. Published (RedPajama): 3.64 %
    at 1.4B/M = 640 and 0.05 % at 6.9B; ours 3.2 % and 0.4 %, both inside the published
    range. The paper's 0.05 % owes something to luck: at the measured loss its Err(L) is
    1.0 % low, and its loss prediction, 0.7 % high, cancels that."""
    dataset, model, multiplier = target
    measured = row(models, dataset, model, multiplier)
    err = float(error_maps[dataset].predict(predicted_loss(loss_fits[dataset], measured)))
    ours = err / measured["err_17_tasks"] - 1
    assert abs(ours) <= PAPER_ERROR_ERROR[target] + ERROR_TOLERANCE
    if dataset == "rpj":
        assert abs(ours) <= max(PAPER_ERROR_ERROR[t] for t in TARGETS if t[0] == "rpj")


def test_the_error_map_is_the_papers_and_needs_the_1b_model(
    models: pd.DataFrame, error_maps: dict[str, ErrorMap]
) -> None:
    """On its six models Err(L) has one least-squares optimum, ours and the paper's alike:
    on RedPajama the repository's fit gives eps = 0.85699, k = 2.2065, gamma = 0.71459.
    On the five small models alone it cannot be fitted (three parameters need six
    points), which is why the paper adds the 1.4B model at M = 20."""
    assert error_maps["rpj"].params == pytest.approx(
        {"eps": 0.85699, "k": 2.2065, "gamma": 0.71459}, rel=1e-4
    )
    rows = paper_fit_rows(models, "rpj")
    with pytest.raises(ValueError, match="at least 6 points"):
        fit_error_map(rows["loss_c4_eval"], rows["err_17_tasks"])
