"""The result of a compression-law fit (:class:`CompressionFit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.compression.forms import FORMS, _Form
from analysis.result import plain_float

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
