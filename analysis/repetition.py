"""The data-constrained law fitted as Muennighoff et al. (2023) fit it: in two stages.

Their objective is nearly flat in R*_D and R*_N when the five Chinchilla parameters
move with them, so the paper first fits ``L = E + A/N^alpha + B/D^beta`` on the runs
that repeat nothing (one epoch or less, N no larger than U_D/20: there N' = N and
D' = D), then R*_N and R*_D on every run with those five held. :func:`fit_two_stage`
does that; ``fit_frame(df, "data_constrained")`` fits all seven jointly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.fit import FitResult, fit_frame
from analysis.laws.repeated import OPTIMAL_TOKENS_PER_PARAM

__all__ = ["fit_two_stage", "single_epoch"]

_CHINCHILLA = ("E", "A", "B", "alpha", "beta")


def single_epoch(df: pd.DataFrame) -> pd.Series:
    """The rows that repeat nothing: ``tokens <= unique_tokens`` and ``params <=
    unique_tokens / 20``."""
    u = df["unique_tokens"].astype(float)
    return (df["tokens"] <= u) & (df["params"] <= u / OPTIMAL_TOKENS_PER_PARAM)


def fit_two_stage(df: pd.DataFrame, **fit_kw: Any) -> tuple[FitResult, FitResult]:
    """Stage 1, Chinchilla's law on the single-epoch rows; stage 2, R*_N and R*_D on every
    row with the stage-1 parameters held. Keywords go to both fits
    (:func:`analysis.fit.fit_frame`).

    Returns
    -------
    (stage1, stage2)
        The stage-2 result's intervals are those of R*_N, R*_D alone (the others fixed).

    Raises
    ------
    ValueError
        When a column is missing or too few single-epoch rows are left to fit stage 1.
    """
    missing = [c for c in ("params", "tokens", "unique_tokens", "loss") if c not in df.columns]
    if missing:
        raise ValueError(f"the data-constrained fit needs column(s) {', '.join(missing)}")
    first = df.loc[single_epoch(df)]
    if len(first) < 10:
        raise ValueError(
            f"stage 1 of the data-constrained fit needs 10 single-epoch runs (tokens <= "
            f"unique_tokens, params <= unique_tokens/20), the table has {len(first)}"
        )
    stage1 = fit_frame(first, "chinchilla", **fit_kw)
    fix = {name: float(stage1.params[name]) for name in _CHINCHILLA}
    stage2 = fit_frame(df, "data_constrained", fix=fix, **fit_kw)
    return stage1, stage2
