"""Fitting a compression law by least squares on ``log delta``, with a bootstrap over
source runs (:func:`fit_degradation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.compression.forms import FORMS
from analysis.compression.result import CompressionFit
from analysis.resample import group_labels, resample_counts

# N and D "vary independently" when log D is not a function of log N: a line
# D ∝ N^k leaving less than this RMS in log D (as analysis.result uses for Chinchilla).
_LINE_RMS = 0.05
# Two points per parameter, as the project's other fits ask (analysis.fit.min_points).
_POINTS_PER_PARAM = 2


# --------------------------------------------------------------------------------------
# Fitting


def _t_intervals(
    design: np.ndarray, residuals: np.ndarray, theta: np.ndarray, level: float
) -> np.ndarray | None:
    """(p, 2) Student-t intervals of least-squares coefficients; None without dof."""
    n, p = design.shape
    if n <= p:
        return None
    from scipy import stats  # imported here: scipy.stats is slow to import

    sigma2 = float(residuals @ residuals) / (n - p)
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    half = float(stats.t.ppf(0.5 + level / 2, n - p)) * np.sqrt(np.clip(np.diag(cov), 0, None))
    return np.column_stack([theta - half, theta + half])


def fit_degradation(
    form: str,
    N: Any,
    D: Any,
    x: Any,
    delta: Any,
    *,
    scheme: str = "",
    groups: Sequence[Any] | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CompressionFit:
    """Fit one law of :data:`FORMS` to arrays by least squares on ``log delta``.

    Parameters
    ----------
    form
        ``quantization`` (``x`` is the bits P), ``sparsity`` (``x`` is s) or
        ``sparsity_fixed`` (``x`` ignored, may be None).
    N, D, x, delta
        One value per point: parameters, pretraining tokens, bits or sparsity, and the
        loss the compression added. Points with ``delta <= 0`` or not finite (or ``s``
        outside (0, 1)) are left out and counted.
    scheme
        A label for the result.
    groups
        The source run of each point: the bootstrap draws whole groups. None: points.
    bootstrap, seed, level
        Resamples (0: Student-t intervals instead), their seed, the interval level.

    Raises
    ------
    ValueError
        When fewer points are left than the law has coefficients to fit.
    """
    law = FORMS[form]
    n_arr = np.asarray(N, dtype=float)
    d_arr = np.asarray(D, dtype=float)
    y = np.asarray(delta, dtype=float)
    z_arr = np.zeros_like(y) if law.third is None else np.asarray(x, dtype=float)
    keep = np.isfinite(y) & (y > 0) & (n_arr > 0) & (d_arr > 0) & np.isfinite(z_arr)
    if law.third == "s":
        keep &= (z_arr > 0) & (z_arr < 1)
    n_dropped = int((~keep).sum())
    notes = []
    if n_dropped:
        notes.append(
            f"{n_dropped} of {len(y)} rows left out: delta <= 0 (the compression cost "
            "nothing measurable) has no logarithm"
        )
    n_arr, d_arr, z_arr, y = n_arr[keep], d_arr[keep], z_arr[keep], y[keep]
    labels = (
        None if groups is None else group_labels(np.asarray(groups, dtype=object)[keep], len(y))
    )

    # the inputs and their columns of the linear model (log C, gamma_D, gamma_N, c)
    inputs = {"D": (1, np.log(d_arr), d_arr), "N": (2, -np.log(n_arr), n_arr)}
    if law.third is not None:
        inputs[law.third] = (3, law.feature(z_arr), z_arr)
    reasons: list[str] = []
    held: dict[str, float] = {}
    columns = [0]
    for symbol, (col, _feature, raw) in inputs.items():
        distinct = len(np.unique(raw))
        if distinct >= 2:
            columns.append(col)
            continue
        if distinct == 1:
            held[symbol] = float(raw[0])
        reasons.append(
            f"{distinct} distinct value(s) of {symbol}"
            + (f" (all at {symbol} = {raw[0]:.4g})" if distinct == 1 else "")
            + f": its exponent and {law.coef} are not separately identified, fewer than "
            "the 2 values each input needs"
        )
    columns.sort()
    if 1 in columns and 2 in columns:
        u, v = np.log(n_arr), np.log(d_arr)
        slope, intercept = np.polyfit(u, v, 1)
        rms = float(np.sqrt(np.mean((v - intercept - slope * u) ** 2)))
        if rms < _LINE_RMS:
            reasons.append(
                f"N and D do not vary independently (D ∝ N^{slope:.3g} within {rms:.1%}): "
                "gamma_D and gamma_N are not separately identified"
            )
            if rms < 1e-12:  # exactly on a line: the design is singular, D is held out
                columns.remove(1)
                held["D"] = math.nan
    p_total = 4 if law.third is not None else 3
    if len(y) < len(columns):
        raise ValueError(
            f"{scheme or form}: {len(y)} point(s) with delta > 0, fewer than the "
            f"{len(columns)} coefficients to fit"
        )
    if len(y) < _POINTS_PER_PARAM * p_total:
        reasons.append(
            f"{len(y)} points, fewer than the {_POINTS_PER_PARAM * p_total} "
            f"({_POINTS_PER_PARAM} per parameter) a fit needs"
        )

    full = np.zeros((len(y), 4))
    full[:, 0] = 1.0
    for _symbol, (col, feature, _raw) in inputs.items():
        full[:, col] = feature
    design = full[:, columns]
    # centred columns (the intercept's excepted): a well-conditioned solve whatever the
    # magnitudes of log N and log D
    means = design.mean(axis=0)
    means[0] = 0.0
    centred = design - means
    logy = np.log(y)
    beta, *_ = np.linalg.lstsq(centred, logy, rcond=None)
    residuals = logy - centred @ beta

    def uncentre(b: np.ndarray) -> np.ndarray:
        """The coefficients of all four columns (NaN where held out) from a solve."""
        out = np.full(b.shape[:-1] + (4,), np.nan)
        out[..., columns] = b
        out[..., 0] = b[..., 0] - (b[..., 1:] * means[1:]).sum(axis=-1)
        return out

    theta = uncentre(beta)
    rows = np.full((4, 2), np.nan)
    kind, samples, failed, n_groups = "none", None, None, None
    if bootstrap > 0:
        counts = resample_counts(len(y), bootstrap, seed, labels)
        n_groups = len(y) if labels is None else int(labels.max()) + 1
        solved = np.full((bootstrap, len(columns)), np.nan)
        for i, w in enumerate(counts):
            sw = np.sqrt(w)
            b, _res, rank, _sv = np.linalg.lstsq(centred * sw[:, None], logy * sw, rcond=None)
            if rank == len(columns):  # a resample without two of some input says nothing
                solved[i] = b
        samples = uncentre(solved)
        ok = np.isfinite(solved).all(axis=1)
        failed = float(1.0 - ok.mean())
        if failed:
            notes.append(
                f"{int((~ok).sum())} of {bootstrap} resamples drew too few distinct values "
                "of an input to fit and were left out of the intervals"
            )
        if ok.any():
            tail = 100 * (1 - level) / 2
            lo, hi = np.percentile(samples[ok][:, columns], [tail, 100 - tail], axis=0)
            rows[columns] = np.column_stack([lo, hi])
            kind = "bootstrap"
    else:
        # on the uncentred columns, so that the intercept's interval is log C's
        t = _t_intervals(design, residuals, theta[columns], level)
        if t is not None:
            rows[columns] = t
            kind = "t"

    # the public parameters and their intervals
    log_constant = float(theta[0])
    coef_unknown = bool(held)
    params: dict[str, float] = {law.coef: math.nan if coef_unknown else math.exp(log_constant)}
    intervals: dict[str, tuple[float, float]] = {}
    if not coef_unknown and np.isfinite(rows[0]).all():
        intervals[law.coef] = (math.exp(rows[0, 0]), math.exp(rows[0, 1]))
    for name, col in (("gamma_D", 1), ("gamma_N", 2)):
        params[name] = float(theta[col])
        if np.isfinite(rows[col]).all():
            intervals[name] = (float(rows[col, 0]), float(rows[col, 1]))
    if law.third is not None:
        assert law.exponent is not None
        c = float(theta[3])
        params[law.exponent] = law.to_public(c) if math.isfinite(c) else math.nan
        lo, hi = rows[3]
        if np.isfinite(rows[3]).all():
            if law.third == "P":
                # percentiles commute with 1/c while c keeps one sign; an interval of
                # 1/gamma_post reaching 0 leaves gamma_post unbounded above
                intervals[law.exponent] = (
                    (1.0 / hi, 1.0 / lo) if lo > 0 or hi < 0 else (1.0 / hi, math.inf)
                )
            else:
                intervals[law.exponent] = (float(lo), float(hi))
        if law.third == "P" and math.isfinite(c) and c <= 0:
            reasons.append(
                f"1/gamma_post = {c:.3g} <= 0: the loss the quantization adds does not "
                "fall with the bits P"
            )

    # every fitted exponent's interval: finite and excluding 0
    exponent_cols = [("gamma_D", 1), ("gamma_N", 2)]
    if law.third is not None:
        exponent_cols.append(("1/gamma_post" if law.third == "P" else "gamma_s", 3))
    for name, col in exponent_cols:
        if col not in columns:
            continue
        lo, hi = rows[col]
        if kind == "none":
            reasons.append(f"no interval of {name} (too few points for one)")
        elif not (math.isfinite(lo) and math.isfinite(hi)):
            reasons.append(f"the interval of {name} is not finite")
        elif lo <= 0 <= hi:
            reasons.append(f"the interval of {name} [{lo:.3g}, {hi:.3g}] includes 0")

    for symbol in list(held):
        if symbol == "D" and not math.isfinite(held["D"]):
            del held["D"]  # on a line through (N, D): D's factor rides on N's exponent
            params["gamma_D"] = math.nan
            intervals.pop("gamma_D", None)
            notes.append("D held out of the fit: on a line through (N, D), gamma_N is the slope")
    for symbol in held:
        name = {"D": "gamma_D", "N": "gamma_N"}.get(symbol, law.exponent)
        if name is not None:
            params[name] = math.nan
    return CompressionFit(
        form=form,
        scheme=scheme or form,
        params=params,
        intervals=intervals,
        residuals=residuals,
        n=len(y),
        n_dropped=n_dropped,
        level=level,
        interval_kind=kind,
        n_groups=n_groups,
        bootstrap=samples,
        boot_failed=failed,
        identified=not reasons,
        identification=reasons,
        held=held,
        log_constant=log_constant,
        notes=notes,
        x=(n_arr, d_arr, z_arr),
        y=y,
    )
