"""How to spend one compute budget, from a fit of L(N, D): N, D and the loss, with
bootstrap intervals and how far beyond the data the budget reaches.

Two laws have the optimum under ``C = 6ND`` in closed form (:func:`optimal_n`):

- ``chinchilla``, ``L = E + A/N^α + B/D^β``: ``N_opt = G (C/6)^a`` with ``a = β/(α+β)``
  and ``G = (αA / (βB))^(1/(α+β))`` (:func:`optimal_params`);
- ``kaplan``, ``L = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D``: with ``q = α_N/α_D``,
  ``N_opt = (q N_c^q (C/6) / D_c)^(1/(1+q))``, so ``a = α_D/(α_N+α_D)``.

Every bootstrap resample of the fit has its own optimum; :func:`optimal_samples`
computes them all, and the percentiles of those are the intervals of :func:`allocate`
and of :mod:`analysis.predict`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.result import FitResult

__all__ = [
    "Allocation",
    "allocate",
    "CLOSED_FORM",
    "chinchilla_params",
    "optimal_n",
    "optimal_params",
    "optimum_params",
    "optimal_samples",
    "percentile_interval",
]


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars; NaN/inf -> None (for strict JSON)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# The laws whose compute-optimal N has a closed form, and their exponents along N and
# along D: with one of them <= 0 the loss does not fall along that axis, there is no
# trade-off between N and D to solve, and the closed form has no real solution.
CLOSED_FORM = {"chinchilla": ("alpha", "beta"), "kaplan": ("alpha_N", "alpha_D")}


def optimum_params(result: FitResult) -> dict[str, float]:
    """The parameters of a fit that has a compute-optimal allocation.

    Raises
    ------
    ValueError
        When ``result`` is not a ``chinchilla`` or ``kaplan`` fit, or an exponent is
        ``<= 0``.
    """
    if result.law not in CLOSED_FORM:
        raise ValueError(
            "the compute-optimal closed form needs a 'chinchilla' or 'kaplan' fit, "
            f"got {result.law!r}"
        )
    p = result.params
    along = dict(zip(CLOSED_FORM[result.law], ("N at fixed D", "D at fixed N"), strict=True))
    for name, other in along.items():
        if not p[name] > 0:
            raise ValueError(
                f"the {result.law} fit has {name} = {p[name]:.3g} <= 0: in this data the "
                f"loss does not fall with {other}, so there is no compute-optimal "
                "allocation to solve for; train a wider range of sizes and token budgets, "
                "or use approach 1 or 2"
            )
    return dict(p)


def chinchilla_params(result: FitResult) -> tuple[float, float, float, float, float]:
    """``(E, A, B, alpha, beta)`` of a chinchilla fit that has a compute-optimal
    allocation.

    Raises
    ------
    ValueError
        When ``result`` is not a chinchilla fit, or an exponent is ``<= 0``.
    """
    if result.law != "chinchilla":
        raise ValueError(
            f"the compute-optimal closed form needs a 'chinchilla' fit, got {result.law!r}"
        )
    p = optimum_params(result)
    return p["E"], p["A"], p["B"], p["alpha"], p["beta"]


def optimal_n(law: str, params: dict[str, Any], flops: float | np.ndarray) -> np.ndarray:
    """The compute-optimal ``N`` at ``flops`` of ``law`` (``chinchilla`` or ``kaplan``).

    ``params`` are natural parameters, scalars or arrays that broadcast against
    ``flops`` (bootstrap samples). For ``kaplan`` the bracket along ``D = C/(6N)`` is
    ``(N_c/N)^q + 6 D_c N / C`` with ``q = α_N/α_D``; it is least where
    ``q N_c^q N^(-q-1) = 6 D_c / C``. Computed in logs: ``N_c^q`` overflows for the
    values a bootstrap resample can take.
    """
    c = np.asarray(flops, dtype=float)
    if law == "chinchilla":
        return optimal_params(c, params["A"], params["B"], params["alpha"], params["beta"])
    if law == "kaplan":
        q = np.asarray(params["alpha_N"], dtype=float) / np.asarray(params["alpha_D"], float)
        log_n = np.log(q) + q * np.log(params["N_c"]) + np.log(c / 6) - np.log(params["D_c"])
        return np.exp(log_n / (1 + q))
    raise ValueError(f"law {law!r} has no compute-optimal closed form")


def optimal_params(
    flops: float | np.ndarray, A: float, B: float, alpha: float, beta: float
) -> np.ndarray:
    """``N_opt = G (C/6)^a`` minimising ``A/N^α + B/D^β`` subject to ``6ND = C``.

    Setting the derivative along ``D = C/(6N)`` to zero gives
    ``α A N^-α = β B D^-β``, whence ``G = (αA / (βB))^(1/(α+β))`` and ``a = β/(α+β)``.
    Works elementwise on arrays of parameters (bootstrap samples) too.
    """
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return g * (np.asarray(flops, dtype=float) / 6) ** (beta / (alpha + beta))


def optimal_samples(
    result: FitResult, flops: float | Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compute-optimal ``N``, ``D`` and loss of every bootstrap resample at ``flops``.

    Returns three ``(n_boot, len(flops))`` arrays; NaN for a resample whose exponents
    are not both positive (it has no optimum).

    Raises
    ------
    ValueError
        Without bootstrap samples.
    """
    if result.bootstrap is None or len(result.bootstrap) == 0:
        raise ValueError("no bootstrap samples: refit with bootstrap=N to get intervals")
    law = result.law_form
    c = np.atleast_1d(np.asarray(flops, dtype=float))[None, :]
    cols = {name: result.bootstrap[:, i, None] for i, name in enumerate(law.param_names)}
    first, second = CLOSED_FORM[result.law]
    ok = (cols[first] > 0) & (cols[second] > 0)
    # a resample without an optimum is computed with harmless exponents, then NaN
    safe = {**cols, first: np.where(ok, cols[first], 1.0), second: np.where(ok, cols[second], 1.0)}
    with np.errstate(all="ignore"):  # a wild resample overflows; it is NaN below
        n = np.where(ok, optimal_n(result.law, safe, c), np.nan)
        d = c / (6 * n)
        loss = law.predict(safe, n, d)
    return n, d, loss


def percentile_interval(samples: np.ndarray, level: float, axis: int = 0) -> np.ndarray:
    """``[lo, hi]`` percentiles of ``samples`` (NaN ignored) along ``axis``, stacked first."""
    tail = 100 * (1 - level) / 2
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(samples, [tail, 100 - tail], axis=axis)


@dataclass
class Allocation:
    """A recommendation for one compute budget.

    Attributes
    ----------
    flops
        The budget C (``C = 6ND``).
    params, tokens, loss
        The compute-optimal ``N_opt``, ``D_opt = C / (6 N_opt)`` and the loss the fit
        predicts there.
    nearest
        With a ladder of sizes: the member that reaches the lowest predicted loss when
        trained on the whole budget, ``{"params", "tokens", "loss"}`` (and
        ``"interval"``, the bootstrap band of its loss, when the fit has one); else None.
    intervals
        ``{"params", "tokens", "loss": (lo, hi)}`` at ``level``: percentiles of each
        bootstrap resample's own optimum at C; empty without a bootstrap.
    level
        Confidence level of ``intervals``.
    extrapolation
        How far beyond the data: ``{"flops": C / largest 6ND in the data, "params":
        N_opt / largest N, "tokens": D_opt / largest D}``.
    identified, identification
        Those of the fit (an allocation from an unidentified fit is not one).
    """

    flops: float
    params: float
    tokens: float
    loss: float
    nearest: dict[str, Any] | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    level: float = 0.95
    extrapolation: dict[str, float] = field(default_factory=dict)
    identified: bool = True
    identification: list[str] = field(default_factory=list)

    @property
    def tokens_per_param(self) -> float:
        """``D_opt / N_opt`` (Chinchilla's ~20)."""
        return self.tokens / self.params

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``flops, params, tokens, loss, tokens_per_param, intervals,
        level, extrapolation, identified, identification, nearest``."""
        nearest = None
        if self.nearest is not None:
            nearest = {
                k: [plain(x) for x in v] if isinstance(v, (tuple, list)) else plain(v)
                for k, v in self.nearest.items()
            }
        return {
            "flops": plain(self.flops),
            "params": plain(self.params),
            "tokens": plain(self.tokens),
            "loss": plain(self.loss),
            "tokens_per_param": plain(self.tokens_per_param),
            "intervals": {k: [plain(lo), plain(hi)] for k, (lo, hi) in self.intervals.items()},
            "level": plain(self.level),
            "extrapolation": {k: plain(v) for k, v in self.extrapolation.items()},
            "identified": bool(self.identified),
            "identification": list(self.identification),
            "nearest": nearest,
        }


def allocate(flops: float, result: FitResult, ladder: Sequence[float] | None = None) -> Allocation:
    """Split the budget ``flops`` between parameters and tokens by a chinchilla or kaplan fit.

    With ``ladder`` (the sizes of a model family), also pick the member to train: each
    member would see ``D = C / (6N)`` tokens, and the one with the lowest predicted loss
    wins. It is usually, but not always, the member closest to ``N_opt`` in log size,
    since the loss is asymmetric about the optimum. When the fit has bootstrap samples,
    N, D and the loss get the percentile intervals of the resamples' own optima (and
    the member's loss its band).
    """
    if not flops > 0:
        raise ValueError(f"the budget must be > 0 FLOPs, got {flops}")
    n_opt = float(optimal_n(result.law, optimum_params(result), flops))
    d_opt = flops / (6 * n_opt)
    loss = float(result.predict(np.array(n_opt), np.array(d_opt)))
    has_boot = result.bootstrap is not None and len(result.bootstrap) > 0
    intervals: dict[str, tuple[float, float]] = {}
    if has_boot:
        samples = optimal_samples(result, flops)
        for name, values in zip(("params", "tokens", "loss"), samples, strict=True):
            lo, hi = percentile_interval(values[:, 0], result.level)
            intervals[name] = (float(lo), float(hi))
    reach = result.extrapolation(np.array(n_opt), np.array(d_opt))
    nearest = None
    if ladder is not None:
        sizes = np.asarray(ladder, dtype=float)
        if sizes.size == 0 or not (np.isfinite(sizes).all() and (sizes > 0).all()):
            raise ValueError("the ladder must be a non-empty list of positive sizes")
        tokens = flops / (6 * sizes)
        losses = result.predict(sizes, tokens)
        i = int(np.argmin(losses))
        nearest = {"params": float(sizes[i]), "tokens": float(tokens[i]), "loss": float(losses[i])}
        if has_boot:
            lo, hi = result.predict_band(sizes[i : i + 1], tokens[i : i + 1])
            nearest["interval"] = (float(lo[0]), float(hi[0]))
    return Allocation(
        flops=float(flops),
        params=n_opt,
        tokens=d_opt,
        loss=loss,
        nearest=nearest,
        intervals=intervals,
        level=result.level,
        extrapolation={k: float(v) for k, v in reach.items()},
        identified=result.identified,
        identification=list(result.identification),
    )
