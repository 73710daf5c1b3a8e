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

The package
-----------
- :mod:`analysis.fit.core`: :func:`fit` -- its checks, ``power`` or the Newton fit, the
  identification of the result.
- :mod:`analysis.fit.engine`: the multi-start Newton search and the choice among its
  rows (:data:`PRESCREEN`, :data:`PATIENCE`).
- :mod:`analysis.fit.intervals`: the batched bootstrap refits and percentile intervals.
- :mod:`analysis.fit.defaults`: :func:`min_points`, :func:`default_bootstrap`,
  :func:`default_grid`, :func:`internal_names`.
- :mod:`analysis.fit.frame`: :func:`fit_frame` and its :data:`DEFAULT_COLUMNS`.

Import from :mod:`analysis.fit` itself; the submodules are its layout, not its API.
"""

from __future__ import annotations

# The ``X as X`` imports re-export names beyond __all__: the constants of the search and
# of fit_frame, and the names of analysis.newton, analysis.power and analysis.result that
# the fitter is built on.
from analysis.fit.core import fit
from analysis.fit.defaults import (
    DEFAULT_BOOTSTRAP,
    default_bootstrap,
    default_grid,
    internal_names,
    min_points,
)
from analysis.fit.engine import PATIENCE as PATIENCE
from analysis.fit.engine import PRESCREEN as PRESCREEN
from analysis.fit.frame import DEFAULT_COLUMNS as DEFAULT_COLUMNS
from analysis.fit.frame import fit_frame
from analysis.newton import LogProblem as LogProblem
from analysis.newton import newton as newton
from analysis.newton import objective as objective
from analysis.power import LogLogLine, loglog_line
from analysis.power import percentile_intervals as percentile_intervals
from analysis.result import FitResult
from analysis.result import identify as identify

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
