"""Which law a command fits when it is not told: the one the data can identify.

A sweep where every size is trained to one budget (tokens a function of N) can tell
only L(N): a two-variable law would be fitted to a line through the (N, D) plane. A
sweep where N and D vary independently (several budgets per size, an IsoFLOP grid, a
Chinchilla-style table) holds the effect of D at fixed N, and a one-variable L(N) fitted
to it mixes the two and extrapolates nonsense (Hoffmann et al. 2022, approach 3, fits
``L(N, D)`` for this reason). ``choose_law`` returns the law and a one-line reason that
every command prints, so a researcher sees what was fitted and why.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["choose_law", "independent_sizes"]


def independent_sizes(df: pd.DataFrame, a: str = "params", b: str = "tokens") -> bool:
    """Whether columns ``a`` and ``b`` vary independently in ``df``.

    True when both take at least two values and ``b`` is not a function of ``a``: some
    value of ``a`` comes with several values of ``b`` (several budgets for one size), or
    the ratio ``b / a`` takes several values at one ``b`` (an IsoFLOP-style grid seen
    from the other side).
    """
    if a not in df.columns or b not in df.columns:
        return False
    data = df[[a, b]].dropna()
    if data[a].nunique() < 2 or data[b].nunique() < 2:
        return False
    return bool((data.groupby(a)[b].nunique() > 1).any() or (data.groupby(b)[a].nunique() > 1).any())


def _design(df: pd.DataFrame) -> str:
    sizes, budgets = df["params"].nunique(), df["tokens"].nunique()
    return f"{sizes} sizes and {budgets} token counts"


def choose_law(df: pd.DataFrame, asked: str | None = None) -> tuple[str, str]:
    """The law to fit to ``df`` and why, in one line.

    Parameters
    ----------
    df
        The runs (one row per run or budget), with ``params`` and, when known,
        ``tokens``.
    asked
        The law the user named (``--law``); returned as is.

    Returns
    -------
    law, reason
        ``"chinchilla"`` when N and D vary independently, else ``"saturating"``
        (``L = E + A/N^alpha``, the one-variable law with an irreducible loss), and a
        sentence saying which and why.
    """
    if asked is not None:
        return asked, f"law: {asked} (asked with --law)"
    if independent_sizes(df):
        return "chinchilla", (
            f"law: chinchilla L(N, D), because N and D vary independently "
            f"({_design(df)}); --law to choose another"
        )
    if "tokens" in df.columns and df["tokens"].nunique() > 1:
        why = "D follows N (one budget per size), so the data can tell only L(N)"
    else:
        why = "every run has the same D (or none is recorded), so the data can tell only L(N)"
    return "saturating", f"law: saturating L(N) = E + A/N^alpha, because {why}; --law to choose another"
