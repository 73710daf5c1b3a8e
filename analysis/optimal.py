"""The compute-optimal frontier: how to split a compute budget C between size and data.

Hoffmann et al. (2022) estimate the exponent ``a`` of ``N_opt ∝ C^a`` three ways, and so
does this module:

1. :func:`approach1` -- the lower envelope of loss against compute over all training
   curves: at each budget C, the model size whose curve is lowest there.
2. :func:`approach2` -- IsoFLOP profiles: runs grouped by budget, a parabola of loss in
   ``log N`` per group, its vertex giving ``N_opt(C)``.
3. :func:`approach3` -- the closed form from a fitted ``L = E + A/N^α + B/D^β``:
   minimising it under ``C = 6ND`` gives ``N_opt = G (C/6)^a`` with ``a = β/(α+β)`` and
   ``G = (αA / (βB))^(1/(α+β))``.

Approaches 1 and 2 end with a least-squares line of ``log N_opt`` on ``log C``; its
slope is ``a`` and its t-interval is the interval reported. Throughout, ``C = 6ND``, so
``D_opt ∝ C^b`` with ``b = 1 - a``.

:func:`allocate` turns a chinchilla fit into a recommendation for one budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.fit import FitResult, loglog_line

__all__ = [
    "Allocation",
    "Frontier",
    "allocate",
    "approach1",
    "approach2",
    "approach3",
    "optimal_params",
]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars; NaN/inf -> None (for strict JSON)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


@dataclass
class Frontier:
    """An estimate of the compute-optimal frontier ``N_opt = coef * C^a``.

    Attributes
    ----------
    approach
        1, 2 or 3 (Hoffmann et al.'s numbering).
    a
        Exponent of ``N_opt ∝ C^a``.
    interval
        Interval of ``a`` at ``level`` (t-interval of the log-log regression for
        approaches 1 and 2, bootstrap percentiles for approach 3), or None.
    points
        Approach 1: the envelope (``flops, params, loss, run, params_run``: ``params`` is
        ``N_opt``, ``run`` and ``params_run`` the lowest curve there); approach 2: one row per
        IsoFLOP group (``flops, params_opt, tokens_opt, loss_opt, curvature, n_runs``,
        the parabola being ``loss = loss_opt + curvature * (ln N - ln params_opt)^2``);
        approach 3: a grid of budgets (``flops, params_opt, tokens_opt, loss_opt``).
    b
        Exponent of ``D_opt ∝ C^b`` (``1 - a`` under ``C = 6ND``).
    coef
        ``N_opt = coef * C^a``.
    level
        Confidence level of ``interval``.
    """

    approach: int
    a: float
    interval: tuple[float, float] | None
    points: pd.DataFrame
    b: float | None = None
    coef: float | None = None
    level: float = 0.95

    def params_opt(self, flops: float | np.ndarray) -> np.ndarray:
        """``N_opt`` at the given budgets, on this frontier."""
        if self.coef is None:
            raise ValueError("this frontier has no coefficient")
        return self.coef * np.asarray(flops, dtype=float) ** self.a

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"approach", "a", "interval", "b", "coef", "points": [records]}``."""
        records = [
            {str(k): _plain(v) for k, v in row.items()}
            for row in self.points.to_dict(orient="records")
        ]
        return {
            "approach": int(self.approach),
            "a": _plain(self.a),
            "interval": None if self.interval is None else [_plain(v) for v in self.interval],
            "b": _plain(self.b),
            "coef": _plain(self.coef),
            "points": records,
        }


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} needs column(s) {', '.join(map(repr, missing))}; "
            f"the table has {', '.join(map(str, df.columns))}"
        )


def _usable(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose ``columns`` are all finite and positive (e.g. drops step 0, flops 0)."""
    values = df[list(columns)].to_numpy(dtype=float)
    keep = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    return df.loc[keep]


# --------------------------------------------------------------------------------------
# Approach 1: the lower envelope of the training curves
# --------------------------------------------------------------------------------------


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean; the window shrinks at the ends so no point is lost."""
    half = window // 2
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    lo = np.maximum(idx - half, 0)
    hi = np.minimum(idx + half + 1, len(values))
    return (csum[hi] - csum[lo]) / (hi - lo)


def approach1(
    curves: pd.DataFrame,
    *,
    n_bins: int = 60,
    smooth: int = 1,
    refine: bool = True,
    level: float = 0.95,
) -> Frontier:
    """The frontier from the lower envelope of loss against compute (Hoffmann's approach 1).

    Each run's curve is interpolated (linearly in ``log flops``) onto ``n_bins``
    log-spaced budgets spanning all curves; at each budget the size whose curve is lowest
    there is the envelope's size. Budgets where that is the smallest or the largest size
    of the sweep are left out: there the optimum may lie outside the sizes trained, and
    the envelope only says "at most this small" (or "at least this big"). ``log N`` of
    the remaining envelope points is regressed on ``log C``.

    Parameters
    ----------
    curves
        Long-form curves: columns ``run, params, flops, loss``, many rows per run
        (rows with non-positive flops, e.g. step 0, are ignored). Several runs of one
        size (seeds, learning rates) count as one size: the lowest curve is used.
    n_bins
        Number of budgets at which the envelope is read.
    smooth
        Window (in evaluations) of a running mean applied to each curve first. Noise
        between evaluations makes the envelope jump between sizes whose losses differ
        by less than the noise; averaging a few evaluations damps that.
    refine
        Read the optimum between the sizes trained: fit a parabola in ``ln N`` through
        the lowest curve and its two neighbours in size at that budget, and take its
        vertex. Without it, ``N_opt`` is a staircase over the sizes trained, which biases
        ``a`` by a few hundredths for a ladder spaced ~1.5x apart. Budgets where a
        neighbour's curve does not reach, or the parabola has no minimum, are left out.
    level
        Confidence level of the interval of ``a``.

    Raises
    ------
    ValueError
        When columns are missing, fewer than three sizes are present, or fewer than two
        budgets have an interior envelope point.
    """
    _require(curves, ["run", "params", "flops", "loss"], "approach 1")
    data = _usable(curves, ["params", "flops", "loss"])
    runs = [(run, g.sort_values("flops")) for run, g in data.groupby("run", sort=True)]
    run_size = np.array([g["params"].iloc[0] for _, g in runs], dtype=float)
    sizes = np.unique(run_size)  # sorted
    if len(sizes) < 3:
        raise ValueError(f"approach 1 needs curves of at least three model sizes, got {len(sizes)}")
    log_c = np.log(data["flops"].to_numpy(dtype=float))
    grid = np.linspace(log_c.min(), log_c.max(), n_bins)

    # Loss of every run at every budget; +inf where the run's curve does not reach it.
    by_run = np.full((len(runs), n_bins), np.inf)
    for i, (_, g) in enumerate(runs):
        lc = np.log(g["flops"].to_numpy(dtype=float))
        loss = g["loss"].to_numpy(dtype=float)
        if smooth > 1:
            loss = _running_mean(loss, smooth)
        inside = (grid >= lc[0]) & (grid <= lc[-1])
        by_run[i, inside] = np.interp(grid[inside], lc, loss)
    # Lowest curve of each size (and which run it is).
    by_size = np.full((len(sizes), n_bins), np.inf)
    best_run = np.zeros((len(sizes), n_bins), dtype=int)
    for i, size in enumerate(run_size):
        j = int(np.searchsorted(sizes, size))
        lower = by_run[i] < by_size[j]
        by_size[j, lower] = by_run[i, lower]
        best_run[j, lower] = i

    covered = np.isfinite(by_size).sum(axis=0) >= 2  # an envelope needs a comparison
    best = np.argmin(by_size, axis=0)
    interior = covered & (best > 0) & (best < len(sizes) - 1)
    cols = np.flatnonzero(interior)
    n_opt = sizes[best[cols]]
    if refine:
        keep = np.zeros(len(cols), dtype=bool)
        for m, (j, col) in enumerate(zip(best[cols], cols, strict=True)):
            trio = by_size[j - 1 : j + 2, col]
            if not np.isfinite(trio).all():
                continue
            u = np.log(sizes[j - 1 : j + 2])
            c2, c1, _ = np.polyfit(u - u[1], trio, 2)  # exact through three points
            if c2 > 0:
                n_opt[m] = sizes[j] * math.exp(-c1 / (2 * c2))
                keep[m] = True
        cols, n_opt = cols[keep], n_opt[keep]
    if len(cols) < 2:
        raise ValueError(
            "approach 1: fewer than two budgets where the lowest curve belongs to a size "
            "inside the sweep's range; train larger and smaller models, or longer"
        )
    winners = best[cols]
    points = pd.DataFrame(
        {
            "flops": np.exp(grid[cols]),
            "params": n_opt,
            "loss": by_size[winners, cols],
            "run": [runs[best_run[j, c]][0] for j, c in zip(winners, cols, strict=True)],
            "params_run": sizes[winners],
        }
    )
    line = loglog_line(points["flops"].to_numpy(), points["params"].to_numpy(), level)
    return Frontier(
        approach=1,
        a=line.slope,
        interval=line.slope_interval,
        points=points,
        b=1 - line.slope,
        coef=math.exp(line.intercept),
        level=level,
    )


# --------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles
# --------------------------------------------------------------------------------------


def _isoflop_groups(flops: np.ndarray, tol: float) -> np.ndarray:
    """Label runs whose budgets agree within a factor ``1 + tol`` of the group's smallest."""
    order = np.argsort(flops, kind="stable")
    labels = np.empty(len(flops), dtype=int)
    label, start = 0, flops[order[0]]
    for i in order:
        if flops[i] > start * (1 + tol):
            label, start = label + 1, flops[i]
        labels[i] = label
    return labels


def _left_out(skipped: list[tuple[float, str]], n_groups: int) -> str:
    """One line on the IsoFLOP groups left out: how many for each reason, a few budgets."""
    parts = []
    for reason in dict.fromkeys(r for _, r in skipped):
        budgets = [f"{c:.3g}" for c, r in skipped if r == reason]
        shown = ", ".join(budgets[:3]) + (", ..." if len(budgets) > 3 else "")
        parts.append(f"{len(budgets)} with {reason} (C = {shown})")
    return f"left out {len(skipped)} of {n_groups} IsoFLOP groups: " + "; ".join(parts)


def approach2(
    runs: pd.DataFrame,
    *,
    flops_col: str = "flops",
    group_tol: float = 0.1,
    group_col: str | None = None,
    level: float = 0.95,
) -> Frontier:
    """The frontier from IsoFLOP profiles (Hoffmann's approach 2).

    Runs (one final point each) are grouped by budget -- by ``group_col`` when given,
    else runs whose ``flops_col`` agree within a factor ``1 + group_tol`` -- and in each
    group a parabola ``loss = c0 + c1 ln N + c2 (ln N)^2`` is fitted by least squares.
    Its vertex is ``N_opt`` for the group's budget (the geometric mean of its flops).
    Groups with fewer than three sizes, a parabola that opens downwards, or a vertex
    outside the sizes tried are left out with a warning: their optimum is not measured.
    ``log N_opt`` is then regressed on ``log C``.

    Raises
    ------
    ValueError
        When columns are missing or fewer than two groups give a vertex.
    """
    _require(runs, ["params", "loss", flops_col] + ([group_col] if group_col else []), "approach 2")
    data = _usable(runs, ["params", "loss", flops_col])
    if len(data) == 0:
        raise ValueError("approach 2: no runs with positive params, loss and flops")
    flops = data[flops_col].to_numpy(dtype=float)
    labels = (
        data[group_col].to_numpy() if group_col is not None else _isoflop_groups(flops, group_tol)
    )
    rows, skipped = [], []
    for label in pd.unique(labels):
        members = data.loc[labels == label]
        budget = float(np.exp(np.log(members[flops_col].to_numpy(dtype=float)).mean()))
        log_n = np.log(members["params"].to_numpy(dtype=float))
        loss = members["loss"].to_numpy(dtype=float)
        if len(np.unique(log_n)) < 3:
            skipped.append((budget, "fewer than 3 sizes"))
            continue
        center = log_n.mean()  # centring keeps the normal equations well conditioned
        c2, c1, c0 = np.polyfit(log_n - center, loss, 2)
        if c2 <= 0:
            skipped.append((budget, "no minimum (the parabola opens downwards)"))
            continue
        vertex = center - c1 / (2 * c2)
        if not log_n.min() <= vertex <= log_n.max():
            skipped.append((budget, "minimum outside the sizes tried"))
            continue
        n_opt = float(np.exp(vertex))
        rows.append(
            {
                "flops": budget,
                "params_opt": n_opt,
                "tokens_opt": budget / (6 * n_opt),
                "loss_opt": float(c0 - c1 * c1 / (4 * c2)),
                "curvature": float(c2),
                "n_runs": len(members),
                "group": label,
            }
        )
    left_out = _left_out(skipped, len(rows) + len(skipped))
    if len(rows) < 2:
        raise ValueError(
            "approach 2 needs at least two IsoFLOP groups with a measured minimum, "
            f"got {len(rows)}" + (f" ({left_out})" if skipped else "")
        )
    if skipped:
        warnings.warn(f"approach 2 {left_out}", stacklevel=2)
    points = pd.DataFrame(rows).sort_values("flops", ignore_index=True)
    line = loglog_line(points["flops"].to_numpy(), points["params_opt"].to_numpy(), level)
    return Frontier(
        approach=2,
        a=line.slope,
        interval=line.slope_interval,
        points=points,
        b=1 - line.slope,
        coef=math.exp(line.intercept),
        level=level,
    )


# --------------------------------------------------------------------------------------
# Approach 3: closed form from the parametric fit
# --------------------------------------------------------------------------------------


def _chinchilla_params(result: FitResult) -> tuple[float, float, float, float, float]:
    if result.law != "chinchilla":
        raise ValueError(
            f"the compute-optimal closed form needs a 'chinchilla' fit, got {result.law!r}"
        )
    p = result.params
    # With a non-positive exponent, loss does not fall along that axis: there is no
    # trade-off between N and D to solve, and the closed form has no real solution.
    for name, other in (("alpha", "N at fixed D"), ("beta", "D at fixed N")):
        if not p[name] > 0:
            raise ValueError(
                f"the chinchilla fit has {name} = {p[name]:.3g} <= 0: in this data the loss "
                f"does not fall with {other}, so there is no compute-optimal allocation to "
                "solve for; train a wider range of sizes and token budgets, or use "
                "approach 1 or 2"
            )
    return p["E"], p["A"], p["B"], p["alpha"], p["beta"]


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


def approach3(result: FitResult, *, flops: Sequence[float] | np.ndarray | None = None) -> Frontier:
    """The frontier in closed form from a chinchilla fit (Hoffmann's approach 3).

    ``a = β/(α+β)``, ``b = α/(α+β)``, ``N_opt = G (C/6)^a``; the interval of ``a`` is
    the bootstrap percentile interval when the fit has bootstrap samples. ``points`` is
    the frontier on ``flops`` (default: 50 budgets from the smallest ``6ND`` of the fitted
    data to 100x its largest).
    """
    _, A, B, alpha, beta = _chinchilla_params(result)
    a = beta / (alpha + beta)
    interval = None
    if result.bootstrap is not None and len(result.bootstrap):
        samples = result.bootstrap[:, 4] / (result.bootstrap[:, 3] + result.bootstrap[:, 4])
        tail = 100 * (1 - result.level) / 2
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
        interval = (float(lo), float(hi))
    if flops is None:
        if len(result.x) == 2:
            c = 6 * result.x[0] * result.x[1]
            flops = np.geomspace(c.min(), 100 * c.max(), 50)
        else:
            flops = np.geomspace(1e18, 1e26, 50)
    grid = np.asarray(flops, dtype=float)
    n_opt = optimal_params(grid, A, B, alpha, beta)
    d_opt = grid / (6 * n_opt)
    points = pd.DataFrame(
        {
            "flops": grid,
            "params_opt": n_opt,
            "tokens_opt": d_opt,
            "loss_opt": result.predict(n_opt, d_opt),
        }
    )
    coef = float(optimal_params(1.0, A, B, alpha, beta))  # N_opt at C = 1
    return Frontier(
        approach=3, a=a, interval=interval, points=points, b=1 - a, coef=coef, level=result.level
    )


# --------------------------------------------------------------------------------------
# Allocation of one budget
# --------------------------------------------------------------------------------------


@dataclass
class Allocation:
    """A recommendation for one compute budget.

    Attributes
    ----------
    flops
        The budget C.
    params, tokens, loss
        The compute-optimal ``N_opt``, ``D_opt = C / (6 N_opt)`` and the loss the fit
        predicts there.
    nearest
        With a ladder of sizes: the member that reaches the lowest predicted loss when
        trained on the whole budget, ``{"params", "tokens", "loss"}``; else None.
    """

    flops: float
    params: float
    tokens: float
    loss: float
    nearest: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "flops": _plain(self.flops),
            "params": _plain(self.params),
            "tokens": _plain(self.tokens),
            "loss": _plain(self.loss),
            "nearest": None
            if self.nearest is None
            else {k: _plain(v) for k, v in self.nearest.items()},
        }


def allocate(flops: float, result: FitResult, ladder: Sequence[float] | None = None) -> Allocation:
    """Split the budget ``flops`` between parameters and tokens by a chinchilla fit.

    With ``ladder`` (the sizes of a model family), also pick the member to train: each
    member would see ``D = C / (6N)`` tokens, and the one with the lowest predicted loss
    wins. It is usually, but not always, the member closest to ``N_opt`` in log size,
    since the loss is asymmetric about the optimum.
    """
    _chinchilla_params(result)
    if not flops > 0:
        raise ValueError(f"the budget must be > 0 FLOPs, got {flops}")
    _, A, B, alpha, beta = _chinchilla_params(result)
    n_opt = float(optimal_params(flops, A, B, alpha, beta))
    d_opt = flops / (6 * n_opt)
    loss = float(result.predict(np.array(n_opt), np.array(d_opt)))
    nearest = None
    if ladder is not None:
        sizes = np.asarray(ladder, dtype=float)
        if sizes.size == 0 or not (np.isfinite(sizes).all() and (sizes > 0).all()):
            raise ValueError("the ladder must be a non-empty list of positive sizes")
        tokens = flops / (6 * sizes)
        losses = result.predict(sizes, tokens)
        i = int(np.argmin(losses))
        nearest = {"params": float(sizes[i]), "tokens": float(tokens[i]), "loss": float(losses[i])}
    return Allocation(flops=float(flops), params=n_opt, tokens=d_opt, loss=loss, nearest=nearest)
