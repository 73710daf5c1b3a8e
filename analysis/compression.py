"""Scaling laws of compression: how much loss quantization and pruning add, by N and D.

Post-training quantization (Kumar et al. 2024, "Scaling Laws for Precision")
    The loss a weight quantization to ``P`` bits adds to a model of ``N`` parameters
    pretrained on ``D`` tokens,

        delta(N, D, P) = C_T · D^gamma_D / N^gamma_N · exp(-P / gamma_post),

    fitted over every variant of one scheme (``rtn`` per channel, ``rtn`` with groups of
    64, ``w8a8``, ``fp8``: a scheme and its group size together) across the source
    models. ``gamma_D > 0`` is their finding that models trained on more data are
    *more* fragile: past a critical D (:func:`critical_tokens`), more pretraining makes
    the quantized model worse.
Sparsity (our analogue, after Frantar et al. 2023, "Scaling Laws for Sparsely-Connected
Foundation Models")
    Frantar et al. scale a law's size term by a function of the density ``1 - s``; we
    keep that ``(1 - s)`` basis for the loss a pruning to sparsity ``s`` adds,

        dL(N, D, s) = C_S · D^gamma_D / N^gamma_N · (s / (1 - s))^gamma_s,

    which is 0 at ``s = 0`` and diverges like ``(1 - s)^(-gamma_s)`` as ``s -> 1``,
    with Kumar et al.'s powers of N and D. It is our form, not a published law. 2:4
    pruning has ``s = 0.5`` only (``s / (1 - s) = 1``), so for it the form is
    ``dL = C_S · D^gamma_D / N^gamma_N`` with no exponent of ``s``. Unstructured
    (``prune``) and 2:4 pruning are fitted apart, and each with and without recovery
    fine-tuning (``recover_tokens`` 0 or more).

Method
    Both laws are linear in their log coefficient and exponents:
    ``log delta = log C + gamma_D log D - gamma_N log N + c·z`` with ``z = -P`` and
    ``c = 1/gamma_post`` (or ``z = log(s/(1-s))`` and ``c = gamma_s``). They are fitted
    by ordinary least squares on ``log delta`` over the rows with ``delta > 0`` (a
    variant that costs nothing, or that the noise of the evaluation makes look
    better than the baseline, has no logarithm: those rows are left out and counted in
    the notes). Least squares solves this exactly in one step, where the generic fitter
    of :mod:`analysis.fit` searches a grid of starts with Newton's method for laws
    whose objective has local minima -- which a linear model does not have -- and takes
    laws of at most two inputs (N, D), where these have three. The intervals are
    percentiles of a bootstrap that resamples *source runs*: every variant of one
    source model shares that model's evaluation batches and weights, so its rows are
    drawn together (:func:`analysis.resample.resample_counts`), seeded. Without a
    bootstrap they are Student-t intervals of the least-squares fit.

An input with a single value in the data (one D, one P) leaves its exponent and the
coefficient undetermined: its column is held out of the fit, the product (e.g.
``C_T·D^gamma_D``) is fitted as one constant, and the result says it is not identified
and why. A result is identified when N, D and P (or s) each take two values or more,
N and D vary independently, there are two points per parameter, and every exponent's
interval is finite and excludes 0.

No torch here, as everywhere in ``analysis``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.resample import group_labels, resample_counts
from analysis.result import plain_float

__all__ = [
    "FORMS",
    "QUANT_SCHEMES",
    "SPARSE_SCHEMES",
    "CompressionFit",
    "CriticalTokens",
    "bytes_table",
    "critical_tokens",
    "fit_compression_laws",
    "fit_degradation",
    "fit_quantization",
    "fit_sparsity",
    "scheme_key",
]

#: Schemes that quantize weights to ``bits`` (their loss follows Kumar et al.'s law).
QUANT_SCHEMES = ("rtn", "w8a8", "fp8")
#: Schemes that prune weights to ``sparsity``.
SPARSE_SCHEMES = ("prune", "2:4")

# N and D "vary independently" when log D is not a function of log N: a line
# D ∝ N^k leaving less than this RMS in log D (as analysis.result uses for Chinchilla).
_LINE_RMS = 0.05
# Two points per parameter, as the project's other fits ask (analysis.fit.min_points).
_POINTS_PER_PARAM = 2


@dataclass(frozen=True)
class _Form:
    """One law: its coefficient, its third input and that input's feature."""

    name: str
    coef: str  # the coefficient's public name
    third: str | None  # the third input's symbol (None: the law has N and D alone)
    exponent: str | None  # the third input's public exponent
    internal: str | None  # its coefficient in the linear model

    def feature(self, x: np.ndarray) -> np.ndarray:
        if self.third == "P":
            return -x  # log delta falls by P/gamma_post
        return np.log(x / (1.0 - x))  # the odds of a weight being pruned

    def to_public(self, value: float) -> float:
        """The third exponent from its linear coefficient (1/gamma_post -> gamma_post)."""
        if self.third == "P":
            return 1.0 / value if value != 0 else math.inf
        return value

    def formula(self, params: dict[str, float], held: dict[str, float], constant: float) -> str:
        """The law with its numbers; a held input's factor is inside the constant."""
        factors = [f"{constant:.4g}" if held else f"{params[self.coef]:.4g}"]
        if "D" not in held:
            factors.append(f"D^{params['gamma_D']:.4g}")
        text = "·".join(factors)
        if "N" not in held:
            text += f"/N^{params['gamma_N']:.4g}"
        if self.third == "P" and "P" not in held:
            text += f"·exp(-P/{params['gamma_post']:.4g})"
        elif self.third == "s" and "s" not in held:
            text += f"·(s/(1-s))^{params['gamma_s']:.4g}"
        target = "delta" if self.third == "P" else "dL"
        if held:
            values = ", ".join(f"{k} = {v:.4g}" for k, v in held.items())
            text += f"  (at {values}: the constant holds {self.coef} and its factor)"
        return f"{target} = {text}"


#: The laws by name: Kumar et al.'s ``quantization``, our ``sparsity`` and
#: ``sparsity_fixed`` (one sparsity, 2:4: no exponent of s).
FORMS: dict[str, _Form] = {
    "quantization": _Form("quantization", "C_T", "P", "gamma_post", "inv_gamma_post"),
    "sparsity": _Form("sparsity", "C_S", "s", "gamma_s", "gamma_s"),
    "sparsity_fixed": _Form("sparsity_fixed", "C_S", None, None, None),
}


# --------------------------------------------------------------------------------------
# The result


@dataclass
class CompressionFit:
    """A compression law fitted by :func:`fit_degradation`, in the style of
    :class:`analysis.result.FitResult`.

    Attributes
    ----------
    form
        ``quantization``, ``sparsity`` or ``sparsity_fixed`` (:data:`FORMS`).
    scheme
        What was fitted, e.g. ``rtn``, ``rtn g64``, ``prune+recovery``.
    params
        ``C_T`` (or ``C_S``), ``gamma_D``, ``gamma_N`` and ``gamma_post`` (or
        ``gamma_s``; none for ``sparsity_fixed``). NaN for what a held input leaves
        undetermined (see ``held``).
    intervals
        ``{name: (lo, hi)}`` at ``level``; ``gamma_post``'s upper end is inf when the
        interval of ``1/gamma_post`` reaches 0.
    interval_kind
        ``"bootstrap"``, ``"t"`` or ``"none"``.
    residuals
        ``log delta - log prediction``, one per fitted point.
    n, n_dropped
        Points fitted; rows left out because ``delta <= 0`` (or not finite).
    n_groups
        Source runs the bootstrap drew from.
    bootstrap
        ``(n_boot, 4)`` samples of the linear coefficients
        ``(log C, gamma_D, gamma_N, c)`` (c = 1/gamma_post or gamma_s), NaN where a
        resample could not determine them; None without a bootstrap.
    boot_failed
        Fraction of resamples that could not determine every coefficient (None
        without a bootstrap).
    identified, identification
        Whether the data pin the exponents down, and the reasons they do not.
    held
        Inputs with a single value: ``{symbol: value}``; their exponent is NaN and the
        fitted constant ``log_constant`` includes their factor.
    log_constant
        The log of the fitted constant, the held inputs' factors included (``log C``
        when nothing is held).
    notes
        Things worth knowing (rows dropped, resamples that failed).
    x, y
        The fitted inputs ``(N, D, P or s)`` and ``delta``.
    """

    form: str
    scheme: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    residuals: np.ndarray
    n: int
    n_dropped: int
    level: float = 0.95
    interval_kind: str = "none"
    n_groups: int | None = None
    bootstrap: np.ndarray | None = None
    boot_failed: float | None = None
    identified: bool = True
    identification: list[str] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)
    log_constant: float = math.nan
    notes: list[str] = field(default_factory=list)
    x: tuple[np.ndarray, ...] = field(default=(), repr=False)
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def law(self) -> _Form:
        return FORMS[self.form]

    def _coefficients(self) -> np.ndarray:
        """``(log C, gamma_D, gamma_N, c)`` of the fit, with the held ones at 0."""
        p = self.params
        third = self.law.internal
        c = 0.0 if third is None or self.law.third in self.held else _internal(self, third)
        return np.array(
            [
                self.log_constant,
                0.0 if "D" in self.held else p["gamma_D"],
                0.0 if "N" in self.held else p["gamma_N"],
                c,
            ]
        )

    def _log_predict(self, theta: np.ndarray, n: Any, d: Any, x: Any) -> np.ndarray:
        """log delta at (N, D, x) for coefficients ``theta`` (shape (..., 4))."""
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        z = np.zeros_like(n * d)
        if self.law.third is not None:
            if x is None:
                raise ValueError(f"the {self.form} law needs {self.law.third}")
            z = self.law.feature(np.asarray(x, dtype=float)) + z
        out = theta[..., 0] + theta[..., 1] * np.log(d) - theta[..., 2] * np.log(n)
        out = out + theta[..., 3] * z
        # a held input's factor is inside the constant: valid at its value only
        for symbol, value in self.held.items():
            given = {"N": n, "D": d, "P": x, "s": x}[symbol]
            off = ~np.isclose(np.asarray(given, dtype=float), value, rtol=1e-9, atol=0)
            out = np.where(off, np.nan, out)
        return out

    def predict(self, N: Any, D: Any, P: Any = None) -> np.ndarray:
        """The fitted law at ``(N, D, P)`` (``P``: the bits, or the sparsity ``s``; not
        needed by ``sparsity_fixed``). NaN away from the value of a held input."""
        theta = self._coefficients()
        return np.exp(self._log_predict(theta, N, D, P))

    def predict_samples(self, N: Any, D: Any, P: Any = None) -> np.ndarray:
        """The law of every bootstrap resample at ``(N, D, P)``: ``(n_boot, *shape)``.

        Raises
        ------
        ValueError
            When the fit was made without a bootstrap.
        """
        if self.bootstrap is None or not len(self.bootstrap):
            raise ValueError("no bootstrap samples: refit with bootstrap > 0")
        ndim = max(np.ndim(v) for v in (N, D, P) if v is not None)
        theta = np.nan_to_num(self.bootstrap, nan=0.0)  # held coefficients are 0
        theta = np.where(np.isnan(self.bootstrap[:, :1]), np.nan, theta)  # failed rows
        shape = (-1,) + (1,) * ndim
        theta = theta.reshape(shape + (4,))
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(self._log_predict(theta, N, D, P))

    def formula(self) -> str:
        """The law with its numbers, e.g. ``delta = 0.02·D^0.5/N^0.5·exp(-P/1.2)``."""
        return self.law.formula(self.params, self.held, math.exp(self.log_constant))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: form, scheme, n, n_dropped, params, intervals, interval_kind,
        level, identified, identification, held, notes, residuals and ``bootstrap``:
        ``{"resamples", "resampled", "n_groups", "failed"}`` or None."""
        boot = None
        if self.bootstrap is not None:
            boot = {
                "resamples": int(len(self.bootstrap)),
                "resampled": "source runs",
                "n_groups": self.n_groups,
                "failed": self.boot_failed,
            }
        return {
            "form": self.form,
            "scheme": self.scheme,
            "formula": self.formula(),
            "n": int(self.n),
            "n_dropped": int(self.n_dropped),
            "params": {k: plain_float(v) for k, v in self.params.items()},
            "intervals": {
                k: [plain_float(lo), plain_float(hi)] for k, (lo, hi) in self.intervals.items()
            },
            "interval_kind": self.interval_kind,
            "level": self.level,
            "identified": bool(self.identified),
            "identification": list(self.identification),
            "held": {k: plain_float(v) for k, v in self.held.items()},
            "notes": list(self.notes),
            "residuals": [plain_float(r) for r in np.asarray(self.residuals, dtype=float)],
            "bootstrap": boot,
        }

    def __str__(self) -> str:
        lines = [f"{self.formula()}   ({self.form}, {self.scheme}, n={self.n})"]
        for name, value in self.params.items():
            text = f"  {name:>10} = {value:.6g}"
            if name in self.intervals:
                lo, hi = self.intervals[name]
                text += f"   [{lo:.6g}, {hi:.6g}] ({self.interval_kind}, {self.level:.0%})"
            lines.append(text)
        if self.bootstrap is not None:
            lines.append(
                f"  {len(self.bootstrap)} resamples of {self.n_groups} source runs (every "
                "variant of a source model drawn together)"
            )
        lines.append(
            "  identified"
            if self.identified
            else f"  NOT identified: {'; '.join(self.identification)}"
        )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _internal(fit: CompressionFit, name: str) -> float:
    """A linear coefficient from the public parameters (1/gamma_post from gamma_post)."""
    if name == "inv_gamma_post":
        g = fit.params["gamma_post"]
        return 0.0 if math.isinf(g) else 1.0 / g
    return fit.params[name]


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


def scheme_key(scheme: str, group_size: Any = None) -> str:
    """The name of a quantization scheme: ``rtn`` (per channel) or ``rtn g64``."""
    if group_size is None or (isinstance(group_size, float) and math.isnan(group_size)):
        return str(scheme)
    return f"{scheme} g{int(group_size)}"


def _groups(rows: pd.DataFrame) -> list[Any]:
    """The source run of each row (its compression run where the source is unknown)."""
    source = rows["source_run"] if "source_run" in rows else rows["run"]
    return list(source.where(source.notna(), rows["run"]))


def fit_quantization(
    rows: pd.DataFrame,
    *,
    scheme: str = "",
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CompressionFit:
    """Kumar et al.'s ``delta(N, D, P)`` over the rows of one quantization scheme.

    ``rows``: rows of :func:`analysis.io.downstream.load_compress` (``params``,
    ``pretrain_tokens``, ``bits``, ``delta_loss``, ``source_run``), every source model.
    """
    return fit_degradation(
        "quantization",
        rows["params"],
        rows["pretrain_tokens"],
        rows["bits"],
        rows["delta_loss"],
        scheme=scheme,
        groups=_groups(rows),
        bootstrap=bootstrap,
        seed=seed,
        level=level,
    )


def fit_sparsity(
    rows: pd.DataFrame,
    *,
    scheme: str = "",
    structured: bool = False,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CompressionFit:
    """Our sparsity law ``dL(N, D, s)`` over the rows of one pruning scheme.

    ``structured`` (2:4, one sparsity): ``dL = C_S·D^gamma_D/N^gamma_N``, no s-exponent.
    """
    return fit_degradation(
        "sparsity_fixed" if structured else "sparsity",
        rows["params"],
        rows["pretrain_tokens"],
        None if structured else rows["sparsity"],
        rows["delta_loss"],
        scheme=scheme,
        groups=_groups(rows),
        bootstrap=bootstrap,
        seed=seed,
        level=level,
    )


def fit_compression_laws(
    compress: pd.DataFrame, *, bootstrap: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[dict[str, CompressionFit], dict[str, CompressionFit], dict[str, str]]:
    """Every compression law the table allows.

    Returns
    -------
    quantization, sparsity, notes
        Kumar et al.'s law per quantization scheme (keyed by :func:`scheme_key`, e.g.
        ``rtn``, ``rtn g64``), our sparsity law per pruning scheme and recovery
        (``prune``, ``prune+recovery``, ``2:4``, ``2:4+recovery``), and why a fit was
        not made, keyed the same way.
    """
    quant: dict[str, CompressionFit] = {}
    sparse: dict[str, CompressionFit] = {}
    notes: dict[str, str] = {}
    if "scheme" not in compress:
        return quant, sparse, notes
    q = compress[compress["scheme"].isin(QUANT_SCHEMES) & compress["bits"].notna()]
    keys = [scheme_key(s, g) for s, g in zip(q["scheme"], q["group_size"], strict=True)]
    for key, rows in q.groupby(pd.Series(keys, index=q.index), sort=False):
        try:
            quant[key] = fit_quantization(
                rows, scheme=key, bootstrap=bootstrap, seed=seed, level=level
            )
        except ValueError as e:
            notes[key] = str(e)
    s = compress[compress["scheme"].isin(SPARSE_SCHEMES)]
    for (scheme, recovered), rows in s.groupby([s["scheme"], s["recover_tokens"] > 0], sort=False):
        key = f"{scheme}+recovery" if recovered else str(scheme)
        try:
            sparse[key] = fit_sparsity(
                rows,
                scheme=key,
                structured=scheme == "2:4",
                bootstrap=bootstrap,
                seed=seed,
                level=level,
            )
        except ValueError as e:
            notes[key] = str(e)
    return quant, sparse, notes


# --------------------------------------------------------------------------------------
# The critical pretraining data


@dataclass
class CriticalTokens:
    """The pretraining tokens past which more data makes the quantized model worse.

    With ``L(N, D) = E + A/N^alpha + B/D^beta`` and Kumar et al.'s ``delta``, the loss
    after quantization ``L + delta`` has zero D-derivative at

        D* = [B·beta·N^gamma_N·e^(P/gamma_post) / (gamma_D·C_T)]^(1/(gamma_D + beta))

    (a minimum, when ``gamma_D > 0``).

    Attributes
    ----------
    scheme, params, bits
        The quantization scheme, N and P.
    tokens
        ``D*``, or None with ``reason``.
    interval
        Percentile interval over the bootstrap resamples (a resample with
        ``gamma_D <= 0`` has no D*: counted as inf), or None.
    reason
        Why there is no D* (empty when there is one).
    notes
        E.g. that the pretraining fit it rests on is not identified.
    """

    scheme: str
    params: float
    bits: float
    tokens: float | None
    interval: tuple[float, float] | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "params": self.params,
            "bits": self.bits,
            "tokens": None if self.tokens is None else plain_float(self.tokens),
            "interval": None if self.interval is None else [plain_float(v) for v in self.interval],
            "level": self.level,
            "reason": self.reason,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        head = f"{self.scheme} P={self.bits:g} at N = {self.params:.4g}: "
        if self.tokens is None:
            return head + f"no critical D ({self.reason})"
        text = head + f"D* = {self.tokens:.4g}"
        if self.interval is not None:
            text += f" [{self.interval[0]:.4g}, {self.interval[1]:.4g}]"
        return text + "".join(f"; {n}" for n in self.notes)


def _d_star(B: Any, beta: Any, gamma_d: Any, delta_at_d1: Any) -> np.ndarray:
    """``[B·beta / (gamma_D·delta(N, 1, P))]^(1/(gamma_D+beta))``; inf where gamma_D <= 0.

    ``delta(N, 1, P) = C_T·N^(-gamma_N)·e^(-P/gamma_post)`` is the law at D = 1, which
    holds the held inputs' factors when some were held.
    """
    B, beta = np.asarray(B, dtype=float), np.asarray(beta, dtype=float)
    g, k = np.asarray(gamma_d, dtype=float), np.asarray(delta_at_d1, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # in logs: B·beta/(g·k) spans far more than a float's exponent
        log_d = (np.log(B * beta) - np.log(g) - np.log(k)) / (g + beta)
        out = np.exp(log_d)
    return np.where(g > 0, out, np.inf)


def critical_tokens(
    fit: CompressionFit,
    N: float,
    P: float,
    *,
    B: float,
    beta: float,
    B_samples: np.ndarray | None = None,
    beta_samples: np.ndarray | None = None,
    pretrain_identified: bool = True,
) -> CriticalTokens:
    """The critical pretraining tokens ``D*`` of a quantization fit at ``N`` and ``P``.

    Parameters
    ----------
    fit
        A ``quantization`` :class:`CompressionFit`.
    N, P
        Model size (the fit's convention) and weight bits.
    B, beta
        The data term of the pretraining Chinchilla law, ``B/D^beta``.
    B_samples, beta_samples
        Bootstrap samples of ``B`` and ``beta`` (resample i of the pretraining fit is
        paired with resample i of the compression fit: they are independent fits);
        None: the point values for every resample.
    pretrain_identified
        False when the Chinchilla fit is not identified: the result says so.

    Returns
    -------
    CriticalTokens
        ``tokens`` None, with the reason, when ``gamma_D`` is not positive, its interval
        includes 0, or the fit does not determine it.
    """
    if fit.form != "quantization":
        raise ValueError(f"a critical D needs a quantization fit, not {fit.form}")
    out = CriticalTokens(scheme=fit.scheme, params=float(N), bits=float(P), tokens=None,
                         level=fit.level)  # fmt: skip
    if not pretrain_identified:
        out.notes.append("rests on a pretraining fit that is not identified")
    if not fit.identified:
        out.notes.append(f"from a {fit.scheme} fit that is not identified")
    g = fit.params["gamma_D"]
    k = float(fit.predict(N, 1.0, P))
    interval = fit.intervals.get("gamma_D")
    if not math.isfinite(g) or not math.isfinite(k):
        out.reason = "the fit does not determine gamma_D (or delta at this P)"
        return out
    if g <= 0:
        out.reason = (
            f"gamma_D = {g:.3g} <= 0: more pretraining data never makes the quantized model worse"
        )
        return out
    if interval is not None and interval[0] <= 0:
        out.reason = (
            f"the interval of gamma_D [{interval[0]:.3g}, {interval[1]:.3g}] includes 0: "
            "the data do not tell whether more pretraining hurts the quantized model"
        )
        return out
    out.tokens = float(_d_star(B, beta, g, k))
    if fit.bootstrap is not None and len(fit.bootstrap):
        ks = fit.predict_samples(N, 1.0, P)
        gs = fit.bootstrap[:, 1]
        m = len(gs)
        bs = np.full(m, B) if B_samples is None else np.asarray(B_samples, dtype=float)
        betas = np.full(m, beta) if beta_samples is None else np.asarray(beta_samples, float)
        m = min(m, len(bs), len(betas))
        d = _d_star(bs[:m], betas[:m], gs[:m], ks[:m])
        d = d[~np.isnan(d)]
        if len(d):
            tail = 100 * (1 - fit.level) / 2
            # "nearest" picks resamples' values: no interpolation between inf and a number
            lo, hi = np.percentile(d, [tail, 100 - tail], method="nearest")
            out.interval = (float(lo), float(hi))
    return out


# --------------------------------------------------------------------------------------
# Bytes and throughput


def bytes_table(compress: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the mean over the source models of the largest size: bytes,
    compression ratio, tokens/s per batch and speedup over the float model.

    Returns
    -------
    pandas.DataFrame
        ``variant, scheme, bits, params, models, val_loss, delta_loss, size_bytes,
        memory_bytes, compression, tokens_per_s_batch_<B>..., speedup_batch_<B>...``,
        in the order the variants first appear. ``compression`` is ``baseline_bytes /
        size_bytes``.
    """
    largest = compress[compress["params"] == compress["params"].max()]
    batch = [c for c in largest.columns if c.startswith(("tokens_per_s_", "speedup_"))]
    columns = ["val_loss", "delta_loss", "size_bytes", "memory_bytes", "compression", *batch]
    columns = [c for c in columns if c in largest]
    agg = {c: (c, "mean") for c in columns}
    first = {c: (c, "first") for c in ("scheme", "bits", "params") if c in largest}
    table = largest.groupby("variant", sort=False).agg(**first, models=("run", "nunique"), **agg)
    return table.reset_index()
