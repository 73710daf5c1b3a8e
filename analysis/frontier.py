"""The result every approach to the compute-optimal frontier returns: :class:`Frontier`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.allocation import plain as _plain

__all__ = ["Frontier", "require_columns", "usable_rows"]


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
        IsoFLOP group (``flops, params_opt, tokens_opt, loss_opt, curvature, n_runs,
        n_fitted, log_params_opt_sd``, the parabola being ``loss = loss_opt + curvature *
        (ln N - ln params_opt)^2`` fitted to ``n_fitted`` runs, ``log_params_opt_sd`` the
        bootstrap s.d. of ``ln N_opt``, NaN by the Hoffmann method);
        approach 3: a grid of budgets (``flops, params_opt, tokens_opt, loss_opt``).
    b
        Exponent of ``D_opt ∝ C^b`` (``1 - a`` under ``C = 6ND``).
    coef
        ``N_opt = coef * C^a``.
    level
        Confidence level of ``interval``.
    envelope
        Approach 1: which points the curves were drawn through, ``"final"`` (the
        decayed end of each record) or ``"all"`` (every evaluation).
    grouping
        Approach 2: how runs were grouped into IsoFLOP profiles: ``"flops_target"`` (the
        compute each run was asked for), ``"flops_tolerance"`` (achieved compute within
        a factor ``1 + group_tol``) or the name of the ``group_col`` used.
    method
        Approach 2: how each profile's optimum was read, ``"porian"`` (a parabola
        near the minimum, weighted regression) or ``"hoffmann"`` (a parabola over every
        size, unweighted); see :func:`analysis.isoflop.approach2`.
    law
        Approach 3: the law whose closed-form optimum the frontier is, ``"chinchilla"``
        or ``"kaplan"``.
    resampled, n_groups
        Approach 3: what the bootstrap behind ``interval`` drew (``"trunks"``,
        ``"runs"``, ``"points"``) and how many there were (see
        :attr:`analysis.fit.FitResult.resampled`).
    identified, identification
        Whether the data pin ``a`` down, and if not, why. Approach 3: those of the fit
        it comes from (see :attr:`analysis.result.FitResult.identified`). Every
        approach: False when ``interval`` reaches 0 or 1, past the exponents a frontier
        can have (on it N_opt and D_opt both grow with compute, so 0 < a < 1).
    """

    approach: int
    a: float
    interval: tuple[float, float] | None
    points: pd.DataFrame
    b: float | None = None
    coef: float | None = None
    level: float = 0.95
    envelope: str | None = None
    grouping: str | None = None
    method: str | None = None
    law: str | None = None
    resampled: str | None = None
    n_groups: int | None = None
    identified: bool = True
    identification: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.interval is None:
            return
        lo, hi = self.interval
        if not (lo > 0 and hi < 1):  # NaN bounds included: nothing was pinned down
            self.identified = False
            self.identification = [
                *self.identification,
                f"the {self.level:.0%} interval of a, [{lo:.3g}, {hi:.3g}], reaches past "
                "(0, 1), where N_opt and D_opt both grow with compute",
            ]

    def params_opt(self, flops: float | np.ndarray) -> np.ndarray:
        """``N_opt`` at the given budgets, on this frontier."""
        if self.coef is None:
            raise ValueError("this frontier has no coefficient")
        return self.coef * np.asarray(flops, dtype=float) ** self.a

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"approach", "a", "interval", "b", "coef", "envelope", "grouping",
        "method", "law", "resampled", "n_groups", "identified", "identification", "points": [records]}``
        (None where not applicable)."""
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
            "envelope": self.envelope,
            "grouping": self.grouping,
            "method": self.method,
            "law": self.law,
            "resampled": self.resampled,
            "n_groups": None if self.n_groups is None else int(self.n_groups),
            "identified": bool(self.identified),
            "identification": list(self.identification),
            "points": records,
        }


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the columns ``what`` needs that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} needs column(s) {', '.join(map(repr, missing))}; "
            f"the table has {', '.join(map(str, df.columns))}"
        )


def usable_rows(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose ``columns`` are all finite and positive (e.g. drops step 0, flops 0)."""
    values = df[list(columns)].to_numpy(dtype=float)
    keep = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
    return df.loc[keep]
