"""The straight line in log-log coordinates: ``power`` (``y = a x^k``) fitted by
ordinary least squares on ``(log x, log y)``, with Student-t intervals, or bootstrap
percentiles (weighted least squares on the resample counts, all resamples at once).

:func:`loglog_line` is the line itself, which :mod:`analysis.optimal` also fits to
frontier points; :func:`analysis.fit.fit` calls :func:`_fit_power` for ``power``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.laws import Law
from analysis.resample import resample_counts
from analysis.result import FitResult

__all__ = ["LogLogLine", "loglog_line", "percentile_intervals"]


def percentile_intervals(
    names: Sequence[str], samples: np.ndarray, level: float
) -> dict[str, tuple[float, float]]:
    """``{name: (lo, hi)}``: percentiles of each column of ``samples`` at ``level``."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return {nm: (float(lo[i]), float(hi[i])) for i, nm in enumerate(names)}


@dataclass(frozen=True)
class LogLogLine:
    """Least-squares line ``log y = intercept + slope * log x`` with t-intervals.

    The intervals are None when there are fewer than three points (no residual degree
    of freedom to estimate the scatter from).
    """

    slope: float
    intercept: float
    slope_interval: tuple[float, float] | None
    intercept_interval: tuple[float, float] | None
    residuals: np.ndarray


def loglog_line(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> LogLogLine:
    """Ordinary least squares of ``log y`` on ``log x`` (both positive), with t-intervals."""
    u, v = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = len(u)
    if n < 2 or np.ptp(u) == 0:
        raise ValueError("a log-log line needs at least two distinct x values")
    u_mean, v_mean = u.mean(), v.mean()
    sxx = ((u - u_mean) ** 2).sum()
    slope = float(((u - u_mean) * (v - v_mean)).sum() / sxx)
    intercept = float(v_mean - slope * u_mean)
    residuals = v - (intercept + slope * u)
    if n < 3:
        return LogLogLine(slope, intercept, None, None, residuals)
    from scipy import stats  # imported here: scipy.stats is slow to import

    dof = n - 2
    sigma2 = (residuals**2).sum() / dof
    se_slope = math.sqrt(sigma2 / sxx)
    se_intercept = math.sqrt(sigma2 * (1 / n + u_mean**2 / sxx))
    tq = float(stats.t.ppf(0.5 + level / 2, dof))
    return LogLogLine(
        slope,
        intercept,
        (slope - tq * se_slope, slope + tq * se_slope),
        (intercept - tq * se_intercept, intercept + tq * se_intercept),
        residuals,
    )


def _fit_power(
    law: Law,
    x: np.ndarray,
    y: np.ndarray,
    *,
    bootstrap: int,
    seed: int,
    reduce: str,
    level: float,
    groups: np.ndarray | None = None,
) -> FitResult:
    """Ordinary least squares of log y on log x: log y = log a + k log x."""
    n = len(y)
    if np.ptp(x) == 0:
        raise ValueError("all x values are equal: a power law's exponent is undetermined")
    line = loglog_line(x, y, level)
    params = {"a": math.exp(line.intercept), "k": line.slope}
    intervals: dict[str, tuple[float, float]] = {}
    kind = "none"
    # None only on two points (``fit``'s ``min_points=2``): no scatter to estimate.
    if line.intercept_interval is not None and line.slope_interval is not None:
        lo, hi = line.intercept_interval
        intervals = {"a": (math.exp(lo), math.exp(hi)), "k": line.slope_interval}
        kind = "t"
    samples = None
    if bootstrap > 0:
        # Weighted least squares with the resample counts as weights, all at once.
        u, v = np.log(x), np.log(y)
        c = resample_counts(n, bootstrap, seed, groups)
        cs = c.sum(axis=1)
        um = (c * u).sum(axis=1) / cs
        vm = (c * v).sum(axis=1) / cs
        du = u[None] - um[:, None]
        sxx_b = (c * du**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample of one x value
            kb = (c * du * (v[None] - vm[:, None])).sum(axis=1) / sxx_b
        samples = np.column_stack([np.exp(vm - kb * um), kb])
        intervals = percentile_intervals(law.param_names, samples, level)
        kind = "bootstrap"
    residuals = line.residuals
    objective = float((residuals**2).sum() / (n if reduce == "mean" else 1))
    return FitResult(
        law=law.name,
        params=params,
        intervals=intervals,
        objective=objective,
        converged=True,
        residuals=residuals,
        n=n,
        derived={},
        bootstrap=samples,
        message="closed-form least squares in log-log coordinates"
        + (f"; bootstrap: {bootstrap} refits" if bootstrap > 0 else ""),
        level=level,
        interval_kind=kind,
        nit=0,
        grad_norm=0.0,
        n_starts=1,
    )
