"""Approach 2: the compute-optimal frontier from IsoFLOP profiles.

Runs trained at one compute budget C and several sizes N trace a profile of loss
against ``ln N`` whose minimum is ``N_opt(C)``; the slope of ``ln N_opt`` against
``ln C`` over the budgets is the exponent ``a`` of ``N_opt ∝ C^a``. Two ways to read
the profiles, chosen by ``method``:

``"porian"`` (default), as Porian et al. (2024, "Resolving Discrepancies in
Compute-Optimal Scaling of Language Models") do: a parabola in ``ln N`` fitted only to
the sizes around the profile's lowest run (a real profile is asymmetric in ``ln N``,
steeper on the small side, so a parabola over a wide span of sizes puts its vertex off
the minimum); the uncertainty of each vertex by a parametric bootstrap with the noise
the parabolas leave (pooled over the groups: one run per size gives no seeds to
resample); and a regression of ``ln N_opt`` on ``ln C`` weighted by those
uncertainties, whose slope interval is scaled up when the vertices scatter more than
their uncertainties say.

``"hoffmann"``, as Hoffmann et al. (2022) did: one parabola over every size of a
profile, and an unweighted regression.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from analysis.fit import loglog_line
from analysis.frontier import Frontier, require_columns, usable_rows
from analysis.io import DataWarning

__all__ = ["METHODS", "approach2", "isoflop_labels"]

#: How approach 2 reads a profile's optimum.
METHODS = ("porian", "hoffmann")


def _isoflop_groups(flops: np.ndarray, tol: float) -> np.ndarray:
    """Label runs whose budgets agree within a factor ``1 + tol`` of the group's smallest."""
    order = np.argsort(flops, kind="stable")
    labels = np.empty(len(flops), dtype=int)
    label, start = 0, flops[order[0]]
    for i in order:
        if flops[i] > start * (1 + tol):
            label, start = label + 1, flops[i]
        labels[i] = label
    return labels


def isoflop_labels(
    runs: pd.DataFrame,
    *,
    flops_col: str = "flops",
    group_tol: float = 0.1,
    group_col: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str]:
    """How approach 2 groups runs into IsoFLOP profiles.

    By ``group_col`` when given; else, when the runs carry a ``flops_target`` (the
    compute each was asked for, ``train.flops=C``), by it: runs asked for the same
    budget are one profile, whatever compute they achieved in whole steps, and runs
    without a target (not part of the IsoFLOP sweep) are left out; else by achieved
    ``flops_col`` within a factor ``1 + group_tol`` of the group's smallest.

    Returns
    -------
    rows, labels, budgets, grouping
        The runs grouped (a subset of ``runs``), a label per row, the budget C of each
        row's group (the asked target, or the geometric mean of the group's achieved
        compute), and ``"flops_target"``, ``"flops_tolerance"`` or ``group_col``.
    """
    if group_col is not None:
        labels = runs[group_col].to_numpy()
        grouping = group_col
    else:
        target = None
        if "flops_target" in runs.columns:
            target = pd.to_numeric(runs["flops_target"], errors="coerce").to_numpy(dtype=float)
        if target is not None and (np.isfinite(target) & (target > 0)).any():
            asked = np.isfinite(target) & (target > 0)
            runs, labels, grouping = runs.loc[asked], target[asked], "flops_target"
            return runs, labels, labels.copy(), grouping
        labels = _isoflop_groups(runs[flops_col].to_numpy(dtype=float), group_tol)
        grouping = "flops_tolerance"
    log_c = pd.Series(np.log(runs[flops_col].to_numpy(dtype=float)))
    budgets = np.exp(log_c.groupby(labels).transform("mean").to_numpy())
    return runs, labels, budgets, grouping


def _left_out(skipped: list[tuple[float, str]], n_groups: int) -> str:
    """One line on the IsoFLOP groups left out: how many for each reason, a few budgets."""
    parts = []
    for reason in dict.fromkeys(r for _, r in skipped):
        budgets = [f"{c:.3g}" for c, r in skipped if r == reason]
        shown = ", ".join(budgets[:3]) + (", ..." if len(budgets) > 3 else "")
        parts.append(f"{len(budgets)} with {reason} (C = {shown})")
    return f"left out {len(skipped)} of {n_groups} IsoFLOP groups: " + "; ".join(parts)


def approach2(
    runs: pd.DataFrame,
    *,
    flops_col: str = "flops",
    group_tol: float = 0.1,
    group_col: str | None = None,
    level: float = 0.95,
    method: str = "porian",
    span: float = 4.0,
    bootstrap: int = 200,
    seed: int = 0,
) -> Frontier:
    """The frontier from IsoFLOP profiles (Hoffmann's approach 2).

    Runs (one final point each) are grouped by budget -- by ``group_col`` when given;
    else, when the runs carry a ``flops_target`` (the compute they were asked for, an
    IsoFLOP sweep's ``train.flops=C``), by that, with no option needed; else runs whose
    ``flops_col`` agree within a factor ``1 + group_tol`` (see :func:`isoflop_labels`).
    In each group a parabola ``loss = c0 + c1 ln N + c2 (ln N)^2`` is fitted by least
    squares, its vertex being ``N_opt`` for the group's budget (the asked target, or
    else the geometric mean of its flops), and ``ln N_opt`` is regressed on ``ln C``.

    Parameters
    ----------
    method
        ``"porian"`` (default): the parabola through the sizes within a factor
        ``span`` of the group's lowest run (at least three: else the three nearest in
        ``ln N``), each vertex's uncertainty from ``bootstrap`` parametric resamples
        with the noise the parabolas leave (pooled over the groups), and a regression
        weighted by them.
        ``"hoffmann"``: the parabola through every size, an unweighted regression.
    span
        ``"porian"``: how far from the lowest run, as a factor in N either way, the
        sizes the parabola is fitted to reach (default 4: 16x in all, where a
        profile's asymmetry still moves the vertex little).
    bootstrap, seed
        ``"porian"``: resamples per group, and the seed they are drawn with.

    Groups with fewer than three sizes, a parabola that opens downwards, or a minimum
    at the edge of (or outside) the sizes tried are left out with a warning: their
    optimum is not measured. :attr:`Frontier.grouping` says how the runs were grouped,
    :attr:`Frontier.method` how each optimum was read.

    Raises
    ------
    ValueError
        When columns are missing, an option is out of range, or fewer than two groups
        give a minimum.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {', '.join(METHODS)}")
    if not span > 1:
        raise ValueError(f"span={span}: expected a factor above 1")
    if method == "porian" and bootstrap < 20:
        raise ValueError(f"bootstrap={bootstrap}: at least 20 resamples give a vertex's spread")
    require_columns(
        runs, ["params", "loss", flops_col] + ([group_col] if group_col else []), "approach 2"
    )
    data = usable_rows(runs, ["params", "loss", flops_col])
    if len(data) == 0:
        raise ValueError("approach 2: no runs with positive params, loss and flops")
    grouped, labels, budgets, grouping = isoflop_labels(
        data, flops_col=flops_col, group_tol=group_tol, group_col=group_col
    )
    if len(grouped) < len(data):
        dropped = data.loc[~data.index.isin(grouped.index)]
        names = ""
        if "run" in dropped.columns:
            names = ": " + ", ".join(map(str, dropped["run"].head(5)))
            names += ", ..." if len(dropped) > 5 else ""
        warnings.warn(
            "approach 2 groups runs by the compute they were asked for (flops_target): "
            f"left out {len(dropped)} run(s) without one{names}",
            DataWarning,
            stacklevel=2,
        )
    data = grouped
    groups, skipped = [], []
    for label in pd.unique(labels):
        members = data.loc[labels == label]
        budget = float(budgets[labels == label][0])
        log_n = np.log(members["params"].to_numpy(dtype=float))
        loss = members["loss"].to_numpy(dtype=float)
        if len(np.unique(log_n)) < 3:
            skipped.append((budget, "fewer than 3 sizes"))
            continue
        if method == "porian":
            sizes = np.unique(log_n)
            lowest = int(np.searchsorted(sizes, log_n[np.argmin(loss)]))
            if lowest in (0, len(sizes) - 1):
                skipped.append((budget, "minimum at the edge of the sizes tried"))
                continue
            near = _around(sizes, lowest, math.log(span))
            keep = np.isin(log_n, near)
            log_n, loss = log_n[keep], loss[keep]
        parabola = _Parabola.fit(log_n, loss)
        if parabola.c2 <= 0:
            skipped.append((budget, "no minimum (the parabola opens downwards)"))
            continue
        if not log_n.min() <= parabola.vertex <= log_n.max():
            skipped.append((budget, "minimum outside the sizes tried"))
            continue
        groups.append((label, budget, len(members), log_n, loss, parabola))
    left_out = _left_out(skipped, len(groups) + len(skipped))
    if len(groups) < 2:
        raise ValueError(
            "approach 2 needs at least two IsoFLOP groups with a measured minimum, "
            f"got {len(groups)}" + (f" ({left_out})" if skipped else "")
        )
    if skipped:
        warnings.warn(f"approach 2 {left_out}", stacklevel=2)

    spreads = np.full(len(groups), math.nan)
    if method == "porian":
        spreads = _vertex_spreads(groups, bootstrap, seed)
    rows = []
    for (label, budget, n_runs, log_n, _, parabola), spread in zip(groups, spreads, strict=True):
        n_opt = float(np.exp(parabola.vertex))
        rows.append(
            {
                "flops": budget,
                "params_opt": n_opt,
                "tokens_opt": budget / (6 * n_opt),
                "loss_opt": parabola.minimum,
                "curvature": parabola.c2,
                "n_runs": n_runs,
                "n_fitted": len(log_n),
                "log_params_opt_sd": float(spread),
                "group": label,
            }
        )
    points = pd.DataFrame(rows).sort_values("flops", ignore_index=True)
    x, y = points["flops"].to_numpy(), points["params_opt"].to_numpy()
    sd = points["log_params_opt_sd"].to_numpy()
    if np.isfinite(sd).all() and (sd > 0).all():
        slope, intercept, interval = _weighted_line(np.log(x), np.log(y), 1 / sd**2, level)
    else:
        line = loglog_line(x, y, level)
        slope, intercept, interval = line.slope, line.intercept, line.slope_interval
    return Frontier(
        approach=2,
        a=slope,
        interval=interval,
        points=points,
        b=1 - slope,
        coef=math.exp(intercept),
        level=level,
        grouping=grouping,
        method=method,
    )


def _around(sizes: np.ndarray, centre: int, half_width: float) -> np.ndarray:
    """The sizes (``ln N``, sorted, distinct) within ``half_width`` of ``sizes[centre]``;
    at least the three nearest to it."""
    distance = np.abs(sizes - sizes[centre])
    near = sizes[distance <= half_width + 1e-12]
    return near if len(near) >= 3 else sizes[np.sort(np.argsort(distance, kind="stable")[:3])]


class _Parabola:
    """``loss = c0 + c1 u + c2 u^2`` with ``u = ln N - centre`` (centring keeps the normal
    equations well conditioned)."""

    def __init__(self, centre: float, c2: float, c1: float, c0: float) -> None:
        self.centre, self.c2, self.c1, self.c0 = centre, float(c2), float(c1), float(c0)

    @classmethod
    def fit(cls, log_n: np.ndarray, loss: np.ndarray) -> _Parabola:
        centre = float(log_n.mean())
        return cls(centre, *np.polyfit(log_n - centre, loss, 2))

    @property
    def vertex(self) -> float:
        return self.centre - self.c1 / (2 * self.c2)

    @property
    def minimum(self) -> float:
        return self.c0 - self.c1 * self.c1 / (4 * self.c2)

    def residuals(self, log_n: np.ndarray, loss: np.ndarray) -> np.ndarray:
        u = log_n - self.centre
        return loss - (self.c0 + self.c1 * u + self.c2 * u * u)


def _vertex_spreads(groups: list, bootstrap: int, seed: int) -> np.ndarray:
    """The s.d. of each group's ``ln N_opt`` over parametric resamples: the fitted
    parabola plus Gaussian noise of the residual s.d. pooled over every group (NaN for
    all when no group has more runs than a parabola's three parameters)."""
    rss = sum(float((p.residuals(log_n, loss) ** 2).sum()) for *_, log_n, loss, p in groups)
    dof = sum(len(log_n) - 3 for *_, log_n, _, _ in groups)
    if dof <= 0 or rss <= 0:
        warnings.warn(
            "approach 2: no run beyond the three a parabola needs in any group, so the "
            "noise of the losses is unknown: the regression is unweighted",
            DataWarning,
            stacklevel=3,
        )
        return np.full(len(groups), math.nan)
    sigma = math.sqrt(rss / dof)
    rng = np.random.default_rng(seed)
    spreads = []
    for *_, log_n, loss, p in groups:
        fitted = loss - p.residuals(log_n, loss)
        draws = fitted + rng.normal(0.0, sigma, (bootstrap, len(loss)))
        u = log_n - p.centre
        design = np.stack([u * u, u, np.ones_like(u)], axis=1)
        coef, *_ = np.linalg.lstsq(design, draws.T, rcond=None)  # one column per draw
        c2, c1 = coef[0], coef[1]
        ok = c2 > 0
        vertex = p.centre - c1[ok] / (2 * c2[ok])
        inside = (vertex >= log_n.min()) & (vertex <= log_n.max())
        if inside.sum() < bootstrap / 2:
            # most draws have no minimum among the sizes fitted: the noise does not
            # resolve it, so all that is known is that it lies in the window
            spreads.append(float(np.ptp(log_n)) / 2)
        else:
            spreads.append(float(np.std(vertex[inside], ddof=1)))
    return np.asarray(spreads)


def _weighted_line(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, level: float
) -> tuple[float, float, tuple[float, float] | None]:
    """Weighted least squares of ``y`` on ``x``: slope, intercept and the slope's
    t-interval, its variance scaled up by the reduced chi-square when the points scatter
    more than their weights say (never down). None for the interval with two points."""
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float((w * (x - xm) ** 2).sum())
    if sxx == 0:
        raise ValueError("approach 2: every IsoFLOP group has the same budget")
    slope = float((w * (x - xm) * (y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    dof = len(x) - 2
    if dof < 1:
        return slope, intercept, None
    from scipy import stats  # imported here: scipy.stats is slow to import

    chi2 = float((w * (y - intercept - slope * x) ** 2).sum())
    se = math.sqrt(max(1.0, chi2 / dof) / sxx)
    tq = float(stats.t.ppf(0.5 + level / 2, dof))
    return slope, intercept, (slope - tq * se, slope + tq * se)
