"""Backtesting: fit a law on the smaller runs and see how well it predicts the largest.

A scaling law is used to extrapolate, so the honest test of one is an extrapolation:
hold out the ``k`` largest runs, fit on the rest, and compare the prediction with what
those runs actually reached. A law that fits the small runs well but misses the large
ones (a kink, a plateau, a change of regime) shows up here and nowhere else.

"Largest" is measured along what the law extrapolates in: compute ``C`` (the table's
``flops``, else ``6ND``) for a law of N and D, the input column for a law of one
variable. A table that ships its own split (a column saying which rows are the
extrapolation set) is backtested on it with ``test_where``.

Each held-out row gets a prediction interval when the fit has bootstrap resamples:
where a new run would land, i.e. the band of the law over the resamples widened by
the fit's residual scatter (:meth:`analysis.result.FitResult.predict_band` with
``noise=True``), and the table says whether the actual value falls inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.allocation import plain
from analysis.fit import DEFAULT_COLUMNS, FitResult, fit_frame
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
        Number of held-out rows.
    fit
        The fit on the remaining rows.
    table
        One row per held-out row: ``run`` and the data columns present among
        ``params, tokens, flops, loss`` (plus the target column if another), then
        ``predicted``, ``lo`` and ``hi`` (the prediction interval at the fit's level;
        NaN without a bootstrap), ``inside`` (whether the actual value lies in it; None
        without one), ``rel_error = (predicted - actual) / actual`` and
        ``extrapolation`` (how far past the fitted rows: compute over the largest
        compute of the fit for a law of N and D, else the input over its largest).
    held_out
        What was held out, in words, e.g. ``"the 3 rows with the largest compute C
        (flops)"`` or ``"the 12 rows matching 'split == \\"test\\"'"``.
    y
        The target column.
    """

    law: str
    k: int
    fit: FitResult
    table: pd.DataFrame
    held_out: str = ""
    y: str = "loss"

    @property
    def max_abs_rel_error(self) -> float:
        """The worst held-out relative error, in absolute value."""
        return float(np.abs(self.table["rel_error"]).max())

    @property
    def mean_abs_rel_error(self) -> float:
        """The mean held-out relative error, in absolute value."""
        return float(np.abs(self.table["rel_error"]).mean())

    @property
    def coverage(self) -> float | None:
        """Share of held-out rows inside their prediction interval (None without one)."""
        inside = self.table["inside"].dropna()
        return None if inside.empty else float(inside.astype(bool).mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"law", "k", "held_out", "fit", "level", "mean_abs_rel_error",
        "max_abs_rel_error", "coverage", "rows"}``; each row holds the data columns and
        ``actual``, ``predicted``, ``rel_error``, ``interval`` (``[lo, hi]`` or None),
        ``inside`` and ``extrapolation``."""
        rows = []
        for row in self.table.to_dict(orient="records"):
            lo, hi = row.pop("lo"), row.pop("hi")
            inside = row.pop("inside")
            out = {str(c): plain(v) for c, v in row.items()}
            out["actual"] = plain(row[self.y])
            has = np.isfinite(lo) and np.isfinite(hi)
            out["interval"] = [plain(lo), plain(hi)] if has else None
            out["inside"] = None if inside is None or pd.isna(inside) else bool(inside)
            rows.append(out)
        return {
            "law": self.law,
            "k": int(self.k),
            "held_out": self.held_out,
            "fit": self.fit.to_dict(),
            "level": plain(self.fit.level),
            "mean_abs_rel_error": plain(self.mean_abs_rel_error),
            "max_abs_rel_error": plain(self.max_abs_rel_error),
            "coverage": self.coverage,
            "rows": rows,
        }


def _test_rows(df: pd.DataFrame, expr: str) -> np.ndarray:
    """Boolean mask of the rows matching ``expr`` (a filter :mod:`analysis.query` reads)."""
    from analysis.query import query

    try:
        matched = query(df, expr)
    except ValueError as err:
        columns = ", ".join(str(c) for c in df.columns)
        raise ValueError(
            f"--test-where {expr!r} failed: {err}. "
            f"Available columns: {columns} (quote names with spaces in backticks)"
        ) from None
    if not isinstance(matched, pd.DataFrame):
        raise ValueError(f"--test-where {expr!r} is not a row filter (e.g. 'split == \"test\"')")
    mask = df.index.isin(matched.index)
    if not mask.any():
        raise ValueError(
            f"--test-where {expr!r} matches no rows (of {len(df)}): nothing to predict"
        )
    if mask.all():
        raise ValueError(f"--test-where {expr!r} matches every row: none left to fit on")
    return mask


def backtest(
    df: pd.DataFrame,
    law: str = "saturating",
    *,
    k: int = 1,
    x: str = "params",
    y: str = "loss",
    test_where: str | None = None,
    **fit_kw: Any,
) -> Backtest:
    """Fit ``law`` on all but the ``k`` largest runs and predict those ``k``.

    Runs are ordered by ``x`` (for ``chinchilla``, which takes ``params`` and ``tokens``,
    by ``flops``, or ``6 * params * tokens`` when there is no flops column). With
    ``test_where`` (a row filter as ``--where`` takes, e.g. ``'split == "test"'``) the rows matching it are
    held out instead, whatever their size, and ``k`` is ignored. Other keywords go to
    :func:`analysis.fit.fit_frame` (e.g. ``bootstrap``, ``delta``); its default
    bootstrap gives every held-out row a prediction interval.

    Raises
    ------
    ValueError
        When ``k`` is not between 1 and ``len(df) - 1``, ``test_where`` fails or matches
        no row or every row, or the remaining runs are too few to fit (see
        :func:`analysis.fit.min_points`).
    """
    form = get_law(law)
    if form.name in DEFAULT_COLUMNS:  # overtraining, data_constrained: largest compute out
        x_cols = DEFAULT_COLUMNS[form.name]
        if "tokens_per_param" in x_cols and "tokens_per_param" not in df.columns:
            df = df.assign(tokens_per_param=df["tokens"] / df["params"])
        has_flops = "flops" in df.columns
        size = df["flops"] if has_flops else 6 * df["params"] * df["tokens"]
        largest = "compute C (flops)" if has_flops else "compute C = 6ND"
    elif form.n_inputs == 2:
        x_cols = ["params", "tokens"]
        has_flops = "flops" in df.columns
        size = df["flops"] if has_flops else 6 * df["params"] * df["tokens"]
        largest = "compute C (flops)" if has_flops else "compute C = 6ND"
    else:
        x_cols = [x]
        size = df[x]
        largest = x
    if test_where is not None:
        mask = _test_rows(df, test_where)
        train, held = df.loc[~mask], df.loc[mask]
        k = len(held)
        held_out = f"the {k} row(s) matching {test_where!r}"
    else:
        if not 1 <= k < len(df):
            raise ValueError(
                f"k must be between 1 and {len(df) - 1} (the number of runs - 1), got {k}"
            )
        order = np.argsort(np.asarray(size, dtype=float), kind="stable")
        train, held = df.iloc[order[:-k]], df.iloc[order[-k:]]
        held_out = f"the {k} row(s) with the largest {largest}"
    result = fit_frame(train, form, x=x_cols if len(x_cols) > 1 else x_cols[0], y=y, **fit_kw)
    inputs = [held[c].to_numpy(dtype=float) for c in x_cols]
    if form.name == "data_constrained":
        from analysis.laws.repeated import repetition_inputs

        inputs = list(repetition_inputs(*inputs))
    predicted = result.predict(*inputs)
    actual = held[y].to_numpy(dtype=float)
    if result.bootstrap is not None and len(result.bootstrap):
        lo, hi = result.predict_band(*inputs, noise=True)
        inside: list[Any] = list((lo <= actual) & (actual <= hi))
    else:
        lo = hi = np.full(len(held), np.nan)
        inside = [None] * len(held)
    reach = result.extrapolation(*inputs)
    factor = (
        reach.get("flops", reach.get("C")) if form.n_inputs == 2 else next(iter(reach.values()))
    )

    columns = [
        c for c in ["run", "params", "tokens", "flops", "loss", *x_cols, y] if c in df.columns
    ]
    table = held[list(dict.fromkeys(columns))].reset_index(drop=True)
    if "run" not in table.columns:
        table.insert(0, "run", held.index.to_numpy())
    table["predicted"] = predicted
    table["lo"] = lo
    table["hi"] = hi
    table["inside"] = pd.Series(inside, dtype=object)
    table["rel_error"] = (predicted - actual) / actual
    table["extrapolation"] = factor
    return Backtest(law=form.name, k=k, fit=result, table=table, held_out=held_out, y=y)
