"""Task error from pretraining loss: ``Err(L) = eps - k·exp(-gamma·L)``.

The second step of the two-step downstream law (Gadre et al. 2024, "Language models
scale reliably with over-training and on downstream tasks"; the form OLMo's model
ladder uses): as the loss grows the error rises to ``eps`` (about the chance error); as
it falls, the error falls exponentially. Fitted by least squares (scipy): for a fixed
``gamma`` the form is linear in ``eps`` and ``k``, so ``gamma`` is found on a grid with
the other two solved exactly, then all three are polished together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ErrorMap", "fit_error_map"]


@dataclass
class ErrorMap:
    """``Err(L) = eps - k·exp(-gamma·L)`` fitted to (loss, error) points.

    Attributes
    ----------
    params
        ``{"eps", "k", "gamma"}``.
    intervals
        Percentile bootstrap intervals of the free parameters (empty without bootstrap).
    fixed
        Names of parameters held fixed (``("eps",)`` when ``eps`` was set, e.g. to the
        chance error).
    n
        Points fitted.
    residuals
        ``error - prediction``, one per point.
    rmse
        Root mean square of the residuals.
    bootstrap
        ``(n_boot, 3)`` samples of ``(eps, k, gamma)``, or None.
    level
        Confidence level of the intervals.
    """

    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fixed: tuple[str, ...]
    n: int
    residuals: np.ndarray
    rmse: float
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    level: float = 0.95

    def predict(self, loss: Any) -> np.ndarray:
        """The fitted error at pretraining loss ``loss``."""
        p = self.params
        return p["eps"] - p["k"] * np.exp(-p["gamma"] * np.asarray(loss, dtype=float))

    def predict_band(self, loss: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the prediction over the bootstrap samples."""
        if self.bootstrap is None or not len(self.bootstrap):
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get a band")
        b = self.bootstrap
        x = np.asarray(loss, dtype=float)[None, :]
        preds = b[:, :1] - b[:, 1:2] * np.exp(-b[:, 2:3] * x)
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.nanpercentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def formula(self) -> str:
        p = self.params
        return f"Err = {p['eps']:.4g} - {p['k']:.4g} * exp(-{p['gamma']:.4g} * L)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": "Err(L) = eps - k*exp(-gamma*L)",
            "n": self.n,
            "params": dict(self.params),
            "fixed": list(self.fixed),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "rmse": self.rmse,
        }

    def __str__(self) -> str:
        lines = [f"{self.formula()}   (n={self.n}, rmse {self.rmse:.4f})"]
        for name, value in self.params.items():
            text = f"  {name:>6} = {value:.6g}"
            if name in self.fixed:
                text += "   (fixed)"
            elif name in self.intervals:
                lo, hi = self.intervals[name]
                text += f"   [{lo:.6g}, {hi:.6g}] (bootstrap, {self.level:.0%})"
            lines.append(text)
        return "\n".join(lines)


#: Rates tried for gamma before polishing (per nat of loss); the last is its upper bound.
_GAMMA_GRID = np.geomspace(1e-2, 50.0, 400)


def _fit_error_map_once(
    loss: np.ndarray, error: np.ndarray, eps: float | None
) -> tuple[float, float, float]:
    """Least-squares (eps, k, gamma), eps in [0, 1]; eps held at ``eps`` when given."""
    from scipy.optimize import least_squares

    # exp(-gamma L) = exp(-gamma L0) * exp(-gamma (L - L0)): centring at L0 keeps the
    # columns of the linear solve of a sane size whatever gamma is
    l0 = float(loss.mean())
    z = np.exp(-_GAMMA_GRID[:, None] * (loss - l0)[None, :])  # one row per gamma
    if eps is None:
        # regression of the error on z, every gamma at once: error = e - c z
        zc = z - z.mean(axis=1, keepdims=True)
        c = -(zc * (error - error.mean())).sum(axis=1) / (zc * zc).sum(axis=1)
        c = np.maximum(c, 0.0)  # the law's error falls with loss: k >= 0
        e = error.mean() + c * z.mean(axis=1)
        # an error rate cannot exceed 1: where the free ceiling would, hold it at 1
        over = e > 1.0
        c[over] = np.maximum(((1.0 - error) * z[over]).sum(axis=1) / (z[over] ** 2).sum(axis=1), 0)
        e[over] = 1.0
    else:
        c = np.maximum(((eps - error) * z).sum(axis=1) / (z * z).sum(axis=1), 0.0)
        e = np.full_like(c, eps)
    sse = ((e[:, None] - c[:, None] * z - error) ** 2).sum(axis=1)
    i = int(np.argmin(sse))
    e, c, gamma = float(e[i]), float(c[i]), float(_GAMMA_GRID[i])

    def residuals(theta: np.ndarray) -> np.ndarray:
        e_, c_, g_ = (eps, *theta) if eps is not None else theta
        return e_ - c_ * np.exp(-g_ * (loss - l0)) - error

    x0 = [c, gamma] if eps is not None else [e, c, gamma]
    # eps in [0, 1]: without the ceiling, data that barely curve let eps, k -> infinity
    # and gamma -> 0 (a straight line), which is no law of error rates
    lower = [0.0, 0.0] if eps is not None else [0.0, 0.0, 0.0]
    g_max = float(_GAMMA_GRID[-1])
    upper = [np.inf, g_max] if eps is not None else [1.0, np.inf, g_max]
    sol = least_squares(residuals, np.clip(x0, lower, upper), bounds=(lower, upper))
    e, c, gamma = (eps, *sol.x) if eps is not None else sol.x
    # back from the centred form: k exp(-gamma L) = c exp(-gamma (L - L0))
    return float(e), float(c * math.exp(gamma * l0)), float(gamma)


def fit_error_map(
    loss: Sequence[float] | np.ndarray,
    error: Sequence[float] | np.ndarray,
    *,
    eps: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> ErrorMap:
    """Fit ``Err(L) = eps - k·exp(-gamma·L)`` by least squares.

    Parameters
    ----------
    loss, error
        Pretraining loss and task error of each model.
    eps
        Hold ``eps`` at this value (e.g. the chance error ``1 - 1/n_classes``) and fit
        ``k`` and ``gamma`` only.
    bootstrap
        Resamples (with replacement) for percentile intervals and bands; 0: none.
    seed
        Seed of the resampling.
    level
        Confidence level of the intervals.

    Raises
    ------
    ValueError
        NaNs, fewer than twice as many points as free parameters, or a single loss value.
    """
    x, y = np.asarray(loss, dtype=float), np.asarray(error, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("loss and error must be 1-D arrays of the same length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("loss and error must be finite")
    free = 2 if eps is not None else 3
    if len(x) < 2 * free:
        raise ValueError(
            f"Err(L) with {free} free parameters needs at least {2 * free} points, got {len(x)}"
        )
    if np.ptp(x) == 0:
        raise ValueError("every model has the same loss: Err(L) is undetermined")
    e, k, g = _fit_error_map_once(x, y, eps)
    params = {"eps": e, "k": k, "gamma": g}
    resid = y - (e - k * np.exp(-g * x))
    intervals: dict[str, tuple[float, float]] = {}
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(x), len(x))
            if np.ptp(x[idx]) == 0:
                continue
            draws.append(_fit_error_map_once(x[idx], y[idx], eps))
        samples = np.array(draws)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        intervals = {
            name: (float(lo[i]), float(hi[i]))
            for i, name in enumerate(("eps", "k", "gamma"))
            if not (name == "eps" and eps is not None)
        }
    return ErrorMap(
        params=params,
        intervals=intervals,
        fixed=("eps",) if eps is not None else (),
        n=len(x),
        residuals=resid,
        rmse=float(np.sqrt((resid**2).mean())),
        bootstrap=samples,
        level=level,
    )
