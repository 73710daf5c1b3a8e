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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.laws import Law, SumOfPowers, get_law
from analysis.resample import bootstrap_groups, describe, group_labels, kind_text, resample_counts

if TYPE_CHECKING:  # pandas is only needed by fit_frame's callers
    import pandas as pd

__all__ = [
    "FitResult",
    "LogLogLine",
    "default_grid",
    "fit",
    "fit_frame",
    "internal_names",
    "loglog_line",
    "min_points",
]

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
# Result object
# --------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """The outcome of :func:`fit`, in the spirit of ``scipy.optimize.OptimizeResult``.

    Attributes
    ----------
    law
        Name of the fitted law.
    params
        Best-fit parameters, keyed by the law's ``param_names``.
    intervals
        ``{name: (lo, hi)}`` at ``level``: percentile bootstrap intervals of the
        parameters and of ``derived`` quantities when ``bootstrap > 0``; for ``power``
        Student-t intervals when there is no bootstrap; otherwise empty.
    objective
        The minimised objective (Huber loss of log residuals, summed or averaged; for
        ``power`` the sum or mean of squared log residuals).
    converged
        True when the largest gradient component per unit weight is below ``gtol``.
    residuals
        ``log(y) - log(prediction)``, one per point.
    n
        Number of points fitted.
    derived
        Quantities computed from the parameters. Chinchilla: ``a = beta/(alpha+beta)``
        and ``b = alpha/(alpha+beta)``, the exponents of ``N_opt ∝ C^a`` and
        ``D_opt ∝ C^b``.
    bootstrap
        ``(n_boot, n_params)`` parameter samples in ``param_names`` order, or None.
    message
        What the optimiser reports.
    level
        Confidence level of ``intervals`` and the default of :meth:`predict_band`.
    interval_kind
        ``"bootstrap"``, ``"t"`` or ``"none"``.
    nit
        Newton iterations taken by the best start.
    grad_norm
        Largest gradient component of the objective at the optimum.
    n_starts
        Number of starting points.
    boot_converged
        Fraction of bootstrap refits that converged (None without a bootstrap).
    variables, target
        Symbols used in :meth:`formula` (column names when fitted from a table).
    resampled
        What the bootstrap drew with replacement: ``"points"``, ``"runs"`` (all points
        of a learning curve together), ``"trunks"`` (all budget records of a training
        trajectory together), ``"groups"`` (labels given to :func:`fit`) or a column
        name; None without a bootstrap.
    n_groups
        How many of those there were to draw from (None without a bootstrap).
    x, y
        The fitted data.
    """

    law: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    objective: float
    converged: bool
    residuals: np.ndarray
    n: int
    derived: dict[str, float]
    bootstrap: np.ndarray | None
    message: str
    level: float = 0.95
    interval_kind: str = "none"
    nit: int = 0
    grad_norm: float = 0.0
    n_starts: int = 1
    boot_converged: float | None = None
    variables: tuple[str, ...] = ()
    target: str = ""
    resampled: str | None = None
    n_groups: int | None = None
    x: tuple[np.ndarray, ...] = field(default=(), repr=False)
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def law_form(self) -> Law:
        """The :class:`~analysis.laws.Law` object behind :attr:`law`."""
        return get_law(self.law)

    def predict(self, *x: np.ndarray) -> np.ndarray:
        """The fitted law at ``x`` (one array, or ``N, D`` for chinchilla)."""
        return self.law_form.predict(self.params, *x)

    def predict_band(
        self, *x: np.ndarray, level: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the prediction over the bootstrap samples.

        Raises
        ------
        ValueError
            When the fit was made without ``bootstrap``.
        """
        if self.bootstrap is None or len(self.bootstrap) == 0:
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get a band")
        level = self.level if level is None else level
        xs = [np.asarray(v, dtype=float) for v in x]
        ndim = max([v.ndim for v in xs] + [0])
        # Parameters as (n_boot, 1, ..., 1) columns so that the law broadcasts over x.
        shape = (-1,) + (1,) * ndim
        samples = {
            name: self.bootstrap[:, i].reshape(shape)
            for i, name in enumerate(self.law_form.param_names)
        }
        preds = self.law_form.predict(samples, *xs)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def formula(self) -> str:
        """The fitted law with its numbers, e.g. ``L = 1.82 + 482/N^0.348 + 2085/D^0.366``."""
        return self.law_form.formula(
            self.params, variables=self.variables or None, target=self.target or None
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: law, n, params, intervals, objective, converged, derived,
        and ``bootstrap``: ``{"resamples", "resampled", "n_groups"}`` or None."""
        boot = None
        if self.bootstrap is not None:
            boot = {
                "resamples": int(len(self.bootstrap)),
                "resampled": self.resampled,
                "n_groups": None if self.n_groups is None else int(self.n_groups),
            }
        return {
            "law": self.law,
            "n": int(self.n),
            "params": {k: _json_float(v) for k, v in self.params.items()},
            "intervals": {
                k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.intervals.items()
            },
            "objective": _json_float(self.objective),
            "converged": bool(self.converged),
            "derived": {k: _json_float(v) for k, v in self.derived.items()},
            "bootstrap": boot,
        }

    def resampling(self) -> str:
        """How the bootstrap resampled, in words (empty without a bootstrap), e.g.
        ``"200 resamples of 12 trunks (the budgets of one trunk drawn together)"``."""
        if self.bootstrap is None or self.resampled is None:
            return ""
        return describe(len(self.bootstrap), self.resampled, self.n_groups)

    def __str__(self) -> str:
        lines = [f"{self.formula()}   ({self.law}, n={self.n})"]
        for name, value in {**self.params, **self.derived}.items():
            text = f"  {name:>6} = {value:.6g}"
            if name in self.intervals:
                lo, hi = self.intervals[name]
                text += f"   [{lo:.6g}, {hi:.6g}] ({self.interval_kind}, {self.level:.0%})"
            lines.append(text)
        lines.append(f"  objective = {self.objective:.6g}, converged = {self.converged}")
        lines.append(f"  {self.message}")
        return "\n".join(lines)


def _json_float(value: float) -> float | None:
    """A plain float, or None for NaN/inf (which strict JSON cannot hold)."""
    value = float(value)
    return value if math.isfinite(value) else None


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
# The batched objective and its derivatives
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LogProblem:
    """Data of a sum-of-powers fit in log space: ``logx`` is (K, n), ``logy`` is (n,)."""

    logx: np.ndarray
    logy: np.ndarray
    delta: float

    @property
    def k(self) -> int:
        return self.logx.shape[0]


# Rows of parameters evaluated per block: about 32k (row, point) pairs, so that the
# block's temporaries stay in the CPU cache. Evaluating thousands of starts as one
# (S, n) block is 2-3x slower, limited by memory traffic rather than arithmetic.
_BLOCK_ELEMENTS = 32_768


def _objective(
    prob: _LogProblem, theta: np.ndarray, weights: np.ndarray, order: int = 2
) -> tuple[np.ndarray, ...]:
    """:func:`_objective_block` over row blocks of ``theta`` (see ``_BLOCK_ELEMENTS``)."""
    rows = max(1, _BLOCK_ELEMENTS // prob.logy.shape[0])
    if theta.shape[0] <= rows:
        return _objective_block(prob, theta, weights, order)
    parts = [
        _objective_block(prob, theta[i : i + rows], _row(weights, slice(i, i + rows)), order)
        for i in range(0, theta.shape[0], rows)
    ]
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _objective_block(
    prob: _LogProblem, theta: np.ndarray, weights: np.ndarray, order: int = 2
) -> tuple[np.ndarray, ...]:
    """Huber objective of S parameter vectors at once, with its derivatives.

    Parameters
    ----------
    theta
        (S, P) internal parameters ``(e, a_1..a_K, alpha_1..alpha_K)``.
    weights
        (n,) shared or (S, n) per-row weights of the points (bootstrap counts).
    order
        0: objective only; 1: and gradient; 2: and Hessian and parameter scales.

    Returns
    -------
    f (S,); then g (S, P); then H (S, P, P) and the Gauss-Newton diagonal (S, P).

    Notes
    -----
    Term j of the log-sum-exp is ``t_0 = e`` or ``t_j = a_j - alpha_j X_j`` (with
    ``X_j = log x_j``), and ``s = LSE(t)``. Its gradient is ``∂s/∂e = w_0``,
    ``∂s/∂a_j = w_j``, ``∂s/∂alpha_j = -w_j X_j``, with ``w = softmax(t)``. Each
    quantity is kept as one contiguous (S, n) array per term, and sums over points are
    matrix-vector products, which is several times faster than (S, K+1, n) stacks.
    """
    k, delta = prob.k, prob.delta
    e = theta[:, :1]
    terms = [np.broadcast_to(e, (theta.shape[0], prob.logy.shape[0]))]
    terms += [theta[:, 1 + j, None] - theta[:, 1 + k + j, None] * prob.logx[j] for j in range(k)]
    top = terms[0]
    for t in terms[1:]:
        top = np.maximum(top, t)
    # Shifted by the max, so no overflow. Terms more than e^-40 below the largest change
    # nothing in double precision; clipping them there keeps exp and the products below
    # out of subnormal numbers, which are many times slower to compute with.
    expd = [np.exp(np.maximum(t - top, -40.0)) for t in terms]
    total = expd[0] + expd[1] if k else expd[0]
    for ex in expd[2:]:
        total += ex
    r = top + np.log(total) - prob.logy  # log ŷ - log y
    absr = np.abs(r)
    quad = absr <= delta
    huber = np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta))
    f = (huber * weights).sum(axis=-1)
    if order == 0:
        return (f,)

    inv = 1.0 / total
    w = [ex * inv for ex in expd]  # softmax weights of the terms, (S, n) each
    dh = np.clip(r, -delta, delta) * weights  # Huber derivative times weight
    p_count = theta.shape[1]
    g = np.empty((theta.shape[0], p_count))
    dhw = [dh * wj for wj in w]
    for j in range(k + 1):
        g[:, j] = dhw[j].sum(axis=-1)
    for j in range(1, k + 1):
        g[:, k + j] = -(dhw[j] @ prob.logx[j - 1])
    if order == 1:
        return f, g

    # Hessian of Σ c h(r(θ)):  Σ c [h''(r) ∇s∇sᵀ + h'(r) ∇²s], where for a log-sum-exp
    # of terms linear in θ,  ∇²s = Σ_j w_j ∇t_j∇t_jᵀ - ∇s∇sᵀ.  So
    #   H = Σ c (h'' - h') ∇s∇sᵀ  +  Σ_j Σ c h' w_j ∇t_j∇t_jᵀ.
    # Every entry is a sum over points of w_i w_j (or w_j) times 1, X_i, X_j or X_i X_j.
    q = quad * weights - dh
    hess = np.zeros((theta.shape[0], p_count, p_count))
    logx = [None, *prob.logx]  # logx[j] belongs to term j (term 0 has none)

    def coef(j: int) -> int:  # index of the log-coefficient of term j
        return j

    def expo(j: int) -> int:  # index of the exponent of term j >= 1
        return k + j

    for i in range(k + 1):
        for j in range(i, k + 1):
            qw = q * w[i] * w[j]
            # ∇s_p∇s_q restricted to terms (i, j): coefficients give 1, exponents -X.
            hess[:, coef(i), coef(j)] += qw.sum(axis=-1)
            if j >= 1:
                hess[:, coef(i), expo(j)] -= qw @ logx[j]
            if i >= 1:
                hess[:, expo(i), coef(j)] -= qw @ logx[i]
            if i >= 1 and j >= 1:
                hess[:, expo(i), expo(j)] += qw @ (logx[i] * logx[j])
            if i != j:  # the (j, i) block is the transpose of (i, j)
                hess[:, coef(j), coef(i)] = hess[:, coef(i), coef(j)]
                if j >= 1:
                    hess[:, expo(j), coef(i)] = hess[:, coef(i), expo(j)]
                if i >= 1:
                    hess[:, coef(j), expo(i)] = hess[:, expo(i), coef(j)]
                if i >= 1 and j >= 1:
                    hess[:, expo(j), expo(i)] = hess[:, expo(i), expo(j)]
    # The log-sum-exp curvature, Σ c h' w_j ∇t_j∇t_jᵀ with ∇t_j = e_coef(j) - X_j e_expo(j).
    hess[:, 0, 0] += dhw[0].sum(axis=-1)
    for j in range(1, k + 1):
        s1 = dhw[j] @ logx[j]
        hess[:, coef(j), coef(j)] += g[:, j]
        hess[:, coef(j), expo(j)] -= s1
        hess[:, expo(j), coef(j)] -= s1
        hess[:, expo(j), expo(j)] += dhw[j] @ (logx[j] * logx[j])

    # Diagonal of the Gauss-Newton matrix Σ c ∇s∇sᵀ: the damping's parameter scales.
    scale = np.empty_like(g)
    for j in range(k + 1):
        cw2 = weights * w[j] * w[j]
        scale[:, coef(j)] = cw2.sum(axis=-1)
        if j >= 1:
            scale[:, expo(j)] = cw2 @ (logx[j] * logx[j])
    scale += 1e-12 * scale.max(axis=1, keepdims=True) + 1e-300
    return f, g, hess, scale


def _row(weights: np.ndarray, idx: np.ndarray | slice) -> np.ndarray:
    """Select rows of per-problem weights; shared (1-D) weights pass through."""
    return weights if weights.ndim == 1 else weights[idx]


@dataclass
class _BatchState:
    """Where a batch of Newton runs stands: one row per problem."""

    theta: np.ndarray
    f: np.ndarray
    g: np.ndarray
    nit: np.ndarray
    converged: np.ndarray


def _newton(
    prob: _LogProblem,
    theta0: np.ndarray,
    weights: np.ndarray,
    gtol: np.ndarray,
    max_iter: int,
) -> _BatchState:
    """Minimise S problems at once by Levenberg-Marquardt with exact derivatives.

    Each row has its own damping ``lam``: a step solves ``(H + lam D) p = -g`` with
    ``D`` the diagonal of the Gauss-Newton matrix ``Σ ∇s∇sᵀ``, which puts parameters of
    very different sensitivity (an exponent multiplies log x, a log-coefficient does not)
    on one scale. ``lam`` shrinks after good steps, making
    the method Newton's near the optimum (fast, quadratic convergence), and grows after
    failed ones, making it a short, scaled gradient step where the Hessian is indefinite.
    Rows stop when their largest gradient component is below ``gtol`` (per row), or when
    the damping has blown up (no further progress possible in floating point).
    """
    theta = np.array(theta0, dtype=float)
    s_count, p = theta.shape
    f, g, hess, scale = _objective(prob, theta, weights)
    nit = np.zeros(s_count, dtype=int)
    converged = np.abs(g).max(axis=1) <= gtol
    active = ~converged & np.isfinite(f)
    lam = np.full(s_count, 1e-3)
    eye = np.eye(p)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        gi, hi = g[idx], hess[idx]
        damped = hi + (lam[idx, None] * scale[idx])[:, :, None] * eye
        step = _solve(damped, -gi)
        trial = theta[idx] + step
        (f_trial,) = _objective(prob, trial, _row(weights, idx), order=0)
        # Gain ratio: actual decrease over the decrease the quadratic model predicted.
        predicted = -(
            np.einsum("sp,sp->s", gi, step) + 0.5 * np.einsum("sp,spq,sq->s", step, hi, step)
        )
        actual = f[idx] - f_trial
        # Near the optimum the decrease drops below floating-point resolution of f; such
        # steps are still taken (the gradient test, not f, decides convergence).
        tiny = np.abs(actual) <= 1e-14 * np.abs(f[idx])
        descent = np.einsum("sp,sp->s", gi, step) < 0
        ok = np.isfinite(f_trial) & descent & ((actual > 0) | tiny)
        rho = np.where(predicted > 0, actual / np.where(predicted > 0, predicted, 1.0), 0.0)
        rho[tiny & ok] = 1.0  # no measurable change: the model is as good as f can tell
        nit[idx] += 1

        good, bad = idx[ok], idx[~ok]
        # Trust-region style damping update: shrink after steps the quadratic model
        # predicted well, grow after poor or failed ones.
        lam[good] *= np.where(rho[ok] > 0.75, 0.2, np.where(rho[ok] < 0.25, 2.0, 1.0))
        lam[good] = np.maximum(lam[good], 1e-15)
        lam[bad] *= 4.0
        if good.size:
            theta[good] = trial[ok]
            fg, gg, hg, sg = _objective(prob, theta[good], _row(weights, good))
            f[good], g[good], hess[good], scale[good] = fg, gg, hg, sg
            converged[good] = np.abs(gg).max(axis=1) <= gtol[good]
        stalled = lam > 1e20
        active = ~converged & ~stalled & np.isfinite(f)
    return _BatchState(theta=theta, f=f, g=g, nit=nit, converged=converged)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve of small systems; a singular one gets a least-squares step instead."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("spq,sq->sp", np.linalg.pinv(a), b)


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
    return result


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


def _percentile_intervals(
    names: Sequence[str], samples: np.ndarray, level: float
) -> dict[str, tuple[float, float]]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return {nm: (float(lo[i]), float(hi[i])) for i, nm in enumerate(names)}


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
        intervals = _percentile_intervals(names, table, level)
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
    assert line.intercept_interval is not None and line.slope_interval is not None  # n >= 4
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
        intervals = _percentile_intervals(law.param_names, samples, level)
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


def fit_frame(
    df: pd.DataFrame,
    law: str | Law,
    *,
    x: str | Sequence[str] | None = None,
    y: str = "loss",
    groups: str | None = "auto",
    **kw: Any,
) -> FitResult:
    """Fit a law to columns of a DataFrame.

    ``chinchilla`` uses ``params`` and ``tokens`` unless ``x`` names two other columns;
    ``power`` and ``saturating`` use ``x`` (default ``"params"``). Error messages name
    the offending column. Other keywords go to :func:`fit`.

    ``groups`` says what the bootstrap resamples: ``"auto"`` (default) whole trunks, or
    whole runs, as :func:`analysis.resample.bootstrap_groups` finds them in the table; a column name: the
    rows sharing a value of that column; None: each row alone.
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
               x_names=cols, y_name=y, groups=labels, group_kind=kind, **kw)  # fmt: skip
