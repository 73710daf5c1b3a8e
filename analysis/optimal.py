"""The compute-optimal frontier: how to split a compute budget C between size and data.

Hoffmann et al. (2022) estimate the exponent ``a`` of ``N_opt ∝ C^a`` three ways, and so
does this module:

1. :func:`approach1` -- the lower envelope of loss against compute over all training
   curves: at each budget C, the model size whose curve is lowest there. From
   warmup-stable-decay records (several budgets cut from one trunk), only the decayed
   end of each budget is a point a run trained to that budget reaches, and the curves
   are drawn through those.
2. :func:`approach2` -- IsoFLOP profiles: runs grouped by budget (the compute they were
   asked for, when the records say), a parabola of loss in ``log N`` per group near its
   minimum, its vertex giving ``N_opt(C)``, as Porian et al. (2024) do or as Hoffmann
   et al. did (it lives in :mod:`analysis.isoflop`, and is importable from here).
3. :func:`approach3` -- the closed form from a fitted ``L = E + A/N^α + B/D^β``:
   minimising it under ``C = 6ND`` gives ``N_opt = G (C/6)^a`` with ``a = β/(α+β)`` and
   ``G = (αA / (βB))^(1/(α+β))``; or from Kaplan et al.'s
   ``L = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D``, whose terms interact, with
   ``a = α_D/(α_N+α_D)`` (:mod:`analysis.allocation` has both).

Approaches 1 and 2 end with a least-squares line of ``log N_opt`` on ``log C`` (weighted
by each optimum's uncertainty in Porian et al.'s approach 2); its slope is ``a`` and its
t-interval is the interval reported. Throughout, ``C = 6ND``, so
``D_opt ∝ C^b`` with ``b = 1 - a``.

:func:`allocate` turns a chinchilla or kaplan fit into a recommendation for one budget, with
bootstrap intervals (it lives in :mod:`analysis.allocation`, and is importable from
here).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.allocation import (
    Allocation,
    allocate,
    optimal_n,
    optimal_params,
    optimum_params,
)
from analysis.fit import FitResult, loglog_line
from analysis.frontier import Frontier, require_columns, usable_rows
from analysis.io import DECAYED_SCHEDULES, DataWarning
from analysis.isoflop import approach2, isoflop_labels

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
    require_columns(curves, ["run", "params", "flops", "loss"], "approach 1")
    data = usable_rows(curves, ["params", "flops", "loss"])
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
    flops = frame["flops"].to_numpy()
    _warn_of_a_short_lever(flops)
    line = loglog_line(flops, frame["params"].to_numpy(), level)
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


#: Below this ratio of its largest to its smallest budget, approach 1's envelope is too
#: short a lever for a slope (less than a decade of compute), and says so.
MIN_ENVELOPE_SPAN = 10.0


def _warn_of_a_short_lever(flops: np.ndarray) -> None:
    span = float(flops.max() / flops.min())
    if span < MIN_ENVELOPE_SPAN:
        warnings.warn(
            f"approach 1's envelope spans only {span:.1f}x of compute ({flops.min():.3g} "
            f"to {flops.max():.3g} FLOPs), where its lowest point belongs to a size inside "
            "the sweep: a slope over so short a lever moves with every step between sizes, "
            "and its interval, from points of one envelope that share their runs, is too "
            "narrow; train sizes beyond both ends, or use approach 2 or 3",
            DataWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------
# Approach 3: closed form from the parametric fit
# --------------------------------------------------------------------------------------


def approach3(result: FitResult, *, flops: Sequence[float] | np.ndarray | None = None) -> Frontier:
    """The frontier in closed form from a fit of L(N, D) (Hoffmann's approach 3).

    From a ``chinchilla`` fit ``a = β/(α+β)``, from a ``kaplan`` fit
    ``a = α_D/(α_N+α_D)``, and ``N_opt`` is the law's own optimum
    (:func:`analysis.allocation.optimal_n`); ``b = 1 - a``. The interval of ``a`` is the
    bootstrap percentile interval when the fit has bootstrap samples. ``points`` is the
    frontier on ``flops`` (default: 50 budgets from the smallest ``6ND`` of the fitted
    data to 100x its largest), with an ``extrapolation`` column: each budget over the
    largest ``6ND`` of the data (above 1: past the data). The frontier carries the
    fit's :attr:`~analysis.result.FitResult.identified` flag and reasons.
    """
    params = optimum_params(result)
    law = result.law_form
    a = float(law.derived(np.array([params[k] for k in law.param_names]))["a"])
    interval = None
    if result.bootstrap is not None and len(result.bootstrap):
        samples = law.derived(result.bootstrap)["a"]
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
    n_opt = optimal_n(result.law, params, grid)
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
    coef = float(optimal_n(result.law, params, 1.0))  # N_opt at C = 1
    return Frontier(
        approach=3,
        a=a,
        law=result.law,
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
