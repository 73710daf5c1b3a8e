"""The fit of a law to points: :func:`fit` checks its inputs and options, fits ``power``
in closed form (:mod:`analysis.power`) and every other law by the batched damped Newton
search (:func:`_fit_newton`, on :mod:`analysis.fit.engine`, with the bootstrap of
:mod:`analysis.fit.intervals`), and says what the result identifies. The method is
described in :mod:`analysis.fit`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis.constraints import Constraints, make_constraints
from analysis.fit.defaults import points_needed
from analysis.fit.engine import _natural, _rank, _search
from analysis.fit.intervals import _bootstrap, _intervals
from analysis.inputs import check_data
from analysis.laws import Law, SumOfPowers, get_law
from analysis.power import _fit_power
from analysis.resample import group_labels, kind_text
from analysis.result import FitResult, identify
from analysis.starts import centre_of
from analysis.starts import starts as make_starts

__all__ = ["fit"]


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
    min_points: int | None = None,
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
    min_points
        The fewest points to accept. None (default): twice the number of free
        parameters (:func:`analysis.fit.min_points`), which leaves the residual degrees
        of freedom an interval needs. An integer, at least the number of free
        parameters, replaces that rule, e.g. to fit a published law to the few points
        its paper fitted; a bootstrap over fewer groups than this many then warns.

    Raises
    ------
    ValueError
        On NaN, infinite or non-positive inputs, too few points (fewer than twice the
        number of free parameters, or than ``min_points``), or bad options (a
        ``min_points`` below the number of free parameters among them).
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
    # `min_points` is the keyword here; the rule it overrides is defaults.min_points.
    need = points_needed(law, free, min_points)
    why = None if min_points is None else f"min_points={need}"
    xs, y_arr = check_data(law, x, y, x_names, y_name, need, free, why)
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
        _warn_few_groups(law, result, need)
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


def _warn_few_groups(law: Law, result: FitResult, need: int) -> None:
    """Say so when the bootstrap has fewer groups to draw than the ``need`` points the
    fit asked for: then a share of the resamples cannot pin every parameter, and the
    intervals, wide as they come out, say little."""
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
    prescreen: int | None,
    screen_iter: int,
    keep: int,
    groups: np.ndarray | None = None,
    cons: Constraints | None = None,
) -> FitResult:
    """Fit a law of :attr:`Law.newton_fitted` by the multi-start search of
    :mod:`analysis.fit.engine`, with ``bootstrap`` refits for its intervals
    (:mod:`analysis.fit.intervals`); the keywords are :func:`fit`'s."""
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

    starts = make_starts(law, init, grid, logx, logy, cons)
    if cons is not None:
        # Search the centred free coordinates alone (analysis.constraints).
        prob = cons.problem(prob, centre)
        starts = starts[:, cons.free_index()]
    n_starts = len(starts)
    state = _search(law, prob, starts, weights, tol, max_iter=max_iter, prescreen=prescreen,
                    screen_iter=screen_iter, keep=keep)  # fmt: skip
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
        samples, boot_converged = _bootstrap(
            law, prob, state, order, f_rank, centre, cons, weights=weights,
            bootstrap=bootstrap, seed=seed, groups=groups, gtol=gtol, max_iter=max_iter,
        )  # fmt: skip
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
