"""Predictions from a fitted law, each with its bootstrap band and its reach.

A scaling law is fitted to be used where no run has been: at a size, a data budget or a
compute budget beyond the sweep. :func:`predict` evaluates a fit there and says, for
each point, the interval of the loss (percentiles of the law over the bootstrap
resamples), the tokens per parameter, and how far beyond the data it reaches
(``extrapolation``: the point's compute ``6ND`` over the largest of the data for a law
of N and D, else its input over the largest fitted). On the compute-optimal frontier
(a chinchilla or kaplan fit and a budget alone) each resample contributes its own optimum, so
the intervals of N, D and the loss there are those of :func:`analysis.allocation.allocate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.allocation import (
    CLOSED_FORM,
    optimal_n,
    optimal_samples,
    optimum_params,
    percentile_interval,
    plain,
)
from analysis.result import FitResult

__all__ = ["Prediction", "Predictions", "predict"]

#: What each kind of prediction is, in words.
KINDS = {
    "given": "at the N and D given",
    "optimum": "compute-optimal N and D for the budget",
    "ladder": "a ladder member trained on the whole budget",
}


@dataclass
class Prediction:
    """The law at one point.

    Attributes
    ----------
    kind
        ``"given"`` (at the inputs asked), ``"optimum"`` (the compute-optimal N and D
        for a budget) or ``"ladder"`` (a member of a ladder trained on a budget).
    params, tokens, flops
        The point: N, D and ``C = 6ND`` (None for an input a one-variable law lacks).
    loss
        The law's prediction (the fitted target, whatever it is).
    interval
        Its bootstrap band at the fit's level, or None without a bootstrap.
    extrapolation
        The point over the data's largest on the law's scale: compute for a law of N
        and D, the input for a law of one variable (above 1: beyond the data).
    scale
        What ``extrapolation`` measures: ``"flops"``, or the input's name.
    beyond
        Every factor: each input over its largest fitted value (and ``flops``).
    intervals
        For an optimum, the intervals of ``params`` and ``tokens`` (each resample's own
        optimum); else empty.
    """

    kind: str
    params: float | None
    tokens: float | None
    flops: float | None
    loss: float
    interval: tuple[float, float] | None
    extrapolation: float
    scale: str
    beyond: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def tokens_per_param(self) -> float | None:
        """``D / N``, when both are known."""
        if self.params is None or self.tokens is None:
            return None
        return self.tokens / self.params

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``kind, params, tokens, flops, tokens_per_param, loss, interval,
        extrapolation, scale, beyond`` and, for an optimum, ``params_interval`` and
        ``tokens_interval``."""
        out = {
            "kind": self.kind,
            "params": plain(self.params),
            "tokens": plain(self.tokens),
            "flops": plain(self.flops),
            "tokens_per_param": plain(self.tokens_per_param),
            "loss": plain(self.loss),
            "interval": None if self.interval is None else [plain(v) for v in self.interval],
            "extrapolation": plain(self.extrapolation),
            "scale": self.scale,
            "beyond": {k: plain(v) for k, v in self.beyond.items()},
        }
        for name, (lo, hi) in self.intervals.items():
            out[f"{name}_interval"] = [plain(lo), plain(hi)]
        return out


@dataclass
class Predictions:
    """What :func:`predict` returns: the fit and its predictions."""

    fit: FitResult
    predictions: list[Prediction]

    @property
    def law(self) -> str:
        """Name of the law."""
        return self.fit.law

    @property
    def farthest(self) -> Prediction | None:
        """The prediction that reaches farthest beyond the data."""
        finite = [p for p in self.predictions if np.isfinite(p.extrapolation)]
        return max(finite, key=lambda p: p.extrapolation) if finite else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"law", "formula", "level", "identified", "identification",
        "predictions": [...]}`` (see :meth:`Prediction.to_dict`)."""
        return {
            "law": self.law,
            "formula": self.fit.formula(),
            "level": plain(self.fit.level),
            "identified": bool(self.fit.identified),
            "identification": list(self.fit.identification),
            "predictions": [p.to_dict() for p in self.predictions],
        }


def _array(values: float | Sequence[float] | np.ndarray | None, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"--{name}: expected one or more numbers")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"--{name}: every value must be a finite number > 0, got {arr.tolist()}")
    return arr


def _pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast two value lists: equal lengths pair up, a single value goes with each."""
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(
            f"--{names[0]} has {len(a)} values and --{names[1]} {len(b)}: give as many of "
            "each (they pair up), or a single value of one"
        )
    a, b = np.broadcast_arrays(a, b)
    return np.array(a), np.array(b)


def _has_bootstrap(result: FitResult) -> bool:
    return result.bootstrap is not None and len(result.bootstrap) > 0


def _points(result: FitResult, kind: str, n: np.ndarray, d: np.ndarray) -> list[Prediction]:
    """Predictions of a law of N and D at the pairs ``(n, d)``."""
    loss = np.asarray(result.predict(n, d), dtype=float)
    band = result.predict_band(n, d) if _has_bootstrap(result) else None
    reach = result.extrapolation(n, d)
    out = []
    for i in range(len(n)):
        out.append(
            Prediction(
                kind=kind,
                params=float(n[i]),
                tokens=float(d[i]),
                flops=float(6 * n[i] * d[i]),
                loss=float(loss[i]),
                interval=None if band is None else (float(band[0][i]), float(band[1][i])),
                extrapolation=float(reach["flops"][i]),
                scale="flops",
                beyond={k: float(v[i]) for k, v in reach.items()},
            )
        )
    return out


def _optima(result: FitResult, flops: np.ndarray) -> list[Prediction]:
    """The compute-optimal predictions at each budget, with each resample's optimum."""
    n = np.asarray(optimal_n(result.law, optimum_params(result), flops), dtype=float)
    d = flops / (6 * n)
    out = _points(result, "optimum", n, d)
    if _has_bootstrap(result):
        n_b, d_b, loss_b = optimal_samples(result, flops)
        bands = {
            name: percentile_interval(values, result.level)
            for name, values in (("params", n_b), ("tokens", d_b), ("loss", loss_b))
        }
        for i, p in enumerate(out):
            p.interval = (float(bands["loss"][0][i]), float(bands["loss"][1][i]))
            p.intervals = {
                name: (float(bands[name][0][i]), float(bands[name][1][i]))
                for name in ("params", "tokens")
            }
    return out


def _two_inputs(
    result: FitResult,
    params: np.ndarray | None,
    tokens: np.ndarray | None,
    flops: np.ndarray | None,
    ladder: np.ndarray | None,
) -> list[Prediction]:
    if ladder is not None:
        if flops is None or params is not None or tokens is not None:
            raise ValueError("--ladder goes with --flops alone: each member trained on each budget")
        n = np.tile(ladder, len(flops))
        c = np.repeat(flops, len(ladder))
        return _points(result, "ladder", n, c / (6 * n))
    given = sum(v is not None for v in (params, tokens, flops))
    if given == 3:
        raise ValueError("give two of --params, --tokens, --flops (C = 6ND fixes the third)")
    if flops is not None and params is not None:
        n, c = _pair(params, flops, ("params", "flops"))
        return _points(result, "given", n, c / (6 * n))
    if flops is not None and tokens is not None:
        d, c = _pair(tokens, flops, ("tokens", "flops"))
        return _points(result, "given", c / (6 * d), d)
    if params is not None and tokens is not None:
        n, d = _pair(params, tokens, ("params", "tokens"))
        return _points(result, "given", n, d)
    if flops is not None:
        return _optima(result, flops)
    raise ValueError(
        "a law of N and D predicts at --params N --tokens D, at a budget --flops C (on "
        "the compute-optimal frontier), or with --flops C --ladder (each size on C)"
    )


def _one_input(
    result: FitResult, values: dict[str, np.ndarray | None], ladder: np.ndarray | None
) -> list[Prediction]:
    name = result.variables[0] if result.variables else "x"
    given = [k for k, v in values.items() if v is not None]
    if ladder is not None:
        raise ValueError(f"--ladder needs a law of N and D; this {result.law} law is of {name}")
    if given != [name]:
        asked = ", ".join(f"--{k}" for k in given) or "nothing"
        raise ValueError(
            f"the {result.law} law is of {name!r} alone: predict with --{name} (got {asked})"
            if name in values
            else f"the {result.law} law is of {name!r}, which predict does not take "
            "(it takes --params, --tokens or --flops)"
        )
    x = values[name]
    assert x is not None
    loss = np.asarray(result.predict(x), dtype=float)
    band = result.predict_band(x) if _has_bootstrap(result) else None
    reach = result.extrapolation(x)
    out = []
    for i in range(len(x)):
        point = {k: None for k in ("params", "tokens", "flops")}
        point[name] = float(x[i])
        out.append(
            Prediction(
                kind="given",
                params=point["params"],
                tokens=point["tokens"],
                flops=point["flops"],
                loss=float(loss[i]),
                interval=None if band is None else (float(band[0][i]), float(band[1][i])),
                extrapolation=float(reach[name][i]),
                scale=name,
                beyond={k: float(v[i]) for k, v in reach.items()},
            )
        )
    return out


def predict(
    result: FitResult,
    *,
    params: float | Sequence[float] | np.ndarray | None = None,
    tokens: float | Sequence[float] | np.ndarray | None = None,
    flops: float | Sequence[float] | np.ndarray | None = None,
    ladder: Sequence[float] | np.ndarray | None = None,
) -> Predictions:
    """The fit's predictions, each with its band, tokens per parameter and reach.

    For a law of N and D (``chinchilla`` or ``kaplan``, fitted on ``params`` and ``tokens``), two of
    ``params``, ``tokens``, ``flops`` give points (``C = 6ND`` fixes the third; equal
    lengths pair up, a single value goes with each of the other); ``flops`` alone gives
    the compute-optimal point of each budget; ``flops`` with ``ladder`` (model sizes)
    gives each size trained on each budget. For a law of one variable, the values of
    that variable (``params``, ``tokens`` or ``flops``, as it was fitted).

    Raises
    ------
    ValueError
        On a combination of inputs the law cannot take, or non-positive values.
    """
    arrays = {
        "params": _array(params, "params"),
        "tokens": _array(tokens, "tokens"),
        "flops": _array(flops, "flops"),
    }
    sizes = _array(ladder, "ladder")
    if result.law_form.n_inputs >= 2:
        if result.law not in CLOSED_FORM:
            raise ValueError(
                "predict takes chinchilla, kaplan or a law of one variable, "
                f"not {result.law!r}"
            )
        out = _two_inputs(result, arrays["params"], arrays["tokens"], arrays["flops"], sizes)
    else:
        out = _one_input(result, arrays, sizes)
    return Predictions(fit=result, predictions=out)
