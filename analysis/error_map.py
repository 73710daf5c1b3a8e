"""Task error from pretraining loss: the second step of the two-step downstream law.

Two links from loss to error, chosen by ``link``:

``"exponential"``: ``Err(L) = eps - k·exp(-gamma·L)`` (Gadre et al. 2024, "Language
models scale reliably with over-training and on downstream tasks"): as the loss grows
the error rises to ``eps`` (about the chance error); as it falls, the error falls
exponentially. For a fixed ``gamma`` the form is linear in ``eps`` and ``k``, so
``gamma`` is found on a grid with the other two solved exactly, then all three are
polished together (scipy's least squares).

``"sigmoid"``: ``Err(L) = floor + (ceiling - floor) / (1 + exp(-k·(L - L0)))``, which is
Bhagia et al.'s (2024, "Establishing Task Scaling Laws via Compute-Efficient Model
Ladders", OLMo's ladder) ``Acc(L) = a / (1 + exp(-k'·(L - L0))) + b`` with
``a = ceiling - floor``, ``b = 1 - ceiling`` and ``k' = -k``: the error is near its
``ceiling`` (chance) while the loss is high, falls fastest at ``L0``, and levels off at
a ``floor`` above zero where the task's noise or difficulty stops it. For fixed ``k``
and ``L0`` it is linear in ``floor`` and ``ceiling``, so those two are solved exactly on
a grid of ``(k, L0)`` before all four are polished. It needs more models than the
exponential (8 free, 6 with the ceiling held at the chance error), and tells the two
apart only when the losses reach the bend at both ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LINKS", "ErrorMap", "fit_error_map"]

#: The forms of Err(L), and their parameters in the order of :attr:`ErrorMap.bootstrap`.
LINKS = {"exponential": ("eps", "k", "gamma"), "sigmoid": ("floor", "ceiling", "k", "L0")}


def _curve(link: str, theta: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Err at ``loss`` for parameters ``theta`` (``(..., p)``, in :data:`LINKS` order);
    broadcasts one row of predictions per row of ``theta``."""
    t = np.asarray(theta, dtype=float)
    col = [t[..., i, None] for i in range(t.shape[-1])]
    if link == "exponential":
        eps, k, gamma = col
        return eps - k * np.exp(-gamma * loss)
    floor, ceiling, k, l0 = col
    return floor + (ceiling - floor) / (1.0 + np.exp(-k * (loss - l0)))


@dataclass
class ErrorMap:
    """``Err(L)`` fitted to (loss, error) points, by one of the :data:`LINKS`.

    Attributes
    ----------
    params
        ``{"eps", "k", "gamma"}`` (exponential) or ``{"floor", "ceiling", "k", "L0"}``
        (sigmoid).
    intervals
        Percentile bootstrap intervals of the free parameters (empty without bootstrap).
    fixed
        Names of parameters held fixed (``("eps",)`` or ``("ceiling",)`` when the error
        at high loss was set, e.g. to the chance error).
    n
        Points fitted.
    residuals
        ``error - prediction``, one per point.
    rmse
        Root mean square of the residuals.
    bootstrap
        ``(n_boot, p)`` samples of the parameters in :data:`LINKS` order, or None.
    level
        Confidence level of the intervals.
    link
        ``"exponential"`` or ``"sigmoid"``.
    """

    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fixed: tuple[str, ...]
    n: int
    residuals: np.ndarray
    rmse: float
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    level: float = 0.95
    link: str = "exponential"

    def predict(self, loss: Any) -> np.ndarray:
        """The fitted error at pretraining loss ``loss``."""
        theta = np.array([self.params[name] for name in LINKS[self.link]])
        x = np.asarray(loss, dtype=float)
        return _curve(self.link, theta, x.ravel()).reshape(x.shape)

    def predict_samples(self, loss: Any) -> np.ndarray:
        """The error of every bootstrap resample at ``loss``: ``(n_boot, len(loss))``."""
        if self.bootstrap is None or not len(self.bootstrap):
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get samples")
        return _curve(self.link, self.bootstrap, np.asarray(loss, dtype=float).ravel())

    def predict_band(self, loss: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the prediction over the bootstrap samples."""
        if self.bootstrap is None or not len(self.bootstrap):
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get a band")
        preds = _curve(self.link, self.bootstrap, np.asarray(loss, dtype=float).ravel())
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.nanpercentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def formula(self) -> str:
        p = self.params
        if self.link == "sigmoid":
            return (
                f"Err = {p['floor']:.4g} + {p['ceiling'] - p['floor']:.4g} / "
                f"(1 + exp(-{p['k']:.4g} * (L - {p['L0']:.4g})))"
            )
        return f"Err = {p['eps']:.4g} - {p['k']:.4g} * exp(-{p['gamma']:.4g} * L)"

    def to_dict(self) -> dict[str, Any]:
        law = {
            "exponential": "Err(L) = eps - k*exp(-gamma*L)",
            "sigmoid": "Err(L) = floor + (ceiling - floor) / (1 + exp(-k*(L - L0)))",
        }[self.link]
        return {
            "law": law,
            "link": self.link,
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


def _fit_sigmoid_once(
    loss: np.ndarray, error: np.ndarray, ceiling: float | None
) -> tuple[float, float, float, float]:
    """Least-squares (floor, ceiling, k, L0), floor and ceiling in [0, 1], k >= 0;
    the ceiling held when given. L0 may lie up to one span of the losses outside them."""
    from scipy.optimize import least_squares

    span = float(np.ptp(loss))
    ks = np.geomspace(0.5, 200.0, 50) / span  # from nearly straight to a step
    l0s = np.linspace(loss.min() - span, loss.max() + span, 61)
    k, l0 = (g.ravel() for g in np.meshgrid(ks, l0s))
    s = 1.0 / (1.0 + np.exp(-k[:, None] * (loss[None, :] - l0[:, None])))  # one row each
    if ceiling is None:
        # error = floor (1 - s) + ceiling s: two columns, solved for every row at once
        u, v = 1.0 - s, s
        uu, uv, vv = (u * u).sum(1), (u * v).sum(1), (v * v).sum(1)
        uy, vy = (u * error).sum(1), (v * error).sum(1)
        det = np.where(np.abs(uu * vv - uv * uv) > 1e-12, uu * vv - uv * uv, np.nan)
        lo = np.clip((vv * uy - uv * vy) / det, 0.0, 1.0)
        hi = np.clip((uu * vy - uv * uy) / det, 0.0, 1.0)
    else:
        u = 1.0 - s
        lo = np.clip(((error - ceiling * s) * u).sum(1) / np.maximum((u * u).sum(1), 1e-12), 0, 1)
        hi = np.full_like(lo, ceiling)
    sse = ((lo[:, None] * (1 - s) + hi[:, None] * s - error) ** 2).sum(1)
    i = int(np.nanargmin(sse))

    def residuals(theta: np.ndarray) -> np.ndarray:
        full = (theta[0], ceiling, *theta[1:]) if ceiling is not None else tuple(theta)
        return _curve("sigmoid", np.array(full), loss) - error

    x0 = [lo[i], k[i], l0[i]] if ceiling is not None else [lo[i], hi[i], k[i], l0[i]]
    bounds_l0 = (loss.min() - span, loss.max() + span)
    lower = [0.0, 0.0, bounds_l0[0]] if ceiling is not None else [0.0, 0.0, 0.0, bounds_l0[0]]
    upper = [1.0, ks[-1], bounds_l0[1]] if ceiling is not None else [1.0, 1.0, ks[-1], bounds_l0[1]]
    sol = least_squares(residuals, np.clip(x0, lower, upper), bounds=(lower, upper))
    if ceiling is not None:
        return float(sol.x[0]), float(ceiling), float(sol.x[1]), float(sol.x[2])
    return tuple(float(v) for v in sol.x)  # type: ignore[return-value]


def fit_error_map(
    loss: Sequence[float] | np.ndarray,
    error: Sequence[float] | np.ndarray,
    *,
    link: str = "exponential",
    eps: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> ErrorMap:
    """Fit ``Err(L)`` by least squares, by the ``link`` of the module's docstring.

    Parameters
    ----------
    loss, error
        Pretraining loss and task error of each model.
    link
        ``"exponential"`` (default) or ``"sigmoid"``.
    eps
        Hold the error at high loss at this value (e.g. the chance error
        ``1 - 1/n_classes``): ``eps`` of the exponential, ``ceiling`` of the sigmoid.
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
    if link not in LINKS:
        raise ValueError(f"link={link!r}: expected one of {', '.join(LINKS)}")
    x, y = np.asarray(loss, dtype=float), np.asarray(error, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("loss and error must be 1-D arrays of the same length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("loss and error must be finite")
    names = LINKS[link]
    held = (names[0] if link == "exponential" else "ceiling") if eps is not None else None
    free = len(names) - (held is not None)
    if len(x) < 2 * free:
        raise ValueError(
            f"Err(L) ({link}) with {free} free parameters needs at least {2 * free} points, "
            f"got {len(x)}"
        )
    if np.ptp(x) == 0:
        raise ValueError("every model has the same loss: Err(L) is undetermined")
    once = _fit_error_map_once if link == "exponential" else _fit_sigmoid_once
    theta = once(x, y, eps)
    params = dict(zip(names, theta, strict=True))
    resid = y - _curve(link, np.array(theta), x)
    intervals: dict[str, tuple[float, float]] = {}
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(x), len(x))
            if np.ptp(x[idx]) == 0:
                continue
            draws.append(once(x[idx], y[idx], eps))
        samples = np.array(draws)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        intervals = {
            name: (float(lo[i]), float(hi[i])) for i, name in enumerate(names) if name != held
        }
    return ErrorMap(
        params=params,
        intervals=intervals,
        fixed=(held,) if held else (),
        n=len(x),
        residuals=resid,
        rmse=float(np.sqrt((resid**2).mean())),
        bootstrap=samples,
        level=level,
        link=link,
    )
