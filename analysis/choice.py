"""Which law a command fits when it is not told: the one the data can identify.

A sweep where every size is trained to one budget (tokens a function of N) can tell
only L(N): a two-variable law would be fitted to a line through the (N, D) plane. A
sweep where N and D vary independently (several budgets per size, an IsoFLOP grid, a
Chinchilla-style table) holds the effect of D at fixed N, and a one-variable L(N) fitted
to it mixes the two and extrapolates nonsense (Hoffmann et al. 2022, approach 3, fits
``L(N, D)`` for this reason). ``choose_law`` returns the law and a one-line reason that
every command prints, so a researcher sees what was fitted and why.

Sizes read from logs are rarely exact repeats (tokens rounded to whole steps, sizes
read off a figure), so values within ``tol`` decades count as one; and a table with no
repeated size still shows independence when D does not follow N monotonically (an
IsoFLOP grid: D falls with N within a budget and rises between budgets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LOSS_LAWS", "choose_law", "independent_sizes"]

#: The laws of the loss that ``choose_law`` picks between (and ``--law`` of plot/report).
LOSS_LAWS = ("saturating", "chinchilla")
#: Two sizes within this many decades are taken for one (rounding, whole steps).
TOL_DECADES = 0.02


def _clusters(log_values: np.ndarray, tol: float) -> np.ndarray:
    """Labels 0..K-1 of sorted runs of values with gaps of at most ``tol`` between them."""
    order = np.argsort(log_values, kind="stable")
    gaps = np.diff(log_values[order]) > tol
    labels = np.empty(len(log_values), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(gaps)])
    return labels


def _log10(df: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    values = df[[a, b]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)]
    return np.log10(values[:, 0]), np.log10(values[:, 1])


def independent_sizes(
    df: pd.DataFrame, a: str = "params", b: str = "tokens", tol: float = TOL_DECADES
) -> bool:
    """Whether columns ``a`` and ``b`` vary independently in ``df``.

    True when both take at least two values (more than ``tol`` decades apart) and ``b``
    is not a monotone function of ``a``: some value of ``a`` comes with several values
    of ``b`` (several budgets for one size), or ``b`` rises with ``a`` in one place and
    falls in another (an IsoFLOP-style grid, or a table of scattered runs). A size
    ladder (one budget per size, whatever the rule) and a fixed budget are not.
    Non-positive or missing values are ignored.
    """
    if a not in df.columns or b not in df.columns:
        return False
    log_a, log_b = _log10(df, a, b)
    if len(log_a) < 2 or np.ptp(log_a) <= tol or np.ptp(log_b) <= tol:
        return False
    sizes = _clusters(log_a, tol)
    spread = pd.Series(log_b).groupby(sizes).agg(lambda v: v.max() - v.min())
    if (spread > tol).any():
        return True
    steps = np.diff(pd.Series(log_b).groupby(sizes).median().to_numpy())
    return bool((steps > tol).any() and (steps < -tol).any())


def _counts(df: pd.DataFrame, a: str, b: str) -> tuple[int, int]:
    log_a, log_b = _log10(df, a, b)
    return len(np.unique(_clusters(log_a, TOL_DECADES))), len(
        np.unique(_clusters(log_b, TOL_DECADES))
    )


def _second_variable(df: pd.DataFrame) -> tuple[str, str]:
    """The column that varies with N (tokens D, else compute C) and its symbol."""
    if "tokens" in df.columns and df["tokens"].notna().any():
        return "tokens", "D"
    if "flops" in df.columns and df["flops"].notna().any():
        return "flops", "C"
    return "tokens", "D"


def choose_law(df: pd.DataFrame, asked: str | None = None) -> tuple[str, str]:
    """The law to fit to ``df`` and why, in one line.

    Parameters
    ----------
    df
        The runs (one row per run or budget), with ``params`` and, when known,
        ``tokens`` (or ``flops``, when tokens are missing).
    asked
        The law the user named (``--law``); returned as is, with a warning in the reason
        when the data cannot identify it.

    Returns
    -------
    law, reason
        ``"chinchilla"`` when N and D (or N and C) vary independently, else
        ``"saturating"`` (``L = E + A/N^alpha``, the one-variable law with an irreducible
        loss), and a sentence saying which and why, starting ``law: ``.
    """
    column, symbol = _second_variable(df)
    independent = independent_sizes(df, "params", column)
    if "params" in df.columns and column in df.columns:
        sizes, others = _counts(df, "params", column)
        design = f"{sizes} sizes and {others} {'token counts' if symbol == 'D' else 'budgets'}"
    else:
        design = "no sizes recorded"
    if asked is not None:
        reason = f"law: {asked} (asked with --law)"
        if asked == "chinchilla" and not independent:
            reason += (
                f"; N and {symbol} do not vary independently ({design}), so its N and D "
                "terms cannot be told apart"
            )
        return asked, reason
    if independent:
        return "chinchilla", (
            f"law: chinchilla L(N, D), because N and {symbol} vary independently "
            f"({design}); --law to choose another"
        )
    if column in df.columns and df[column].nunique() > 1:
        why = f"{symbol} follows N (one budget per size, {design})"
    else:
        why = f"every run has the same {symbol} (or none is recorded)"
    return "saturating", (
        f"law: saturating L(N) = E + A/N^alpha, because {why}, so the data can tell only "
        "L(N); --law to choose another"
    )
