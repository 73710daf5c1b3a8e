"""Backtesting: fit a law on the smaller runs and see how well it predicts the largest.

A scaling law is used to extrapolate, so the honest test of one is an extrapolation:
hold out the ``k`` largest runs, fit on the rest, and compare the prediction with what
those runs actually reached. A law that fits the small runs well but misses the large
ones (a kink, a plateau, a change of regime) shows up here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.fit import FitResult, fit_frame
from analysis.laws import get_law

__all__ = ["Backtest", "backtest"]


@dataclass
class Backtest:
    """The outcome of :func:`backtest`.

    Attributes
    ----------
    law
        Name of the law fitted.
    k
        Number of held-out (largest) runs.
    fit
        The fit on the remaining runs.
    table
        One row per held-out run: ``run`` and the data columns present among
        ``params, tokens, flops, loss`` (plus the target column if another), then
        ``predicted`` and ``rel_error = (predicted - actual) / actual``.
    """

    law: str
    k: int
    fit: FitResult
    table: pd.DataFrame

    @property
    def max_abs_rel_error(self) -> float:
        """The worst held-out relative error, in absolute value."""
        return float(np.abs(self.table["rel_error"]).max())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"law", "k", "fit", "max_abs_rel_error", "rows": [records]}``."""

        def plain(v: Any) -> Any:
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, (float, np.floating)):
                v = float(v)
                return v if math.isfinite(v) else None
            return v

        return {
            "law": self.law,
            "k": int(self.k),
            "fit": self.fit.to_dict(),
            "max_abs_rel_error": plain(self.max_abs_rel_error),
            "rows": [
                {str(c): plain(v) for c, v in row.items()}
                for row in self.table.to_dict(orient="records")
            ],
        }


def backtest(
    df: pd.DataFrame,
    law: str = "saturating",
    *,
    k: int = 1,
    x: str = "params",
    y: str = "loss",
    **fit_kw: Any,
) -> Backtest:
    """Fit ``law`` on all but the ``k`` largest runs and predict those ``k``.

    Runs are ordered by ``x`` (for ``chinchilla``, which takes ``params`` and ``tokens``,
    by ``flops``, or ``6 * params * tokens`` when there is no flops column). Other
    keywords go to :func:`analysis.fit.fit` (e.g. ``bootstrap``, ``delta``).

    Raises
    ------
    ValueError
        When ``k`` is not between 1 and ``len(df) - 1``, or the remaining runs are too
        few to fit (see :func:`analysis.fit.min_points`).
    """
    form = get_law(law)
    if not 1 <= k < len(df):
        raise ValueError(f"k must be between 1 and {len(df) - 1} (the number of runs - 1), got {k}")
    if form.n_inputs == 2:
        x_cols = ["params", "tokens"]
        size = df["flops"] if "flops" in df.columns else 6 * df["params"] * df["tokens"]
    else:
        x_cols = [x]
        size = df[x]
    order = np.argsort(np.asarray(size, dtype=float), kind="stable")
    train, held = df.iloc[order[:-k]], df.iloc[order[-k:]]
    result = fit_frame(train, form, x=x_cols if len(x_cols) > 1 else x_cols[0], y=y, **fit_kw)
    inputs = [held[c].to_numpy(dtype=float) for c in x_cols]
    predicted = result.predict(*inputs)
    actual = held[y].to_numpy(dtype=float)

    columns = [
        c for c in ["run", "params", "tokens", "flops", "loss", *x_cols, y] if c in df.columns
    ]
    table = held[list(dict.fromkeys(columns))].reset_index(drop=True)
    if "run" not in table.columns:
        table.insert(0, "run", held.index.to_numpy())
    table["predicted"] = predicted
    table["rel_error"] = (predicted - actual) / actual
    return Backtest(law=form.name, k=k, fit=result, table=table)
