"""Which rows a bootstrap draws together, and the resample counts that draws them.

Points that share their errors must be resampled together, or the bootstrap takes them
for independent evidence and its intervals come out too narrow: the token budgets cut
from one training trajectory (a *trunk*: a warmup-stable-decay run decayed at several
budgets) share its noise, and the evaluations along one learning curve share theirs.
:func:`bootstrap_groups` finds the groups in a table (trunks, else runs, else rows);
:func:`resample_counts` draws whole groups with replacement and spreads each group's
count onto its points, which the fitters use as weights, so a grouped resample costs
what a resample of points does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is only needed by bootstrap_groups's callers
    import pandas as pd

__all__ = ["KINDS", "bootstrap_groups", "describe", "group_labels", "kind_text", "resample_counts"]


# What each way of resampling keeps together, for describe().
_WHY = {
    "trunks": "the budgets of one trunk drawn together",
    "runs": "the points of one run drawn together",
}
#: The kinds of group :func:`bootstrap_groups` finds (and ``groups``: labels given as such).
KINDS = ("points", "runs", "trunks", "groups")


def kind_text(kind: str | None) -> str:
    """``trunks`` as it is; a column's name as ``groups of 'name'``."""
    return str(kind) if kind in KINDS else f"groups of {kind!r}"


def group_labels(groups: Any, n: int) -> np.ndarray | None:
    """Labels 0..G-1 (in order of first appearance) for the given group of each point."""
    if groups is None:
        return None
    values = list(groups)
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} labels but there are {n} points")
    codes: dict[Any, int] = {}
    return np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.intp)


def resample_counts(n: int, n_boot: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) counts of each point in resamples drawn with replacement.

    With ``groups`` (labels 0..G-1, one per point) G groups are drawn per resample and
    every point counts as often as its group was drawn. With every point its own group
    the draws, and so the counts, are those of plain point resampling.
    """
    n_groups = n if groups is None else int(groups.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    # Counts of each group per resample: one bincount over (resample, group) pairs.
    flat = (np.arange(n_boot)[:, None] * n_groups + draws).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    counts = counts.astype(float)
    return counts if groups is None else counts[:, groups]


def bootstrap_groups(df: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """How the bootstrap should resample the rows of ``df``: group labels and their kind.

    Rows that share their errors are drawn together: the rows of one *trunk* (the
    budget records cut from one training trajectory, which share its noise) when the
    table has a ``trunk`` column, else the rows of one run (the evaluations along a
    learning curve) when it has a ``run`` column, else each row alone. A row whose trunk
    is unknown (NaN) falls back to its run, and one with neither stands alone. When all
    rows are one trunk (or one run), there is nothing to draw between, and the next
    level down is resampled instead: the trunk's runs (or the run's points).

    Returns
    -------
    labels, kind
        ``labels``: one integer per row, or None when every row is its own group;
        ``kind``: ``"trunks"`` when some trunk holds several runs, ``"runs"`` when some
        run has several rows, else ``"points"``.
    """
    import pandas as pd

    n = len(df)
    rows = pd.Series([f"\0row {i}" for i in range(n)], index=df.index, dtype=object)
    run = df["run"].astype(object).where(df["run"].notna(), rows) if "run" in df else rows
    levels = [(run, "runs")]
    if "trunk" in df.columns:
        levels.insert(0, (df["trunk"].astype(object).where(df["trunk"].notna(), run), "trunks"))
    for key, kind in levels:
        labels, uniques = pd.factorize(key, sort=False)
        if len(uniques) == n:
            return None, "points"
        if len(uniques) < 2:
            continue
        if kind == "trunks" and pd.Series(run.to_numpy()).groupby(labels).nunique().max() < 2:
            continue  # every trunk is a single run: name the groups for what they are
        return labels.astype(np.intp), kind
    return None, "points"


def describe(n_boot: int, kind: str | None, n_groups: int | None) -> str:
    """E.g. ``"200 resamples of 12 trunks (the budgets of one trunk drawn together)"``."""
    text = f"{n_boot} resamples of {n_groups} {kind_text(kind)}"
    why = _WHY.get(str(kind))
    return f"{text} ({why})" if why else text
