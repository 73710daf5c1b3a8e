"""What a fit returns: :class:`FitResult`, and whether the data identify its parameters.

A fit can converge -- the gradient vanishes -- and still say nothing: a law of N and D
fitted to a single model size leaves the size term free to take any shape, an exponent
that comes out negative says the loss rises with size, a floor E that runs to zero says
the data put no floor under the loss, and an exponent far past any scaling exponent
ever measured says the optimiser found a corner, not an answer. :func:`identify` names
each such reason; :func:`analysis.fit.fit` stores them on the result as
``identification`` (``identified`` is True when there are none), and whatever is
derived from an unidentified fit (the compute-optimal exponent, allocations,
predictions) carries the flag on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.laws import Law, SumOfPowers, get_law
from analysis.resample import describe

__all__ = ["FitResult", "identify", "plain_float"]

# A law needs at least this many distinct values of each input: one per parameter of a
# one-variable law (a curve with P parameters passes through any P points), and three of
# each for a law of N and D (each term has a coefficient and an exponent, plus the floor
# they share).
_DISTINCT_TWO_INPUTS = 3
# N and D "vary independently" when log D is not a function of log N: a straight line
# (D ∝ N^k, e.g. 20 tokens per parameter) leaving less than this RMS in log D means
# only a line through the (N, D) plane was sampled.
_LINE_RMS = 0.05
# E below this fraction of the smallest loss is at its bound 0 (E = exp(e) with e
# running off to -inf): the law has become a pure power law.
_E_AT_ZERO = 1e-6
# An interval narrower than this, relative to its value, is a point; but only when the
# data are not fitted exactly (noise-free data give point intervals rightly).
_POINT_WIDTH = 1e-6
_EXACT_RMS = 1e-6


def plain_float(value: float) -> float | None:
    """A plain float, or None for NaN/inf (which strict JSON cannot hold)."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class FitResult:
    """The outcome of :func:`analysis.fit.fit`, in the spirit of
    ``scipy.optimize.OptimizeResult``.

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
    identified
        Whether the data pin the parameters down: False when :attr:`identification`
        names a reason. A converged fit can be unidentified.
    identification
        The reasons it is not identified (see :func:`identify`), one sentence each;
        empty when it is.
    fixed
        Parameters held at a value (``fix``), which were not fitted and have no
        interval.
    tied
        Parameters set equal to another (``tie``): ``{follower: leader}``; the follower
        has no interval of its own.
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
    identified: bool = True
    identification: list[str] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)
    x: tuple[np.ndarray, ...] = field(default=(), repr=False)
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def law_form(self) -> Law:
        """The :class:`~analysis.laws.Law` object behind :attr:`law`."""
        return get_law(self.law)

    def predict(self, *x: np.ndarray) -> np.ndarray:
        """The fitted law at ``x`` (one array, or ``N, D`` for chinchilla)."""
        return self.law_form.predict(self.params, *x)

    def predict_samples(self, *x: np.ndarray) -> np.ndarray:
        """The law of every bootstrap resample at ``x``: shape ``(n_boot, *x.shape)``.

        Raises
        ------
        ValueError
            When the fit was made without ``bootstrap``.
        """
        if self.bootstrap is None or len(self.bootstrap) == 0:
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get a band")
        xs = [np.asarray(v, dtype=float) for v in x]
        ndim = max([v.ndim for v in xs] + [0])
        # Parameters as (n_boot, 1, ..., 1) columns so that the law broadcasts over x.
        shape = (-1,) + (1,) * ndim
        samples = {
            name: self.bootstrap[:, i].reshape(shape)
            for i, name in enumerate(self.law_form.param_names)
        }
        with np.errstate(over="ignore", invalid="ignore"):  # a wild resample overflows
            return np.asarray(self.law_form.predict(samples, *xs), dtype=float)

    def predict_band(
        self, *x: np.ndarray, level: float | None = None, noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the prediction over the bootstrap samples.

        ``noise=False`` (default): the band of the law itself, where the expected value
        lies. ``noise=True``: a prediction interval for one new observation, where a run
        trained at ``x`` would land: each resample's prediction is multiplied by
        ``exp(r)`` for every residual ``r`` of the fit (scaled by ``sqrt(n / (n - p))``,
        since fitted residuals are smaller than the noise), and the band is taken over
        all of them.

        Raises
        ------
        ValueError
            When the fit was made without ``bootstrap``.
        """
        level = self.level if level is None else level
        preds = self.predict_samples(*x)
        if noise and len(self.residuals):
            p = len(self.params)
            scale = math.sqrt(self.n / (self.n - p)) if self.n > p else 1.0
            factors = np.exp(np.asarray(self.residuals, dtype=float) * scale)
            spread = preds[..., None] * factors  # (n_boot, *shape, n)
            spread = np.moveaxis(spread, -1, 1)
            preds = spread.reshape((-1,) + preds.shape[1:])
        tail = 100 * (1 - level) / 2
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanpercentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def extrapolation(self, *x: Any) -> dict[str, np.ndarray]:
        """How far beyond the fitted data the points ``x`` lie.

        Each input over its largest fitted value, keyed by the input's name (column
        name, or the law's symbol); for a law of N and D (not one of C and M) also
        ``"flops"``: the compute
        ``6ND`` over the largest ``6ND`` of the data, one convention on both sides
        whatever the table's own FLOP count. A factor above 1 is an extrapolation.
        NaN when the result holds no data.
        """
        law = self.law_form
        xs = [np.asarray(v, dtype=float) for v in x]
        if len(xs) != law.n_inputs:
            raise ValueError(f"law {law.name!r} takes {law.n_inputs} input(s), got {len(xs)}")
        names = list(self.variables) if len(self.variables) == law.n_inputs else list(law.variables)
        have = len(self.x) == law.n_inputs
        out: dict[str, np.ndarray] = {}
        for i, (name, value) in enumerate(zip(names, xs, strict=True)):
            top = float(np.max(self.x[i])) if have else math.nan
            out[name] = value / top
        if law.variables[:2] == ("N", "D"):
            top = float(np.max(self.x[0] * self.x[1])) if have else math.nan
            out["flops"] = xs[0] * xs[1] / top
        return out

    def formula(self) -> str:
        """The fitted law with its numbers, e.g. ``L = 1.82 + 482/N^0.348 + 2085/D^0.366``.

        A negative exponent is written as a product, ``A·N^0.025``, so that the sign of
        the dependence can be read off (``/N^-0.025`` hides that the loss rises with N).
        """
        law = self.law_form
        variables = self.variables or None
        target = self.target or None
        if not isinstance(law, SumOfPowers):
            return law.formula(self.params, variables=variables, target=target)
        names = list(variables) if variables is not None else list(law.variables)
        k = law.n_inputs
        values = [float(self.params[p]) for p in law.param_names]
        floor, coefs, exps = values[0], values[1 : 1 + k], values[1 + k :]
        terms = []
        for coef, name, exp in zip(coefs, names, exps, strict=True):
            if exp < 0:
                terms.append(f"{coef:.4g}·{name}^{-exp:.4g}")
            else:
                terms.append(f"{coef:.4g}/{name}^{exp:.4g}")
        return f"{target or law.target} = {floor:.4g} + " + " + ".join(terms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: law, n, params, intervals, objective, converged,
        identified, identification (the reasons, a list of strings), derived,
        residuals (one per point, ``log y - log prediction``), and ``bootstrap``:
        ``{"resamples", "resampled", "n_groups"}`` or None; with ``fix`` or ``tie``
        also ``fixed`` (``{name: value}``) and ``tied`` (``{follower: leader}``)."""
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
            "params": {k: plain_float(v) for k, v in self.params.items()},
            "intervals": {
                k: [plain_float(lo), plain_float(hi)] for k, (lo, hi) in self.intervals.items()
            },
            "objective": plain_float(self.objective),
            "converged": bool(self.converged),
            "identified": bool(self.identified),
            "identification": list(self.identification),
            "derived": {k: plain_float(v) for k, v in self.derived.items()},
            "residuals": [plain_float(r) for r in np.asarray(self.residuals, dtype=float)],
            "bootstrap": boot,
            **({"fixed": {k: plain_float(v) for k, v in self.fixed.items()}} if self.fixed else {}),
            **({"tied": dict(self.tied)} if self.tied else {}),
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
            elif name in self.fixed:
                text += "   (fixed)"
            elif name in self.tied:
                text += f"   (tied to {self.tied[name]})"
            lines.append(text)
        lines.append(f"  objective = {self.objective:.6g}, converged = {self.converged}")
        if not self.identified:
            lines.append(f"  NOT identified: {'; '.join(self.identification)}")
        lines.append(f"  {self.message}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------


def _symbol(law: Law, result: FitResult, j: int) -> str:
    """How input ``j`` is named in messages: the law's symbol, with the column if any."""
    symbol = law.variables[j]
    if len(result.variables) == law.n_inputs and result.variables[j] != symbol:
        column = result.variables[j]
        return column if symbol == "x" else f"{symbol} ({column})"
    return symbol


def _design_reasons(law: Law, result: FitResult) -> list[str]:
    """Reasons in the data alone: too few distinct values, N and D on one line."""
    xs = result.x
    if len(xs) != law.n_inputs:
        return []
    reasons = []
    counts = [len(np.unique(v)) for v in xs]
    if law.n_inputs == 1:
        need = len(law.param_names)
        if counts[0] < need:
            reasons.append(
                f"{counts[0]} distinct value(s) of {_symbol(law, result, 0)}, fewer than the "
                f"{need} a {len(law.param_names)}-parameter law of one variable needs"
            )
        return reasons
    what = {"N": "model size", "D": "token budget"}
    for j, count in enumerate(counts):
        symbol = law.variables[j]
        if count == 1:
            reasons.append(
                f"one {what.get(symbol, 'value of ' + symbol)} only "
                f"({_symbol(law, result, j)} = {float(xs[j][0]):.3g}): a law of "
                f"{' and '.join(law.variables)} cannot tell its {symbol} term from E"
            )
        elif count < _DISTINCT_TWO_INPUTS:
            reasons.append(
                f"{count} distinct values of {_symbol(law, result, j)}, fewer than the "
                f"{_DISTINCT_TWO_INPUTS} its {symbol} term needs"
            )
    if law.n_inputs == 2 and min(counts) >= 2:
        u, v = np.log(xs[0]), np.log(xs[1])
        if np.ptp(u) > 0:
            slope, intercept = np.polyfit(u, v, 1)
            rms = float(np.sqrt(np.mean((v - intercept - slope * u) ** 2)))
            if rms < _LINE_RMS:
                reasons.append(
                    f"{law.variables[0]} and {law.variables[1]} do not vary independently "
                    f"({law.variables[1]} ∝ {law.variables[0]}^{slope:.3g} within "
                    f"{rms:.1%} at every point): the data lie on one line through the "
                    f"({', '.join(law.variables)}) plane"
                )
    return reasons


def _value_reasons(
    law: SumOfPowers, result: FitResult, ranges: Mapping[str, tuple[float, float]]
) -> list[str]:
    """Reasons in the fitted values: exponents <= 0 or at the grid's edge, E at 0."""
    k = law.n_inputs
    reasons = []
    bound = set(result.fixed) | set(result.tied)  # not fitted: their values were given
    for j, name in enumerate(law.param_names[1 + k :]):
        if name in bound:
            continue
        value = float(result.params[name])
        symbol = _symbol(law, result, j)
        lo, hi = ranges.get(name, (0.0, math.inf))
        if value <= 0:
            reasons.append(f"{name} = {value:.3g} <= 0: the loss does not fall with {symbol}")
        elif value >= hi:
            reasons.append(
                f"{name} = {value:.4g} at or beyond the edge of the search grid ({lo:g} to {hi:g})"
            )
        elif value <= lo:
            reasons.append(
                f"{name} = {value:.4g} at the edge of the search grid ({lo:g} to {hi:g})"
            )
    floor_name = law.param_names[0]
    floor = float(result.params[floor_name])
    if (
        floor_name not in bound
        and result.y is not None
        and len(result.y)
        and floor < _E_AT_ZERO * float(np.min(result.y))
    ):
        reasons.append(
            f"{floor_name} = {floor:.2g} is at its bound 0: the data put no floor under "
            f"{result.target or law.target}"
        )
    return reasons


def _interval_reasons(
    law: Law, result: FitResult, ranges: Mapping[str, tuple[float, float]]
) -> list[str]:
    """Reasons in the bootstrap intervals: a point, or the whole search grid."""
    if result.interval_kind != "bootstrap":
        return []
    reasons = []
    rms = float(np.sqrt(np.mean(np.square(result.residuals)))) if len(result.residuals) else 0.0
    k = law.n_inputs
    exponent_names = set(law.param_names[1 + k :]) if isinstance(law, SumOfPowers) else set()
    for name in law.param_names:
        if name not in result.intervals:
            continue
        lo, hi = result.intervals[name]
        value = float(result.params[name])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            reasons.append(f"the bootstrap interval of {name} is not finite")
            continue
        if rms > _EXACT_RMS and hi - lo <= _POINT_WIDTH * max(abs(value), 1e-300):
            reasons.append(
                f"the bootstrap interval of {name} collapses to a point ({value:.4g}): "
                "no resample moved it, so the data do not determine it"
            )
            continue
        axis = name if name in exponent_names else name.lower()
        if axis not in ranges or not isinstance(law, SumOfPowers):
            continue
        grid_lo, grid_hi = ranges[axis]
        span = grid_hi - grid_lo
        width = hi - lo if name in exponent_names else _log_width(lo, hi)
        if span > 0 and width >= span:
            reasons.append(
                f"the bootstrap interval of {name} [{lo:.3g}, {hi:.3g}] spans the whole search grid"
            )
    return reasons


def _log_width(lo: float, hi: float) -> float:
    """Width of a positive interval in log space (inf when it reaches 0)."""
    return math.log(hi / lo) if lo > 0 and hi > 0 else math.inf


def identify(
    result: FitResult, ranges: Mapping[str, tuple[float, float]] | None = None
) -> list[str]:
    """The reasons the data do not identify ``result``'s parameters (empty: they do).

    Checked, in this order:

    * the design: fewer distinct values of an input than the law needs (a one-variable
      law with P parameters needs P; a law of N and D three of each), one model size or
      one token budget under a law of N and D, or N and D on one line ``D ∝ N^k``;
    * the values (sums of powers): an exponent ``<= 0`` (the loss does not fall with
      that input) or at or beyond the edge of the search grid, the floor E at its
      bound 0;
    * the bootstrap intervals: one that collapses to a point while the data are not
      fitted exactly (no resample moved the parameter), or one as wide as the search
      grid on that axis (in log space for E, A, B).

    Parameters
    ----------
    result
        A fit holding its data (``x``, ``y``) and residuals.
    ranges
        ``(min, max)`` of the search grid per internal coordinate (``e``, ``a``,
        ``alpha``, ...; see :func:`analysis.fit.internal_names`). None: no grid (power),
        and only the design and the intervals are checked.
    """
    law = result.law_form
    reasons = _design_reasons(law, result)
    ranges = ranges or {}
    if isinstance(law, SumOfPowers):
        reasons += _value_reasons(law, result, ranges)
    reasons += _interval_reasons(law, result, ranges)
    return reasons
