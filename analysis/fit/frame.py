"""Fitting a law to columns of a DataFrame (:func:`fit_frame`): the columns each law
reads (:data:`DEFAULT_COLUMNS`), the groups the bootstrap draws, the default number of
resamples; the fit itself is :func:`analysis.fit.fit`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.fit.core import fit
from analysis.fit.defaults import default_bootstrap
from analysis.laws import Law, get_law
from analysis.resample import bootstrap_groups
from analysis.result import FitResult

if TYPE_CHECKING:  # pandas is only needed by fit_frame's callers
    import pandas as pd

__all__ = ["DEFAULT_COLUMNS", "fit_frame"]

#: The input columns a law of several inputs reads when ``x`` is not given (else
#: ``params`` and ``tokens`` for two inputs, ``params`` for one).
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "overtraining": ["flops", "tokens_per_param"],
    "data_constrained": ["params", "tokens", "unique_tokens"],
}


def fit_frame(
    df: pd.DataFrame,
    law: str | Law,
    *,
    x: str | Sequence[str] | None = None,
    y: str = "loss",
    groups: str | None = "auto",
    bootstrap: int | None = None,
    **kw: Any,
) -> FitResult:
    """Fit a law to columns of a DataFrame.

    ``chinchilla`` and ``kaplan`` use ``params`` and ``tokens`` unless ``x`` names two
    other columns, ``overtraining`` ``flops`` and ``tokens_per_param`` (``tokens /
    params`` when the table has no such column), ``data_constrained`` ``params``,
    ``tokens`` and ``unique_tokens`` (turned into the ratios it reads,
    :func:`analysis.laws.repeated.repetition_inputs`);
    ``power`` and ``saturating`` use ``x`` (default ``"params"``). Error messages name
    the offending column. Other keywords (``min_points`` among them) go to
    :func:`analysis.fit.fit`.

    ``groups`` says what the bootstrap resamples: ``"auto"`` (default) whole trunks, or
    whole runs, as :func:`analysis.resample.bootstrap_groups` finds them in the table; a column name: the
    rows sharing a value of that column; None: each row alone.

    ``bootstrap`` None (default) draws as ``scaling-analyze`` does: none for ``power``,
    :data:`~analysis.fit.DEFAULT_BOOTSTRAP` resamples for the others
    (:func:`~analysis.fit.default_bootstrap`).
    """
    law = get_law(law)
    if x is None:
        cols = DEFAULT_COLUMNS.get(law.name) or (
            ["params", "tokens"] if law.n_inputs == 2 else ["params"]
        )
    else:
        cols = [x] if isinstance(x, str) else list(x)
    if "tokens_per_param" in cols and "tokens_per_param" not in df.columns:
        if {"tokens", "params"} <= set(df.columns):
            df = df.assign(tokens_per_param=df["tokens"] / df["params"])
    missing = [c for c in [*cols, y] if c not in df.columns]
    if isinstance(groups, str) and groups != "auto" and groups not in df.columns:
        missing.append(groups)
    if missing:
        raise ValueError(
            f"column(s) {', '.join(map(repr, missing))} not in the table "
            f"(it has: {', '.join(map(str, df.columns))})"
        )
    arrays = tuple(df[c].to_numpy(dtype=float) for c in cols)
    if cols == ["params", "tokens"]:
        _warn_of_inversions(*arrays, df[y].to_numpy(dtype=float))
    if law.name == "data_constrained" and len(arrays) == 3:
        from analysis.laws.repeated import repetition_inputs

        # N, D and the unique tokens -> N, D and the repetition ratios the law reads
        arrays = repetition_inputs(*arrays)
        cols = [cols[0], cols[1], "rho_N", "rho_D"]
    if groups is None:
        labels, kind = None, "points"
    elif groups == "auto":
        labels, kind = bootstrap_groups(df)
    else:
        labels, kind = df[groups].to_numpy(), groups
    return fit(law, arrays if len(arrays) > 1 else arrays[0], df[y].to_numpy(dtype=float),
               x_names=cols, y_name=y, groups=labels, group_kind=kind,
               bootstrap=default_bootstrap(law) if bootstrap is None else bootstrap, **kw)  # fmt: skip


def _warn_of_inversions(params: Any, tokens: Any, loss: Any) -> None:
    import warnings

    from analysis.io import DataWarning
    from analysis.size_order import describe_inversions, size_inversions

    found, n_budgets = size_inversions(params, tokens, loss)
    if found:
        warnings.warn(describe_inversions(found, n_budgets), DataWarning, stacklevel=3)
