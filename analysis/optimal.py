"""The compute-optimal frontier: how to split a compute budget C between size and data.

Hoffmann et al. (2022) estimate the exponent ``a`` of ``N_opt ∝ C^a`` three ways, and so
does this module:

1. :func:`approach1` -- the lower envelope of loss against compute over all training
   curves: at each budget C, the model size whose curve is lowest there. From
   warmup-stable-decay records (several budgets cut from one trunk), only the decayed
   end of each budget is a point a run trained to that budget reaches, and the curves
   are drawn through those.
2. :func:`approach2` -- IsoFLOP profiles: runs grouped by budget (the compute they were
   asked for, when the records say), a parabola of loss in ``log N`` per group, its
   vertex giving ``N_opt(C)``.
3. :func:`approach3` -- the closed form from a fitted ``L = E + A/N^α + B/D^β``:
   minimising it under ``C = 6ND`` gives ``N_opt = G (C/6)^a`` with ``a = β/(α+β)`` and
   ``G = (αA / (βB))^(1/(α+β))``.

Approaches 1 and 2 end with a least-squares line of ``log N_opt`` on ``log C``; its
slope is ``a`` and its t-interval is the interval reported. Throughout, ``C = 6ND``, so
``D_opt ∝ C^b`` with ``b = 1 - a``.

:func:`allocate` turns a chinchilla fit into a recommendation for one budget, with
bootstrap intervals (it lives in :mod:`analysis.allocation`, and is importable from
here).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.allocation import Allocation, allocate, chinchilla_params, optimal_params
from analysis.allocation import plain as _plain
from analysis.fit import FitResult, loglog_line
from analysis.io import DECAYED_SCHEDULES, DataWarning

__all__ = [
    "Allocation",
    "Frontier",
    "allocate",
    "approach1",
    "approach2",
    "approach3",
    "isoflop_labels",
    "optimal_params",
]


@dataclass
class Frontier:
    """An estimate of the compute-optimal frontier ``N_opt = coef * C^a``.

    Attributes
    ----------
    approach
        1, 2 or 3 (Hoffmann et al.'s numbering).
    a
        Exponent of ``N_opt ∝ C^a``.
    interval
        Interval of ``a`` at ``level`` (t-interval of the log-log regression for
        approaches 1 and 2, bootstrap percentiles for approach 3), or None.
    points
        Approach 1: the envelope (``flops, params, loss, run, params_run``: ``params`` is
        ``N_opt``, ``run`` and ``params_run`` the lowest curve there); approach 2: one row per
        IsoFLOP group (``flops, params_opt, tokens_opt, loss_opt, curvature, n_runs``,
        the parabola being ``loss = loss_opt + curvature * (ln N - ln params_opt)^2``);
        approach 3: a grid of budgets (``flops, params_opt, tokens_opt, loss_opt``).
    b
        Exponent of ``D_opt ∝ C^b`` (``1 - a`` under ``C = 6ND``).
    coef
        ``N_opt = coef * C^a``.
    level
        Confidence level of ``interval``.
    envelope
        Approach 1: which points the curves were drawn through, ``"final"`` (the
        decayed end of each record) or ``"all"`` (every evaluation).
    grouping
        Approach 2: how runs were grouped into IsoFLOP profiles: ``"flops_target"`` (the
        compute each run was asked for), ``"flops_tolerance"`` (achieved compute within
        a factor ``1 + group_tol``) or the name of the ``group_col`` used.
    resampled, n_groups
        Approach 3: what the bootstrap behind ``interval`` drew (``"trunks"``,
        ``"runs"``, ``"points"``) and how many there were (see
        :attr:`analysis.fit.FitResult.resampled`).
    identified, identification
        Approach 3: those of the fit it comes from (see
        :attr:`analysis.result.FitResult.identified`); always True for approaches 1
        and 2, which fit no law.
    """

    approach: int
    a: float
    interval: tuple[float, float] | None
    points: pd.DataFrame
    b: float | None = None
    coef: float | None = None
    level: float = 0.95
    envelope: str | None = None
    grouping: str | None = None
    resampled: str | None = None
    n_groups: int | None = None
    identified: bool = True
    identification: list[str] = field(default_factory=list)

    def params_opt(self, flops: float | np.ndarray) -> np.ndarray:
        """``N_opt`` at the given budgets, on this frontier."""
        if self.coef is None:
            raise ValueError("this frontier has no coefficient")
        return self.coef * np.asarray(flops, dtype=float) ** self.a

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"approach", "a", "interval", "b", "coef", "envelope", "grouping",
        "resampled", "n_groups", "identified", "identification", "points": [records]}``
        (None where not applicable)."""
        records = [
            {str(k): _plain(v) for k, v in row.items()}
            for row in self.points.to_dict(orient="records")
        ]
        return {
            "approach": int(self.approach),
            "a": _plain(self.a),
            "interval": None if self.interval is None else [_plain(v) for v in self.interval],
            "b": _plain(self.b),
            "coef": _plain(self.coef),
            "envelope": self.envelope,
            "grouping": self.grouping,
            "resampled": self.resampled,
            "n_groups": None if self.n_groups is None else int(self.n_groups),
            "identified": bool(self.identified),
            "identification": list(self.identification),
            "points": records,
        }


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} needs column(s) {', '.join(map(repr, missing))}; "
            f"the table has {', '.join(map(str, df.columns))}"
        )


def _usable(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose ``columns`` are all finite and positive (e.g. drops step 0, flops 0)."""
    values = df[list(columns)].to_numpy(dtype=float)
    keep = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    return df.loc[keep]


# --------------------------------------------------------------------------------------
# Approach 1: the lower envelope of the training curves
# --------------------------------------------------------------------------------------


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean; the window shrinks at the ends so no point is lost."""
    half = window // 2
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    lo = np.maximum(idx - half, 0)
    hi = np.minimum(idx + half + 1, len(values))
    return (csum[hi] - csum[lo]) / (hi - lo)


#: Decayed points of one size whose compute agrees within this factor are one budget
#: (seeds, learning rates): the best setting of each seed, averaged over the seeds,
#: stands for it.
_SAME_BUDGET = 1.02


@dataclass
class _Curve:
    """A curve the envelope is read from: one size, points sorted by log compute."""

    size: float
    log_c: np.ndarray
    loss: np.ndarray
    runs: np.ndarray  # the run each point comes from


def _envelope_points(data: pd.DataFrame, points: str) -> str:
    """``"final"`` or ``"all"``: which points of the curves approach 1 reads."""
    if points not in ("auto", "final", "all"):
        raise ValueError(f"points={points!r}: expected 'auto', 'final' or 'all'")
    if points != "auto":
        return points
    schedules = set(data["schedule"].dropna()) if "schedule" in data.columns else set()
    if schedules & set(DECAYED_SCHEDULES):
        return "final"
    if "cosine" in schedules:
        warnings.warn(
            "approach 1 reads the envelope off whole cosine learning curves, whose "
            "intermediate points lie above what a run trained to that budget reaches (its "
            "learning rate has not decayed there), so the envelope is biased upwards; for "
            "decayed points at many budgets train with optim.schedule=wsd_s and "
            "train.budgets_per_param",
            DataWarning,
            stacklevel=3,
        )
    return "all"


def _run_curves(data: pd.DataFrame, smooth: int) -> list[_Curve]:
    """Every evaluation: one curve per run."""
    out = []
    for run, g in data.groupby("run", sort=True):
        g = g.sort_values("flops")
        loss = g["loss"].to_numpy(dtype=float)
        if smooth > 1:
            loss = _running_mean(loss, smooth)
        out.append(
            _Curve(
                size=float(g["params"].iloc[0]),
                log_c=np.log(g["flops"].to_numpy(dtype=float)),
                loss=loss,
                runs=np.full(len(g), run, dtype=object),
            )
        )
    return out


def _decayed_curves(data: pd.DataFrame) -> list[_Curve]:
    """The last point of each record (the decayed end of its budget): one curve per size
    through them, in order of compute, the lowest point standing for a budget that
    several records of the size reached (within a factor ``_SAME_BUDGET``)."""
    order = [c for c in ("run", "step", "flops") if c in data.columns]
    ends = data.sort_values(order).groupby("run", sort=False).tail(1)
    out = []
    for size, g in ends.groupby("params", sort=True):
        g = g.sort_values("flops")
        flops = g["flops"].to_numpy(dtype=float)
        # A new budget starts where compute passes the first of the current one by the factor.
        starts = np.ones(len(g), dtype=bool)
        first = flops[0]
        for i in range(1, len(g)):
            if flops[i] > first * _SAME_BUDGET:
                first = flops[i]
            else:
                starts[i] = False
        g = g.assign(_budget=np.cumsum(starts) - 1)
        # The lowest record of each seed (the best of its settings: learning rates), then
        # the mean over seeds: the lowest of several seeds would be biased low, the more
        # so the more seeds a size has.
        seeds = g["seed"].fillna(-1) if "seed" in g.columns else pd.Series(0, index=g.index)
        best = g.loc[g.assign(_seed=seeds).groupby(["_budget", "_seed"])["loss"].idxmin()]
        kept = (
            best.groupby("_budget")
            .agg(flops=("flops", "mean"), loss=("loss", "mean"), run=("run", "first"))
            .sort_values("flops")
        )
        out.append(
            _Curve(
                size=float(size),
                log_c=np.log(kept["flops"].to_numpy(dtype=float)),
                loss=kept["loss"].to_numpy(dtype=float),
                runs=kept["run"].to_numpy(dtype=object),
            )
        )
    return out


def approach1(
    curves: pd.DataFrame,
    *,
    n_bins: int = 60,
    smooth: int = 1,
    refine: bool = True,
    level: float = 0.95,
    points: str = "auto",
) -> Frontier:
    """The frontier from the lower envelope of loss against compute (Hoffmann's approach 1).

    Each curve is interpolated (linearly in ``log flops``) onto ``n_bins`` log-spaced
    budgets spanning all curves; at each budget the size whose curve is lowest there is
    the envelope's size. Budgets where that is the smallest or the largest size of the
    sweep are left out: there the optimum may lie outside the sizes trained, and the
    envelope only says "at most this small" (or "at least this big"). ``log N`` of the
    remaining envelope points is regressed on ``log C``.

    Which points the curves go through depends on how the runs were trained:

    * warmup-stable-decay records (``schedule`` ``wsd`` or ``wsd_s``): only the last
      point of each record, the decayed end of its budget, is what a run trained to that
      budget reaches; the trunk's stable-phase evaluations before it sit at an
      un-decayed learning rate and are ignored. Each size's curve is then the
      piecewise-linear curve through its decayed points in order of compute (one per
      budget; where several records of a size reach one budget, the lowest of each
      seed -- the best learning rate, say -- averaged over the seeds), and the
      envelope is the lower envelope of those curves.
      With several budgets per size this is the whole-curve envelope without the bias
      of un-decayed points.
    * cosine runs: every evaluation, one curve per run (the lowest curve of each size at
      each budget), as Hoffmann et al. did; a run's intermediate points are biased
      upwards (its learning rate has not decayed there), which a :class:`DataWarning`
      says once.

    Parameters
    ----------
    curves
        Long-form curves: columns ``run, params, flops, loss``, many rows per run
        (rows with non-positive flops, e.g. step 0, are ignored), and ``schedule`` as
        :func:`analysis.io.load_curves` gives it (and ``seed``). Several runs of one
        size count as one size: the lowest curve is used, or for decayed points the
        lowest of each seed averaged over the seeds.
    n_bins
        Number of budgets at which the envelope is read.
    smooth
        Window (in evaluations) of a running mean applied to each curve first. Noise
        between evaluations makes the envelope jump between sizes whose losses differ
        by less than the noise; averaging a few evaluations damps that. Not applied to
        decayed points, which are each their own budget.
    refine
        Read the optimum between the sizes trained: fit a parabola in ``ln N`` through
        the lowest curve and its two neighbours in size at that budget, and take its
        vertex. Without it, ``N_opt`` is a staircase over the sizes trained, which biases
        ``a`` by a few hundredths for a ladder spaced ~1.5x apart. Budgets where a
        neighbour's curve does not reach, or the parabola has no minimum, are left out.
    level
        Confidence level of the interval of ``a``.
    points
        ``"auto"`` (default): decayed points when any record is ``wsd``/``wsd_s`` (a
        cosine run among them then contributes its final point, decayed too), else every
        evaluation (warning once for cosine records); ``"final"``: each run's last point
        whatever the schedule (e.g. cosine runs trained to several budgets per size);
        ``"all"``: every evaluation, without the warning.

    Raises
    ------
    ValueError
        When columns are missing, fewer than three sizes are present, or fewer than two
        budgets have an interior envelope point.
    """
    _require(curves, ["run", "params", "flops", "loss"], "approach 1")
    data = _usable(curves, ["params", "flops", "loss"])
    envelope = _envelope_points(data, points)
    lines = _decayed_curves(data) if envelope == "final" else _run_curves(data, smooth)
    run_size = np.array([c.size for c in lines], dtype=float)
    sizes = np.unique(run_size)  # sorted
    if len(sizes) < 3:
        raise ValueError(f"approach 1 needs curves of at least three model sizes, got {len(sizes)}")
    log_c = np.concatenate([c.log_c for c in lines])
    grid = np.linspace(log_c.min(), log_c.max(), n_bins)

    # Loss of every curve at every budget; +inf where the curve does not reach it.
    by_run = np.full((len(lines), n_bins), np.inf)
    for i, c in enumerate(lines):
        inside = (grid >= c.log_c[0]) & (grid <= c.log_c[-1])
        by_run[i, inside] = np.interp(grid[inside], c.log_c, c.loss)
    # Lowest curve of each size (and which curve it is).
    by_size = np.full((len(sizes), n_bins), np.inf)
    best_run = np.zeros((len(sizes), n_bins), dtype=int)
    for i, size in enumerate(run_size):
        j = int(np.searchsorted(sizes, size))
        lower = by_run[i] < by_size[j]
        by_size[j, lower] = by_run[i, lower]
        best_run[j, lower] = i

    covered = np.isfinite(by_size).sum(axis=0) >= 2  # an envelope needs a comparison
    best = np.argmin(by_size, axis=0)
    interior = covered & (best > 0) & (best < len(sizes) - 1)
    cols = np.flatnonzero(interior)
    n_opt = sizes[best[cols]]
    if refine:
        keep = np.zeros(len(cols), dtype=bool)
        for m, (j, col) in enumerate(zip(best[cols], cols, strict=True)):
            trio = by_size[j - 1 : j + 2, col]
            if not np.isfinite(trio).all():
                continue
            u = np.log(sizes[j - 1 : j + 2])
            c2, c1, _ = np.polyfit(u - u[1], trio, 2)  # exact through three points
            if c2 > 0:
                n_opt[m] = sizes[j] * math.exp(-c1 / (2 * c2))
                keep[m] = True
        cols, n_opt = cols[keep], n_opt[keep]
    if len(cols) < 2:
        raise ValueError(
            "approach 1: fewer than two budgets where the lowest curve belongs to a size "
            "inside the sweep's range; train larger and smaller models, or longer"
            + (" (or more budgets per size)" if envelope == "final" else "")
        )
    winners = best[cols]
    # The run behind each envelope point: that of the winning curve's nearest point.
    names = []
    for j, col in zip(winners, cols, strict=True):
        line = lines[best_run[j, col]]
        names.append(line.runs[int(np.argmin(np.abs(line.log_c - grid[col])))])
    frame = pd.DataFrame(
        {
            "flops": np.exp(grid[cols]),
            "params": n_opt,
            "loss": by_size[winners, cols],
            "run": names,
            "params_run": sizes[winners],
        }
    )
    line = loglog_line(frame["flops"].to_numpy(), frame["params"].to_numpy(), level)
    return Frontier(
        approach=1,
        a=line.slope,
        interval=line.slope_interval,
        points=frame,
        b=1 - line.slope,
        coef=math.exp(line.intercept),
        level=level,
        envelope=envelope,
    )


# --------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles
# --------------------------------------------------------------------------------------


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
) -> Frontier:
    """The frontier from IsoFLOP profiles (Hoffmann's approach 2).

    Runs (one final point each) are grouped by budget -- by ``group_col`` when given;
    else, when the runs carry a ``flops_target`` (the compute they were asked for, an
    IsoFLOP sweep's ``train.flops=C``), by that, with no option needed; else runs whose
    ``flops_col`` agree within a factor ``1 + group_tol`` (see :func:`isoflop_labels`)
    -- and in each group a parabola ``loss = c0 + c1 ln N + c2 (ln N)^2`` is fitted by
    least squares. Its vertex is ``N_opt`` for the group's budget (the asked target, or
    else the geometric mean of its flops). Groups with fewer than three sizes, a
    parabola that opens downwards, or a vertex outside the sizes tried are left out with
    a warning: their optimum is not measured. ``log N_opt`` is then regressed on
    ``log C``. :attr:`Frontier.grouping` says how the runs were grouped.

    Raises
    ------
    ValueError
        When columns are missing or fewer than two groups give a vertex.
    """
    _require(runs, ["params", "loss", flops_col] + ([group_col] if group_col else []), "approach 2")
    data = _usable(runs, ["params", "loss", flops_col])
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
    rows, skipped = [], []
    for label in pd.unique(labels):
        members = data.loc[labels == label]
        budget = float(budgets[labels == label][0])
        log_n = np.log(members["params"].to_numpy(dtype=float))
        loss = members["loss"].to_numpy(dtype=float)
        if len(np.unique(log_n)) < 3:
            skipped.append((budget, "fewer than 3 sizes"))
            continue
        center = log_n.mean()  # centring keeps the normal equations well conditioned
        c2, c1, c0 = np.polyfit(log_n - center, loss, 2)
        if c2 <= 0:
            skipped.append((budget, "no minimum (the parabola opens downwards)"))
            continue
        vertex = center - c1 / (2 * c2)
        if not log_n.min() <= vertex <= log_n.max():
            skipped.append((budget, "minimum outside the sizes tried"))
            continue
        n_opt = float(np.exp(vertex))
        rows.append(
            {
                "flops": budget,
                "params_opt": n_opt,
                "tokens_opt": budget / (6 * n_opt),
                "loss_opt": float(c0 - c1 * c1 / (4 * c2)),
                "curvature": float(c2),
                "n_runs": len(members),
                "group": label,
            }
        )
    left_out = _left_out(skipped, len(rows) + len(skipped))
    if len(rows) < 2:
        raise ValueError(
            "approach 2 needs at least two IsoFLOP groups with a measured minimum, "
            f"got {len(rows)}" + (f" ({left_out})" if skipped else "")
        )
    if skipped:
        warnings.warn(f"approach 2 {left_out}", stacklevel=2)
    points = pd.DataFrame(rows).sort_values("flops", ignore_index=True)
    line = loglog_line(points["flops"].to_numpy(), points["params_opt"].to_numpy(), level)
    return Frontier(
        approach=2,
        a=line.slope,
        interval=line.slope_interval,
        points=points,
        b=1 - line.slope,
        coef=math.exp(line.intercept),
        level=level,
        grouping=grouping,
    )


# --------------------------------------------------------------------------------------
# Approach 3: closed form from the parametric fit
# --------------------------------------------------------------------------------------


def approach3(result: FitResult, *, flops: Sequence[float] | np.ndarray | None = None) -> Frontier:
    """The frontier in closed form from a chinchilla fit (Hoffmann's approach 3).

    ``a = β/(α+β)``, ``b = α/(α+β)``, ``N_opt = G (C/6)^a``; the interval of ``a`` is
    the bootstrap percentile interval when the fit has bootstrap samples. ``points`` is
    the frontier on ``flops`` (default: 50 budgets from the smallest ``6ND`` of the fitted
    data to 100x its largest), with an ``extrapolation`` column: each budget over the
    largest ``6ND`` of the data (above 1: past the data). The frontier carries the
    fit's :attr:`~analysis.result.FitResult.identified` flag and reasons.
    """
    _, A, B, alpha, beta = chinchilla_params(result)
    a = beta / (alpha + beta)
    interval = None
    if result.bootstrap is not None and len(result.bootstrap):
        samples = result.bootstrap[:, 4] / (result.bootstrap[:, 3] + result.bootstrap[:, 4])
        tail = 100 * (1 - result.level) / 2
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
        interval = (float(lo), float(hi))
    if flops is None:
        if len(result.x) == 2:
            c = 6 * result.x[0] * result.x[1]
            flops = np.geomspace(c.min(), 100 * c.max(), 50)
        else:
            flops = np.geomspace(1e18, 1e26, 50)
    grid = np.asarray(flops, dtype=float)
    n_opt = optimal_params(grid, A, B, alpha, beta)
    d_opt = grid / (6 * n_opt)
    points = pd.DataFrame(
        {
            "flops": grid,
            "params_opt": n_opt,
            "tokens_opt": d_opt,
            "loss_opt": result.predict(n_opt, d_opt),
        }
    )
    # Budgets past the largest of the data (6ND on both sides) are extrapolations.
    points["extrapolation"] = result.extrapolation(n_opt, d_opt)["flops"]
    coef = float(optimal_params(1.0, A, B, alpha, beta))  # N_opt at C = 1
    return Frontier(
        approach=3,
        a=a,
        interval=interval,
        points=points,
        b=1 - a,
        coef=coef,
        level=result.level,
        resampled=result.resampled if interval is not None else None,
        n_groups=result.n_groups if interval is not None else None,
        identified=result.identified,
        identification=list(result.identification),
    )
