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

The engine is one for every law: a law supplies its log-prediction with the Jacobian
and second derivatives in its internal coordinates
(:meth:`analysis.laws.base.Law.log_predict`), its centring and its default grid of
starts; the Huber objective, the Newton method, the narrowing of the starts, the
bootstrap and the result are shared. The sums of powers above evaluate the same
objective fused into one pass (:class:`analysis.newton.LogProblem`). Parameters can be
fixed or tied (``fix``, ``tie``; :mod:`analysis.constraints`): the search then runs over
the free coordinates alone, and only they get intervals. The starts live in
:mod:`analysis.starts`, the checks of the inputs in :mod:`analysis.inputs`.

Every result says whether the data identify it (:attr:`FitResult.identified`, with the
reasons in :attr:`FitResult.identification`; see :func:`analysis.result.identify`).
The result object lives in :mod:`analysis.result`, the batched objective and Newton
method in :mod:`analysis.newton`, the least-squares line of ``power`` in
:mod:`analysis.power`; their names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis import progress
from analysis.constraints import Constraints, make_constraints
from analysis.inputs import check_data
from analysis.laws import Law, SumOfPowers, get_law
from analysis.newton import LogProblem, newton, objective
from analysis.power import LogLogLine, _fit_power, loglog_line, percentile_intervals
from analysis.resample import bootstrap_groups, group_labels, kind_text, resample_counts
from analysis.result import FitResult, identify
from analysis.starts import centre_of
from analysis.starts import starts as make_starts

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

#: Bootstrap resamples of a saturating or chinchilla fit when none are asked for (the
#: command line's default too): enough for stable 95 % percentile intervals (the 2.5 %
#: tail holds 5 samples) while keeping a chinchilla fit to seconds.
DEFAULT_BOOTSTRAP = 200

# A fit needs some residual degrees of freedom to mean anything: with as many points
# as parameters any curve of the form passes through them exactly and the intervals are
# meaningless. We ask for at least twice as many points as parameters (4 for power,
# 6 for saturating, 10 for chinchilla).
_MIN_POINTS_PER_PARAM = 2


def min_points(law: str | Law, free: int | None = None) -> int:
    """The fewest points :func:`fit` accepts for ``law`` (twice its parameter count, or
    twice ``free``, the parameters left free by ``fix`` and ``tie``)."""
    count = len(get_law(law).param_names) if free is None else free
    return _MIN_POINTS_PER_PARAM * count


def default_bootstrap(law: str | Law) -> int:
    """Resamples :func:`fit_frame` draws unless told: none for ``power`` (its Student-t
    intervals are exact for a straight line in log-log with normal errors),
    :data:`DEFAULT_BOOTSTRAP` for the others."""
    return 0 if get_law(law).name == "power" else DEFAULT_BOOTSTRAP


def internal_names(law: str | Law) -> tuple[str, ...]:
    """Names of the fitter's internal coordinates (:meth:`Law.internal_names`).

    For chinchilla ``("e", "a", "b", "alpha", "beta")``, i.e. ``E = exp(e)``,
    ``A = exp(a)``, ``B = exp(b)``; for bnsl ``("log_a", "log_b", "c0", ...)``.
    """
    return get_law(law).internal_names()


def default_grid(law: str | Law, x: Any = None, y: Any = None) -> dict[str, np.ndarray]:
    """The default grid of starting points, keyed by :func:`internal_names`.

    The sums of powers have one grid for all data; ``bnsl``, ``bnsl2`` and ``kaplan``
    place theirs on the data ``x`` (one array, or a tuple ``(N, D)``) and ``y``, in
    coordinates centred on it (see each law's docstring).
    """
    law = get_law(law)
    logx = logy = None
    if x is not None:
        xs = x if isinstance(x, (tuple, list)) and law.n_inputs > 1 else (x,)
        logx = np.log(np.vstack([np.asarray(v, dtype=float) for v in xs]))
    if y is not None:
        logy = np.log(np.asarray(y, dtype=float))
    return law.default_grid(logx, logy)


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


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
    prescreen: int | None = None,
    screen_iter: int = 2,
    keep: int = 64,
    x_names: Sequence[str] | None = None,
    y_name: str | None = None,
    groups: Any = None,
    group_kind: str | None = None,
    fix: Mapping[str, float] | Sequence[str] | None = None,
    tie: Mapping[str, str] | Sequence[str] | None = None,
) -> FitResult:
    """Fit ``law`` to points ``(x, y)``.

    Parameters
    ----------
    law
        A name of :data:`analysis.laws.LAWS` (``"power"``, ``"saturating"``,
        ``"chinchilla"``, ``"bnsl"``, ``"bnsl2"``, ``"kaplan"``) or a
        :class:`~analysis.laws.Law`.
    x
        One array (power, saturating, bnsl) or a tuple ``(N, D)`` (chinchilla,
        kaplan). All positive.
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
        instead of the grid (``init`` and ``grid`` do not apply to ``power``); fixed and
        tied parameters may be left out.
    reduce
        ``"sum"`` (default, as published) or ``"mean"`` over points.
    level
        Confidence level of the intervals.
    grid
        Axes of the grid of starts in internal coordinates (see :func:`default_grid`;
        centred on the data for the laws whose default grid is); the axes of fixed and
        tied parameters may be left out.
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
        runs to the end. ``prescreen`` None: 1,024 for the sums of powers, 256 for the
        other laws, whose Newton steps cost more (see :data:`PRESCREEN`).
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
    fix
        Parameters held at a value: ``{"E": 1.69}`` or ``["E=1.69"]``. They are not
        searched and get no interval.
    tie
        Parameters set equal: ``{"beta": "alpha"}`` (follower to the one it follows) or
        ``["alpha=beta"]`` (the first kept, the second set to it). Only the first gets
        an interval. See :mod:`analysis.constraints`.

    Raises
    ------
    ValueError
        On NaN, infinite or non-positive inputs, too few points (fewer than twice the
        number of free parameters), or bad options.
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
    if (fix or tie) and not law.newton_fitted:
        raise ValueError(f"--fix and --tie do not apply to {law.name!r}, fitted in closed form")
    cons = make_constraints(law, fix, tie)
    free = None if cons is None else len(cons.free)
    xs, y_arr = check_data(law, x, y, x_names, y_name, min_points(law, free), free)
    labels = group_labels(groups, len(y_arr))
    variables = tuple(x_names) if x_names is not None else ()
    target = y_name or ""
    if law.name == "power":
        result = _fit_power(
            law, xs[0], y_arr, bootstrap=bootstrap, seed=seed, reduce=reduce, level=level,
            groups=labels,
        )  # fmt: skip
    elif law.newton_fitted:
        result = _fit_newton(
            law, xs, y_arr, delta=delta, bootstrap=bootstrap, seed=seed, init=init,
            reduce=reduce, level=level, grid=grid, gtol=gtol, max_iter=max_iter,
            prescreen=prescreen, screen_iter=screen_iter, keep=keep, groups=labels,
            cons=cons,
        )  # fmt: skip
    else:
        raise ValueError(f"no fitter for law {law.name!r}")
    result.variables, result.target = variables, target
    result.x, result.y = xs, y_arr
    if cons is not None:
        result.fixed, result.tied = dict(cons.fixed), dict(cons.tied)
    if bootstrap > 0:
        result.n_groups = len(y_arr) if labels is None else int(labels.max()) + 1
        result.resampled = "points" if labels is None else (group_kind or "groups")
        result.message += f", resampling {result.n_groups} {kind_text(result.resampled)}"
        _warn_few_groups(law, result, free)
    ranges = _search_ranges(law, grid) if isinstance(law, SumOfPowers) else None
    result.identification = identify(result, ranges)
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
    for name, axis in law.default_grid().items():
        values = np.concatenate([axis, np.asarray(given.get(name, []), dtype=float)])
        out[name] = (float(values.min()), float(values.max()))
    return out


def _warn_few_groups(law: Law, result: FitResult, free: int | None = None) -> None:
    """Say so when the bootstrap has fewer groups to draw than the law needs points:
    then a share of the resamples cannot pin every parameter, and the intervals, wide
    as they come out, say little."""
    need = min_points(law, free)
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


def _natural(
    law: Law, prob: Any, theta: np.ndarray, centre: np.ndarray, cons: Constraints | None
) -> np.ndarray:
    """Natural parameters of rows of the engine's coordinates (free ones, if any)."""
    if cons is None:
        return law.to_params(law.shift(theta, centre, +1.0))
    full = cons.impose(law.shift(prob.full(theta), centre, +1.0))
    return cons.impose_natural(law.to_params(full))


def _fit_newton(
    law: Law,
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
    cons: Constraints | None = None,
) -> FitResult:
    n = len(y)
    # The optimiser works with log x centred on the data: a_j - alpha_j log x_j is then
    # (a_j - alpha_j m_j) - alpha_j (log x_j - m_j), and the log-coefficient at the centre
    # of the data, a_j - alpha_j m_j, is nearly uncorrelated with alpha_j. Uncentred, with
    # log N ~ 20, the two form a long narrow valley that damped Newton crawls along.
    # (Every law says how its coordinates move with the centre: Law.shift.)
    logx = np.log(np.vstack(xs))
    logy = np.log(y)
    centre = centre_of(logx, law)
    prob = law.problem(logx - centre[:, None], logy, delta)
    # Weights: 1 per point for the sum, 1/n for the mean. The gradient tolerance is per
    # unit weight, so it is gtol * n on the sum and gtol on the mean.
    weights = np.full(n, 1.0 if reduce == "sum" else 1.0 / n)
    tol = gtol * weights.sum()

    fused = isinstance(law, SumOfPowers)
    if prescreen is None:
        prescreen = PRESCREEN["sum_of_powers" if fused else "other"]
    patience = None if fused else (law.search_patience or PATIENCE)
    starts = make_starts(law, init, grid, logx, logy, cons)
    if cons is not None:
        # Search the centred free coordinates alone (analysis.constraints).
        prob = cons.problem(prob, centre)
        starts = starts[:, cons.free_index()]
    n_starts = len(starts)
    # The search narrows in three stages, all vectorised over starts: (1) the objective
    # at every start; (2) the best `prescreen` take `screen_iter` Newton steps together;
    # (3) the best `keep` of those continue to convergence. On the Epoch data and on
    # synthetic sets, the starts that end at the global optimum rank near the top at
    # every stage, so this finds the same optimum as running every start to the end, at
    # a fraction of the cost.
    if n_starts > prescreen:
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
    f_rank = np.where(np.isfinite(state.f), state.f, np.inf)
    order = _rank(f_rank, state.converged)
    i_best = int(order[0])
    theta = state.theta[i_best]
    values = _natural(law, prob, theta, centre, cons)
    params = {nm: float(v) for nm, v in zip(law.param_names, values, strict=True)}
    derived = {k: float(v) for k, v in law.derived(values).items()}
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
        with progress.bar(bootstrap * n_seed, f"{law.name} bootstrap") as update:
            boot = newton(prob, theta0, w_rep, tol_rep, max_iter=max_iter, on_progress=update)
        f_boot = np.where(np.isfinite(boot.f), boot.f, np.inf).reshape(bootstrap, n_seed)
        conv = boot.converged.reshape(bootstrap, n_seed)
        f_min = f_boot.min(axis=1, keepdims=True)
        tied_conv = (f_boot <= f_min + _TIE * np.abs(f_min)) & conv
        pick = np.where(tied_conv.any(axis=1), tied_conv.argmax(axis=1), f_boot.argmin(axis=1))
        rows = np.arange(bootstrap) * n_seed + pick
        samples = _natural(law, prob, boot.theta[rows], centre, cons)
        boot_converged = float(boot.converged[rows].mean())
        intervals = _intervals(law, samples, values, level, cons)
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


def _intervals(
    law: Law, samples: np.ndarray, best: np.ndarray, level: float, cons: Constraints | None
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the free parameters and of the derived quantities that
    the constraints leave free to move (with ``alpha = beta`` tied, chinchilla's
    ``a = beta/(alpha+beta)`` is 1/2 by construction and gets none)."""
    der = law.derived(samples)
    if cons is None:
        names = list(law.param_names) + list(der)
        table = np.column_stack([samples] + list(der.values()))
        return percentile_intervals(names, table, level)
    free = cons.free_index()
    names = [law.param_names[i] for i in free]
    columns = [samples[:, i] for i in free]
    moved = best.copy()
    moved[free] *= 1.1  # every free parameter moved: a derived quantity that stays put
    moved = cons.impose_natural(moved)  # follows from the constraints alone
    at_best, at_moved = law.derived(best), law.derived(moved)
    for name, column in der.items():
        if abs(float(at_moved[name]) - float(at_best[name])) > 1e-12 * abs(float(at_best[name])):
            names.append(name)
            columns.append(column)
    return percentile_intervals(names, np.column_stack(columns), level)


#: The input columns a law of several inputs reads when ``x`` is not given (else
#: ``params`` and ``tokens`` for two inputs, ``params`` for one).
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "overtraining": ["flops", "tokens_per_param"],
    "data_constrained": ["params", "tokens", "unique_tokens"],
}


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

    ``chinchilla`` and ``kaplan`` use ``params`` and ``tokens`` unless ``x`` names two
    other columns, ``overtraining`` ``flops`` and ``tokens_per_param`` (``tokens /
    params`` when the table has no such column), ``data_constrained`` ``params``,
    ``tokens`` and ``unique_tokens`` (turned into the ratios it reads,
    :func:`analysis.laws.repeated.repetition_inputs`);
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
        cols = DEFAULT_COLUMNS.get(law.name) or (
            ["params", "tokens"] if law.n_inputs == 2 else ["params"]
        )
    else:
        cols = [x] if isinstance(x, str) else list(x)
    if "tokens_per_param" in cols and "tokens_per_param" not in df.columns:
        if {"tokens", "params"} <= set(df.columns):
            df = df.assign(tokens_per_param=df["tokens"] / df["params"])
    missing = [c for c in [*cols, y] if c not in df.columns]
    if isinstance(groups, str) and groups != "auto" and groups not in df.columns:
        missing.append(groups)
    if missing:
        raise ValueError(
            f"column(s) {', '.join(map(repr, missing))} not in the table "
            f"(it has: {', '.join(map(str, df.columns))})"
        )
    arrays = tuple(df[c].to_numpy(dtype=float) for c in cols)
    if law.name == "data_constrained" and len(arrays) == 3:
        from analysis.laws.repeated import repetition_inputs

        # N, D and the unique tokens -> N, D and the repetition ratios the law reads
        arrays = repetition_inputs(*arrays)
        cols = [cols[0], cols[1], "rho_N", "rho_D"]
    if groups is None:
        labels, kind = None, "points"
    elif groups == "auto":
        labels, kind = bootstrap_groups(df)
    else:
        labels, kind = df[groups].to_numpy(), groups
    return fit(law, arrays if len(arrays) > 1 else arrays[0], df[y].to_numpy(dtype=float),
               x_names=cols, y_name=y, groups=labels, group_kind=kind,
               bootstrap=default_bootstrap(law) if bootstrap is None else bootstrap, **kw)  # fmt: skip
