"""The data-constrained law fitted as Muennighoff et al. (2023) fit it: in two stages.

The paper holds the five Chinchilla parameters (``E, A, B, alpha, beta``) at values fitted
beforehand -- on C4 single-epoch runs, read off Hoffmann et al.'s C4 IsoFLOP figure --
and fits only R*_N and R*_D on its repeated-data runs, with U_N the size that law finds
compute-optimal for the unique data (:func:`~analysis.laws.repeated.optimal_unique_params`).
:func:`fit_two_stage` does that when given the five (``chinchilla=``); without them it
fits them first on the table's own runs that repeat nothing (one epoch or less, N no
larger than U_D/20: there N' = N and D' = D). ``fit_frame(df, "data_constrained")``
fits all seven jointly.

Held that way, the objective is nearly flat in R*_D: on the paper's 182 C4 runs every
R*_D from about 8 up leaves it within 1 % of its minimum, while R*_N stays within a factor
of about 16 (``tests/test_reproduce_data_constrained.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.fit import FitResult, fit_frame
from analysis.laws.repeated import (
    OPTIMAL_TOKENS_PER_PARAM,
    optimal_unique_params,
    repetition_inputs,
)

__all__ = ["UNIQUE_PARAMS", "fit_two_stage", "single_epoch", "stage2_grid"]

_CHINCHILLA = ("E", "A", "B", "alpha", "beta")

#: How stage 2 sizes U_N: ``"ratio"``, U_D/20 (as the joint fit reads it); ``"optimal"``,
#: the held law's compute-optimal size for U_D (the paper's appendix A).
UNIQUE_PARAMS = ("ratio", "optimal")


def single_epoch(df: pd.DataFrame) -> pd.Series:
    """The rows that repeat nothing: ``tokens <= unique_tokens`` and ``params <=
    unique_tokens / 20``."""
    u = df["unique_tokens"].astype(float)
    return (df["tokens"] <= u) & (df["params"] <= u / OPTIMAL_TOKENS_PER_PARAM)


def stage2_grid() -> dict[str, np.ndarray]:
    """Stage 2's starts: R*_N and R*_D each at 13 values from 0.5 to 500, log-spaced.

    With the other five held the objective has several local minima in these two (the
    Huber loss at ``delta = 1e-3`` is nearly an absolute loss, whose surface has a kink
    wherever a residual crosses zero), and the data law's default three values per R*
    can stop in one of them: on the paper's C4 runs they end at R*_D = 47, 0.02 % above
    the minimum at R*_D = 95. 169 starts of two parameters cost nothing.
    """
    axis = np.log(np.geomspace(0.5, 500.0, 13))
    return {"log_R_N": axis, "log_R_D": axis.copy()}


def fit_two_stage(
    df: pd.DataFrame,
    *,
    chinchilla: Mapping[str, float] | None = None,
    unique_params: str = "ratio",
    **fit_kw: Any,
) -> tuple[FitResult | None, FitResult]:
    """Stage 1, Chinchilla's law on the single-epoch rows (skipped when ``chinchilla``
    gives its five parameters); stage 2, R*_N and R*_D on every row with those held.

    Parameters
    ----------
    df
        Columns ``params``, ``tokens``, ``unique_tokens`` and ``loss``.
    chinchilla
        ``E``, ``A``, ``B``, ``alpha``, ``beta`` fitted elsewhere, held in stage 2 as
        the paper holds its C4 fit. None: fitted in stage 1 on this table.
    unique_params
        How U_N is sized in stage 2 (:data:`UNIQUE_PARAMS`): ``"ratio"`` (default),
        U_D/20, the same inputs as the joint fit, so that the two compare on one
        objective; ``"optimal"``, the held law's compute-optimal size for U_D, as the
        paper defines it.
    **fit_kw
        Keywords for both fits (:func:`analysis.fit.fit_frame`). Stage 2 starts from
        :func:`stage2_grid` unless ``grid`` or ``init`` is given.

    Returns
    -------
    (stage1, stage2)
        ``stage1`` None when ``chinchilla`` is given. The stage-2 result's intervals are
        those of R*_N, R*_D alone (the others fixed).

    Raises
    ------
    ValueError
        When a column is missing, ``chinchilla`` lacks a parameter, ``unique_params`` is
        unknown, or too few single-epoch rows are left to fit stage 1.
    """
    missing = [c for c in ("params", "tokens", "unique_tokens", "loss") if c not in df.columns]
    if missing:
        raise ValueError(f"the data-constrained fit needs column(s) {', '.join(missing)}")
    if unique_params not in UNIQUE_PARAMS:
        raise ValueError(
            f"unique_params={unique_params!r}: expected one of {', '.join(UNIQUE_PARAMS)}"
        )
    stage1 = None
    if chinchilla is None:
        first = df.loc[single_epoch(df)]
        if len(first) < 10:
            raise ValueError(
                f"stage 1 of the data-constrained fit needs 10 single-epoch runs (tokens "
                f"<= unique_tokens, params <= unique_tokens/20), the table has {len(first)}"
            )
        stage1 = fit_frame(first, "chinchilla", **fit_kw)
        chinchilla = stage1.params
    lacking = [name for name in _CHINCHILLA if name not in chinchilla]
    if lacking:
        raise ValueError(f"chinchilla= lacks {', '.join(lacking)}")
    fix = {name: float(chinchilla[name]) for name in _CHINCHILLA}
    u = df["unique_tokens"].to_numpy(dtype=float)
    optimal = optimal_unique_params(u, fix) if unique_params == "optimal" else None
    _, _, rho_n, rho_d = repetition_inputs(
        df["params"].to_numpy(dtype=float), df["tokens"].to_numpy(dtype=float), u, optimal
    )
    # The ratios passed as columns of their own: fit_frame turns only three columns
    # (params, tokens, unique_tokens) into them, with U_N = U_D/20.
    inputs = df.assign(rho_N=rho_n, rho_D=rho_d)
    stage2_kw = dict(fit_kw)
    if "grid" not in stage2_kw and "init" not in stage2_kw:
        stage2_kw["grid"] = stage2_grid()
    stage2 = fit_frame(
        inputs, "data_constrained", x=["params", "tokens", "rho_N", "rho_D"], fix=fix,
        **stage2_kw,
    )  # fmt: skip
    return stage1, stage2
