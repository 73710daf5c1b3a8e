"""Log residuals of the fitted law against N, D and C."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.plots.style import LABELS, _figure, _params_label, _title

if TYPE_CHECKING:
    from analysis.fit import FitResult


def residuals_figure(
    runs: pd.DataFrame,
    fit: FitResult,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Log residuals log(L) - log(L_fit) of a fit against N, against D and against C.

    ``runs`` must be the rows the fit was made on, in the same order. A panel whose
    column is missing (or has no positive value, which a log axis cannot show) is left
    out. Against D a trend shows what a one-variable L(N) leaves unexplained, or a
    data term a two-variable law bends the wrong way.
    """
    if len(fit.residuals) != len(runs):
        raise ValueError(f"{len(fit.residuals)} residuals for {len(runs)} runs")
    columns = [
        c
        for c in ("params", "tokens", "flops")
        if c in runs.columns and (pd.to_numeric(runs[c], errors="coerce") > 0).any()
    ]
    if not columns:
        raise ValueError("no params, tokens or flops to draw the residuals against")
    fig, axes = _figure(ncols=len(columns), width=5.0 * len(columns) + 1.0, sharey=True)
    axes = np.atleast_1d(axes)
    spread = float(np.std(fit.residuals))
    xlabels = {
        "params": _params_label(convention),
        "tokens": LABELS["tokens"],
        "flops": LABELS["flops"],
    }
    for ax, column in zip(axes, columns, strict=True):
        ax.axhline(0.0, color=".3", lw=1.0)
        ax.axhspan(-spread, spread, color="C0", alpha=0.08, lw=0)
        sns.scatterplot(
            x=runs[column].to_numpy(dtype=float), y=fit.residuals, ax=ax, s=26, color="C0",
            edgecolor="white",
        )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(xlabels[column])
    axes[0].set_ylabel("log residual  log L − log L_fit")
    name = "Chinchilla L(N, D)" if fit.law == "chinchilla" else "saturating L(N)"
    fig.suptitle(
        _title(
            f"Log residuals of the {name} fit (n = {fit.n}, s.d. {spread:.2g}; shaded ±1 s.d.)",
            title,
        )
    )
    return fig
