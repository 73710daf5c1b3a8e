"""Fit the scaling laws of :mod:`analysis.laws` to data, with bootstrap intervals.

Method
------
``power`` (``y = a x^k``) is a straight line in log-log coordinates and is fitted by
ordinary least squares on ``(log x, log y)``, with Student-t intervals.

The saturating forms (``saturating``, ``chinchilla``) follow Hoffmann et al. (2022) and
Besiroglu et al. (2024). Writing ``E = exp(e)``, ``A_j = exp(a_j)``, the log of the
prediction is a log-sum-exp,

    log ŷ = LSE(e, a_1 - alpha_1 log x_1, ..., a_K - alpha_K log x_K),

which keeps every coefficient positive without constraints and is numerically safe for
inputs spanning many decades. The objective is the Huber loss (threshold ``delta``) of
the log residuals ``r = log ŷ - log y``, summed (or averaged) over points. With the
default ``delta = 1e-3`` most residuals sit in Huber's linear part, so the fit is close
to a least-absolute-deviations fit and robust to outliers.

That objective has many local minima and flat regions, so it is minimised from a grid
of starting points (4,500 for chinchilla). The starts are handled *together*, as arrays,
by a damped Newton method (Levenberg-Marquardt on the exact gradient and Hessian, which
are cheap: at most five parameters): the objective is evaluated at every start, the
best thousand take two Newton steps together, and the best 64 of those are carried to
convergence. Convergence is declared on the gradient (its largest component, per unit
weight of data, below ``gtol``), never on a small relative change of the objective --
stopping on the objective is what left Hoffmann et al.'s published fit short of the
optimum (Besiroglu et al. 2024). Internally ``log x`` is centred on the data, which
decorrelates each log-coefficient from its exponent and shortens the Newton path.

Bootstrap intervals resample with replacement; every resample is refitted from the
full-data optimum (plus the other local optima the grid found), all resamples at once in
one batch, which makes a thousand refits take about a second. What is resampled is a
group of points that share their errors: the several token budgets cut from one
training trajectory (a *trunk*) share its noise, and so do the evaluations along one
learning curve, so resampling their points one by one would treat them as independent
and make the intervals too narrow. :func:`fit_frame` draws whole trunks when the table
has a ``trunk`` column, whole runs when a run has several rows, and single points
otherwise (:func:`analysis.resample.bootstrap_groups`); :func:`fit` takes the group
labels as ``groups``.
A resample is drawn as counts per group and spread onto the group's points as weights,
so it costs no more than resampling points.

Every result says whether the data identify it (:attr:`FitResult.identified`, with the
reasons in :attr:`FitResult.identification`; see :func:`analysis.result.identify`).
The result object lives in :mod:`analysis.result`, the batched objective and Newton
method in :mod:`analysis.newton`, the least-squares line of ``power`` in
:mod:`analysis.power`; their names are importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.laws import Law, SumOfPowers, get_law
from analysis.newton import LogProblem, newton, objective
from analysis.power import LogLogLine, _fit_power, loglog_line, percentile_intervals
from analysis.resample import bootstrap_groups, group_labels, kind_text, resample_counts
from analysis.result import FitResult, identify

if TYPE_CHECKING:  # pandas is only needed by fit_frame's callers
    import pandas as pd


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "FitResult",
    "LogLogLine",
    "default_bootstrap",
    "default_grid",
    "fit",
    "fit_frame",
    "internal_names",
    "loglog_line",
    "min_points",
]

# The fitter's internals under the names they had when they lived here.
_LogProblem = LogProblem
_objective = objective
_newton = newton

#: Bootstrap resamples of a saturating or chinchilla fit when none are asked for (the
#: command line's default too): enough for stable 95 % percentile intervals (the 2.5 %
#: tail holds 5 samples) while keeping a chinchilla fit to seconds.
DEFAULT_BOOTSTRAP = 200

# A fit needs some residual degrees of freedom to mean anything: with as many points
# as parameters any curve of the form passes through them exactly and the intervals are
# meaningless. We ask for at least twice as many points as parameters (4 for power,
# 6 for saturating, 10 for chinchilla).
_MIN_POINTS_PER_PARAM = 2

# The Hoffmann/Besiroglu grid of starts, in the fitter's internal coordinates.
_CHINCHILLA_GRID: dict[str, np.ndarray] = {
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "b": np.arange(0.0, 25.1, 5.0),
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
}
# For one input the grid can afford to be finer (9 * 9 * 11 = 891 starts).
_SATURATING_GRID: dict[str, np.ndarray] = {
    "e": np.linspace(-1.0, 1.0, 9),
    "a": np.arange(0.0, 25.1, 2.5),
    "alpha": np.linspace(0.0, 2.0, 9),
}


def min_points(law: str | Law) -> int:
    """The fewest points :func:`fit` accepts for ``law`` (twice its parameter count)."""
    return _MIN_POINTS_PER_PARAM * len(get_law(law).param_names)


def default_bootstrap(law: str | Law) -> int:
    """Resamples :func:`fit_frame` draws unless told: none for ``power`` (its Student-t
    intervals are exact for a straight line in log-log with normal errors),
    :data:`DEFAULT_BOOTSTRAP` for the others."""
    return 0 if get_law(law).name == "power" else DEFAULT_BOOTSTRAP


def internal_names(law: Law) -> tuple[str, ...]:
    """Names of the fitter's internal coordinates: logs of the coefficients, then exponents.

    For chinchilla ``("e", "a", "b", "alpha", "beta")``, i.e. ``E = exp(e)``,
    ``A = exp(a)``, ``B = exp(b)``.
    """
    k = law.n_inputs
    coefs = [p.lower() for p in law.param_names[: 1 + k]]
    return (*coefs, *law.param_names[1 + k :])


def default_grid(law: str | Law) -> dict[str, np.ndarray]:
    """The default grid of starting points, keyed by :func:`internal_names`."""
    law = get_law(law)
    if law.name == "chinchilla":
        return {k: v.copy() for k, v in _CHINCHILLA_GRID.items()}
    if law.name == "saturating":
        return {k: v.copy() for k, v in _SATURATING_GRID.items()}
    if isinstance(law, SumOfPowers):  # a user-defined sum of powers: reuse the coarse axes
        names = internal_names(law)
        k = law.n_inputs
        axes = [_CHINCHILLA_GRID["e"]] + [_CHINCHILLA_GRID["a"]] * k
        axes += [_CHINCHILLA_GRID["alpha"]] * k
        return dict(zip(names, (a.copy() for a in axes), strict=True))
    raise ValueError(f"law {law.name!r} is fitted in closed form and has no grid")


# --------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------


def _check_column(values: Any, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but the other inputs have {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        kind = "NaN" if np.isnan(arr[bad[0]]) else "infinite"
        raise ValueError(
            f"{name} has {bad.size} NaN or infinite value(s) (first: {kind} at row "
            f"{bad[0]}); drop or fill them before fitting"
        )
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} non-positive value(s) (first: {float(arr[bad[0]])!r} at row "
            f"{bad[0]}); every value must be > 0 to fit in log space"
        )
    return arr


def _check_data(
    law: Law,
    x: Any,
    y: Any,
    x_names: Sequence[str] | None,
    y_name: str | None,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Validate and convert the inputs; error messages name the offending column."""
    if law.n_inputs == 1:
        # One input: a bare array (or list of numbers), or a 1-tuple holding it.
        xs = tuple(x) if isinstance(x, tuple) and len(x) == 1 else (x,)
    else:
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    if len(xs) != law.n_inputs:
        raise ValueError(
            f"law {law.name!r} needs {law.n_inputs} input array(s) "
            f"({', '.join(law.variables)}), got {len(xs)}"
        )
    if x_names is None:
        x_labels = [f"input {v!r}" for v in law.variables]
    else:
        x_labels = [f"column {c!r}" for c in x_names]
    y_label = f"column {y_name!r}" if y_name is not None else f"target {law.target!r}"
    y_arr = _check_column(y, y_label, None)
    x_arrs = tuple(_check_column(v, lab, len(y_arr)) for v, lab in zip(xs, x_labels, strict=True))
    need = min_points(law)
    if len(y_arr) < need:
        raise ValueError(
            f"too few points to fit {law.name!r}: got {len(y_arr)}, need at least {need} "
            f"(twice its {len(law.param_names)} parameters)"
        )
    return x_arrs, y_arr


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


def _grid_points(law: Law, grid: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    names = internal_names(law)
    axes = default_grid(law) if grid is None else grid
    unknown = set(axes) - set(names)
    missing = set(names) - set(axes)
    if unknown or missing:
        raise ValueError(
            f"grid for {law.name!r} must have exactly the keys {', '.join(names)} "
            "(log-coefficients and exponents)"
        )
    mesh = np.meshgrid(*[np.asarray(axes[nm], dtype=float) for nm in names], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _to_internal(law: Law, params: Mapping[str, float]) -> np.ndarray:
    k = law.n_inputs
    values = [float(v) for v in law._values(params)]
    for name, v in zip(law.param_names[: 1 + k], values[: 1 + k], strict=True):
        if not v > 0:
            raise ValueError(
                f"init: {name} must be > 0 (it is fitted as exp({name.lower()})), got {v}"
            )
    return np.array([math.log(v) for v in values[: 1 + k]] + list(values[1 + k :]))


def _shift(theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
    """Move log-coefficients to (sign -1) or from (sign +1) log x centred on ``centre``.

    ``a_j - alpha_j log x_j = (a_j - alpha_j m_j) - alpha_j (log x_j - m_j)``.
    """
    k = len(centre)
    out = np.array(theta, dtype=float, copy=True)
    out[..., 1 : 1 + k] += sign * out[..., 1 + k :] * centre
    return out


def _to_params(law: Law, theta: np.ndarray) -> np.ndarray:
    """Internal coordinates -> natural parameters, for one row or a stack of rows."""
    k = law.n_inputs
    out = np.array(theta, dtype=float, copy=True)
    out[..., : 1 + k] = np.exp(out[..., : 1 + k])
    return out


def _derived(law: Law, values: np.ndarray) -> dict[str, np.ndarray]:
    """Derived quantities from natural parameters (last axis in param_names order)."""
    if law.name != "chinchilla":
        return {}
    alpha, beta = values[..., 3], values[..., 4]
    return {"a": beta / (alpha + beta), "b": alpha / (alpha + beta)}


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


def fit(
    law: str | Law,
    x: Any,
    y: Any,
    *,
    delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    init: Mapping[str, float] | None = None,
    reduce: str = "sum",
    level: float = 0.95,
    grid: Mapping[str, Sequence[float]] | None = None,
    gtol: float = 1e-12,
    max_iter: int = 500,
    prescreen: int = 1024,
    screen_iter: int = 2,
    keep: int = 64,
    x_names: Sequence[str] | None = None,
    y_name: str | None = None,
    groups: Any = None,
    group_kind: str | None = None,
) -> FitResult:
    """Fit ``law`` to points ``(x, y)``.

    Parameters
    ----------
    law
        ``"power"``, ``"saturating"``, ``"chinchilla"`` or a :class:`~analysis.laws.Law`.
    x
        One array (power, saturating) or a tuple ``(N, D)`` (chinchilla). All positive.
    y
        The target (loss; or e.g. FLOPs for a power law). All positive.
    delta
        Huber threshold on log residuals (ignored by ``power``, fitted by least squares).
    bootstrap
        Number of bootstrap resamples for the intervals (0: none).
    seed
        Seed of the resampling; the same seed gives identical results.
    init
        A single starting point in natural parameters (e.g. ``{"E": 1.69, ...}``) used
        instead of the grid (``init`` and ``grid`` do not apply to ``power``).
    reduce
        ``"sum"`` (default, as published) or ``"mean"`` over points.
    level
        Confidence level of the intervals.
    grid
        Axes of the grid of starts in internal coordinates (see :func:`default_grid`).
    gtol
        Convergence tolerance on the largest gradient component *per unit weight of
        data*: the summed objective converges when ``max|∇f| <= gtol * n``, the mean
        objective when ``max|∇f| <= gtol``, so both stop at the same point.
    max_iter
        Newton iterations allowed per start.
    prescreen, screen_iter, keep
        How the search narrows: the ``prescreen`` starts with the lowest objective take
        ``screen_iter`` Newton steps together, and the ``keep`` best of them then
        continue to convergence. With both at least the number of starts, every start
        runs to the end.
    x_names, y_name
        Column names, used in error messages and in the formula.
    groups
        One label per point (any hashable values): the bootstrap draws whole groups with
        replacement, every point of a drawn group with it, so that points sharing their
        errors (the budgets of one trunk) count as one draw. None: each point alone.
    group_kind
        What the groups are (``"trunks"``, ``"runs"``), reported as
        :attr:`FitResult.resampled` (default ``"groups"``, or ``"points"`` without
        ``groups``).

    Raises
    ------
    ValueError
        On NaN, infinite or non-positive inputs, too few points (fewer than twice the
        number of parameters), or bad options.
    """
    law = get_law(law)
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    xs, y_arr = _check_data(law, x, y, x_names, y_name)
    labels = group_labels(groups, len(y_arr))
    variables = tuple(x_names) if x_names is not None else ()
    target = y_name or ""
    if law.name == "power":
        result = _fit_power(
            law, xs[0], y_arr, bootstrap=bootstrap, seed=seed, reduce=reduce, level=level,
            groups=labels,
        )  # fmt: skip
    elif isinstance(law, SumOfPowers):
        result = _fit_sum_of_powers(
            law, xs, y_arr, delta=delta, bootstrap=bootstrap, seed=seed, init=init,
            reduce=reduce, level=level, grid=grid, gtol=gtol, max_iter=max_iter,
            prescreen=prescreen, screen_iter=screen_iter, keep=keep, groups=labels,
        )  # fmt: skip
    else:
        raise ValueError(f"no fitter for law {law.name!r}")
    result.variables, result.target = variables, target
    result.x, result.y = xs, y_arr
    if bootstrap > 0:
        result.n_groups = len(y_arr) if labels is None else int(labels.max()) + 1
        result.resampled = "points" if labels is None else (group_kind or "groups")
        result.message += f", resampling {result.n_groups} {kind_text(result.resampled)}"
        _warn_few_groups(law, result)
    result.identification = identify(
        result, _search_ranges(law, grid) if law.name != "power" else None
    )
    result.identified = not result.identification
    return result


def _search_ranges(
    law: Law, grid: Mapping[str, Sequence[float]] | None
) -> dict[str, tuple[float, float]]:
    """``(min, max)`` of each axis of the search: the default grid's, widened to the
    grid given (a grid of one or two values, or a single ``init``, does not make every
    other value an edge)."""
    out = {}
    given = grid or {}
    for name, axis in default_grid(law).items():
        values = np.concatenate([axis, np.asarray(given.get(name, []), dtype=float)])
        out[name] = (float(values.min()), float(values.max()))
    return out


def _warn_few_groups(law: Law, result: FitResult) -> None:
    """Say so when the bootstrap has fewer groups to draw than the law needs points:
    then a share of the resamples cannot pin every parameter, and the intervals, wide
    as they come out, say little."""
    need = min_points(law)
    if result.resampled == "points" or result.n_groups is None or result.n_groups >= need:
        return
    import warnings

    from analysis.io import DataWarning  # imported here: analysis.io imports pandas

    warnings.warn(
        f"{law.name} bootstrap over only {result.n_groups} {kind_text(result.resampled)}, "
        f"fewer than the {need} points the law needs: many resamples cannot pin every "
        "parameter, so its intervals are unreliable (more sizes or seeds would help)",
        DataWarning,
        stacklevel=3,
    )


def _fit_sum_of_powers(
    law: SumOfPowers,
    xs: tuple[np.ndarray, ...],
    y: np.ndarray,
    *,
    delta: float,
    bootstrap: int,
    seed: int,
    init: Mapping[str, float] | None,
    reduce: str,
    level: float,
    grid: Mapping[str, Sequence[float]] | None,
    gtol: float,
    max_iter: int,
    prescreen: int,
    screen_iter: int,
    keep: int,
    groups: np.ndarray | None = None,
) -> FitResult:
    n = len(y)
    # The optimiser works with log x centred on the data: a_j - alpha_j log x_j is then
    # (a_j - alpha_j m_j) - alpha_j (log x_j - m_j), and the log-coefficient at the centre
    # of the data, a_j - alpha_j m_j, is nearly uncorrelated with alpha_j. Uncentred, with
    # log N ~ 20, the two form a long narrow valley that damped Newton crawls along.
    logx = np.log(np.vstack(xs))
    centre = logx.mean(axis=1)
    prob = _LogProblem(logx=logx - centre[:, None], logy=np.log(y), delta=delta)
    # Weights: 1 per point for the sum, 1/n for the mean. The gradient tolerance is per
    # unit weight, so it is gtol * n on the sum and gtol on the mean.
    weights = np.full(n, 1.0 if reduce == "sum" else 1.0 / n)
    tol = gtol * weights.sum()

    starts = _to_internal(law, init)[None, :] if init is not None else _grid_points(law, grid)
    starts = _shift(starts, centre, -1.0)
    n_starts = len(starts)
    # The search narrows in three stages, all vectorised over starts: (1) the objective
    # at every start; (2) the best `prescreen` take `screen_iter` Newton steps together;
    # (3) the best `keep` of those continue to convergence. On the Epoch data and on
    # synthetic sets, the starts that end at the global optimum rank near the top at
    # every stage, so this finds the same optimum as running every start to the end, at
    # a fraction of the cost.
    if n_starts > prescreen:
        (f0,) = _objective(prob, starts, weights, order=0)
        starts = starts[_best_rows(f0, prescreen)]
    first_iter = min(screen_iter, max_iter) if len(starts) > keep else max_iter
    state = _newton(prob, starts, weights, np.full(len(starts), tol), max_iter=first_iter)
    if len(starts) > keep:
        best = _best_rows(state.f, keep)
        rest = _newton(prob, state.theta[best], weights, np.full(len(best), tol), max_iter=max_iter)
        rest.nit += state.nit[best]
        state = rest
    f_rank = np.where(np.isfinite(state.f), state.f, np.inf)
    order = _rank(f_rank, state.converged)
    i_best = int(order[0])
    theta = state.theta[i_best]
    values = _to_params(law, _shift(theta, centre, +1.0))
    params = {nm: float(v) for nm, v in zip(law.param_names, values, strict=True)}
    derived = {k: float(v) for k, v in _derived(law, values).items()}
    log_pred = np.log(law.predict(params, *xs))
    residuals = np.log(y) - log_pred
    grad_norm = float(np.abs(state.g[i_best]).max())
    converged = bool(state.converged[i_best])
    message = (
        f"{'converged' if converged else 'NOT converged'}: max|gradient| = {grad_norm:.2e} "
        f"(tolerance {tol:.1e}) after {int(state.nit[i_best])} iterations; "
        f"best of {n_starts} start(s)"
    )

    intervals: dict[str, tuple[float, float]] = {}
    samples = None
    boot_converged = None
    if bootstrap > 0:
        # Each resample starts from the full-data optimum, and from up to two other
        # distinct local optima the grid found whose objective is within 25 % of the best:
        # resampling moves the objective by a few percent (its relative standard error
        # is about 1/sqrt(n)), enough for a resample to prefer a close rival basin but
        # not one that is far worse.
        rivals = order[f_rank[order] <= 1.25 * f_rank[order[0]]]
        seeds = state.theta[_distinct_rows(state.theta, rivals, count=3)]
        counts = resample_counts(n, bootstrap, seed, groups)
        boot_w = counts * weights  # same reduction as the full fit
        n_seed = len(seeds)
        theta0 = np.repeat(seeds[None], bootstrap, axis=0).reshape(-1, len(theta))
        w_rep = np.repeat(boot_w, n_seed, axis=0)
        tol_rep = gtol * w_rep.sum(axis=1)
        boot = _newton(prob, theta0, w_rep, tol_rep, max_iter=max_iter)
        f_boot = np.where(np.isfinite(boot.f), boot.f, np.inf).reshape(bootstrap, n_seed)
        conv = boot.converged.reshape(bootstrap, n_seed)
        f_min = f_boot.min(axis=1, keepdims=True)
        tied_conv = (f_boot <= f_min + _TIE * np.abs(f_min)) & conv
        pick = np.where(tied_conv.any(axis=1), tied_conv.argmax(axis=1), f_boot.argmin(axis=1))
        rows = np.arange(bootstrap) * n_seed + pick
        samples = _to_params(law, _shift(boot.theta[rows], centre, +1.0))
        boot_converged = float(boot.converged[rows].mean())
        der = _derived(law, samples)
        names = list(law.param_names) + list(der)
        table = np.column_stack([samples] + list(der.values()))
        intervals = percentile_intervals(names, table, level)
        message += f"; bootstrap: {bootstrap} refits, {boot_converged:.1%} converged"

    return FitResult(
        law=law.name,
        params=params,
        intervals=intervals,
        objective=float(state.f[i_best]),
        converged=converged,
        residuals=residuals,
        n=n,
        derived=derived,
        bootstrap=samples,
        message=message,
        level=level,
        interval_kind="bootstrap" if bootstrap > 0 else "none",
        nit=int(state.nit[i_best]),
        grad_norm=grad_norm,
        n_starts=n_starts,
        boot_converged=boot_converged,
    )


def fit_frame(
    df: pd.DataFrame,
    law: str | Law,
    *,
    x: str | Sequence[str] | None = None,
    y: str = "loss",
    groups: str | None = "auto",
    bootstrap: int | None = None,
    **kw: Any,
) -> FitResult:
    """Fit a law to columns of a DataFrame.

    ``chinchilla`` uses ``params`` and ``tokens`` unless ``x`` names two other columns;
    ``power`` and ``saturating`` use ``x`` (default ``"params"``). Error messages name
    the offending column. Other keywords go to :func:`fit`.

    ``groups`` says what the bootstrap resamples: ``"auto"`` (default) whole trunks, or
    whole runs, as :func:`analysis.resample.bootstrap_groups` finds them in the table; a column name: the
    rows sharing a value of that column; None: each row alone.

    ``bootstrap`` None (default) draws as ``scaling-analyze`` does: none for ``power``,
    :data:`DEFAULT_BOOTSTRAP` resamples for the others (:func:`default_bootstrap`).
    """
    law = get_law(law)
    if x is None:
        cols = ["params", "tokens"] if law.n_inputs == 2 else ["params"]
    else:
        cols = [x] if isinstance(x, str) else list(x)
    missing = [c for c in [*cols, y] if c not in df.columns]
    if isinstance(groups, str) and groups != "auto" and groups not in df.columns:
        missing.append(groups)
    if missing:
        raise ValueError(
            f"column(s) {', '.join(map(repr, missing))} not in the table "
            f"(it has: {', '.join(map(str, df.columns))})"
        )
    arrays = tuple(df[c].to_numpy(dtype=float) for c in cols)
    if groups is None:
        labels, kind = None, "points"
    elif groups == "auto":
        labels, kind = bootstrap_groups(df)
    else:
        labels, kind = df[groups].to_numpy(), groups
    return fit(law, arrays if len(arrays) > 1 else arrays[0], df[y].to_numpy(dtype=float),
               x_names=cols, y_name=y, groups=labels, group_kind=kind,
               bootstrap=default_bootstrap(law) if bootstrap is None else bootstrap, **kw)  # fmt: skip
