"""The multi-start search: damped Newton from a grid of starts, all of them at once,
narrowed in three stages to the few that run to convergence (:func:`_search`), and the
choice among its rows -- the best (:func:`_rank`, ties within :data:`_TIE`), distinct
local optima (:func:`_distinct_rows`) -- with their natural parameters
(:func:`_natural`). :func:`analysis.fit.core._fit_newton` sets the problem up and
reads the result; the bootstrap refits run on the same rows
(:mod:`analysis.fit.intervals`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.constraints import Constraints
from analysis.laws import Law, SumOfPowers
from analysis.newton import BatchState, newton, objective

__all__ = ["PATIENCE", "PRESCREEN"]

#: Starts that take the first Newton steps, by kind of law (``fit``'s ``prescreen``
#: None): the sums of powers, with their fused objective, afford 1,024; the others,
#: whose second derivatives go through the generic path, 256 -- on synthetic BNSL and
#: Kaplan sets the optimum's start ranked far inside the best 256 by objective (the
#: broken power laws' once their starts are moved to the data's level,
#: :attr:`Law.level_coords`; unlevelled, two breaks' optimum often ranked below 256).
#: After the first steps these laws also stop the search :data:`PATIENCE` iterations
#: after its best start has converged (or the law's own :attr:`Law.search_patience`),
#: since their grids hold starts that crawl into degenerate corners (an exponent at 0,
#: a break off the data) for hundreds of iterations.
PRESCREEN = {"sum_of_powers": 1024, "other": 256}
PATIENCE = 25

# Objectives within this relative distance of each other are equal as far as floating
# point can tell: runs that reached one optimum from different starts differ by ~1e-15.
_TIE = 1e-10


def _best_rows(f: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` lowest finite objectives (ties broken by position)."""
    return np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")[:count]


def _rank(f: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Order rows best first: the lowest objective, and among rows tied with the lowest,
    converged ones first (a run still crawling can be a rounding error below one that
    has converged to the same point)."""
    f_min = f.min()
    tied_conv = (f <= f_min + _TIE * abs(f_min)) & converged
    return np.lexsort((f, ~tied_conv))


def _distinct_rows(
    theta: np.ndarray, order: np.ndarray, count: int, tol: float = 1e-3
) -> np.ndarray:
    """Up to ``count`` rows of ``theta`` (taken in ``order``) that differ from each other."""
    chosen: list[int] = []
    for i in order:
        if all(np.abs(theta[i] - theta[j]).max() > tol for j in chosen):
            chosen.append(int(i))
            if len(chosen) == count:
                break
    return np.array(chosen, dtype=int)


def _natural(
    law: Law, prob: Any, theta: np.ndarray, centre: np.ndarray, cons: Constraints | None
) -> np.ndarray:
    """Natural parameters of rows of the engine's coordinates (free ones, if any)."""
    if cons is None:
        return law.to_params(law.shift(theta, centre, +1.0))
    full = cons.impose(law.shift(prob.full(theta), centre, +1.0))
    return cons.impose_natural(law.to_params(full))


def _search(
    law: Law,
    prob: Any,
    starts: np.ndarray,
    weights: np.ndarray,
    tol: float,
    *,
    max_iter: int,
    prescreen: int | None,
    screen_iter: int,
    keep: int,
) -> BatchState:
    """Run the search from ``starts`` (rows in the problem's coordinates) on ``prob``
    with point ``weights``, to the gradient tolerance ``tol``; the final state holds
    one row per start that ran to the end (``fit``'s ``prescreen``, ``screen_iter``
    and ``keep`` say how many)."""
    fused = isinstance(law, SumOfPowers)
    if prescreen is None:
        prescreen = PRESCREEN["sum_of_powers" if fused else "other"]
    patience = None if fused else (law.search_patience or PATIENCE)
    # The search narrows in three stages, all vectorised over starts: (1) the objective
    # at every start; (2) the best `prescreen` take `screen_iter` Newton steps together;
    # (3) the best `keep` of those continue to convergence. On the Epoch data and on
    # synthetic sets, the starts that end at the global optimum rank near the top at
    # every stage, so this finds the same optimum as running every start to the end, at
    # a fraction of the cost.
    if len(starts) > prescreen:
        (f0,) = objective(prob, starts, weights, order=0)
        starts = starts[_best_rows(f0, prescreen)]
    first_iter = min(screen_iter, max_iter) if len(starts) > keep else max_iter
    state = newton(prob, starts, weights, np.full(len(starts), tol), max_iter=first_iter)
    if len(starts) > keep:
        best = _best_rows(state.f, keep)
        rest = newton(prob, state.theta[best], weights, np.full(len(best), tol), max_iter=max_iter,
                      patience=patience)  # fmt: skip
        rest.nit += state.nit[best]
        state = rest
    return state
