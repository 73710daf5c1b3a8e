"""Figures against compute: loss vs compute with the extrapolated law, compute vs size.

The extrapolated law of the loss-vs-compute figure is a saturating power law
L(C) = E + A·C^(-alpha) fitted to the compute-optimal frontier (approach 1: the lower
envelope of all the learning curves), with its bootstrap band; without curves, the
Chinchilla fit along its compute-optimal allocation. Sweeps that cut several budgets
from one trajectory (warmup-stable-decay trunks) show the decayed end of each budget as
a marker, one shape per budget index, in the colour of its model size, so the points of
one trunk can be told apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.io import final_points
from analysis.plots.style import (
    LABELS,
    _figure,
    _log_loss_ticks,
    _marker_handle,
    _note,
    _params_label,
    _positive,
    _sci,
    _short_formula,
    _si,
    _size_cmap,
    _title,
)
from analysis.sweep_fits import SweepFits

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analysis.fit import FitResult


#: How far beyond the largest compute in the data the fitted law is drawn.
EXTRAPOLATE = 30.0


#: Above this many distinct sizes a colour bar replaces the legend entries.
MAX_LEGEND_SIZES = 10


#: Marker of the decayed end of each budget of a trunk, by ``budget_index`` (cycled).
BUDGET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")


def loss_vs_compute_figure(
    points: pd.DataFrame,
    fits: SweepFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Loss vs compute: a curve per size, the frontier, the extrapolated law and its band.

    One colour per model size. When the runs are budgets cut from trunks (some
    ``budget_index`` above 0), the final, decayed point of each is marked with one
    marker shape per budget index (:data:`BUDGET_MARKERS`), explained by a legend.

    Parameters
    ----------
    points
        Learning curves (long form, a ``step`` column) or final points of runs.
    fits
        From :func:`compute_fits`; uses ``frontier1`` and ``loss_vs_compute``.
    """
    # Log axes: the evaluation at step 0 (no compute yet) cannot be drawn.
    points = _positive(points, ["flops", "loss", "params"])
    if points.empty:
        raise ValueError("no points with positive compute, loss and size to draw")
    fig, ax = _figure()
    has_curves = "step" in points.columns and points.groupby("run").size().max() > 1
    sizes = np.sort(points["params"].dropna().unique())
    norm = LogNorm(vmin=sizes.min(), vmax=sizes.max()) if sizes.min() > 0 else Normalize()
    colours = _size_cmap()
    use_legend = has_curves and len(sizes) <= MAX_LEGEND_SIZES
    if has_curves:
        labelled: set[float] = set()
        for _run, curve in points.sort_values(["params", "run", "step"]).groupby("run", sort=False):
            size = float(curve["params"].iloc[0])
            label = None
            if use_legend and size not in labelled:
                label = f"N = {_si(size)}"
                labelled.add(size)
            ax.plot(
                curve["flops"],
                curve["loss"],
                color=colours(norm(size)),
                lw=1.4,
                alpha=0.85,
                label=label,
            )
    elif not _has_budgets(points):
        ax.scatter(
            points["flops"],
            points["loss"],
            c=points["params"],
            cmap=colours,
            norm=norm,
            s=14,
            alpha=0.8,
            lw=0,
        )
    side_handles, side_labels = ax.get_legend_handles_labels() if use_legend else ([], [])
    if _has_budgets(points):
        ends = final_points(points) if has_curves else points
        handles, labels = _budget_ends(ax, ends, colours, norm)
        if side_handles:  # a heading between the sizes and the markers
            handles.insert(0, Line2D([], [], alpha=0))
            labels.insert(0, "decayed end of budget")
        side_handles += handles
        side_labels += labels
    if not use_legend:
        cbar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=colours), ax=ax, pad=0.02)
        cbar.set_label(_params_label(convention))
    if side_handles:
        # Legends sit outside the axes: a busy sweep leaves no free corner inside.
        fig.legend(
            side_handles,
            side_labels,
            loc="outside right upper",
            fontsize=8,
            title="model size" if use_legend else "decayed end of budget",
            title_fontsize=8,
            frameon=False,
        )
    handles: list[Any] = []
    labels: list[str] = []

    if fits.frontier1 is not None:
        frontier = fits.frontier1.points
        ax.scatter(
            frontier["flops"],
            frontier["loss"],
            marker="o",
            s=26 if len(frontier) <= 25 else 12,  # a dense envelope would hide the curves
            facecolor="white",
            edgecolor="black",
            lw=1.2,
            zorder=5,
        )
        handles.append(_marker_handle("o", "white", "black"))
        labels.append("compute-optimal frontier (approach 1)")
    elif fits.loss_vs_compute_source == "runs" and fits.loss_vs_compute_points is not None:
        finals = fits.loss_vs_compute_points
        ax.scatter(
            finals["flops"],
            finals["loss"],
            marker="D",
            s=28,
            facecolor="white",
            edgecolor="black",
            lw=1.2,
            zorder=5,
        )
        handles.append(_marker_handle("D", "white", "black"))
        labels.append("final point of each size (fitted)")
    data_max = float(points["flops"].max())
    fitted = fits.loss_vs_compute_points
    start = float(fitted["flops"].min()) / 3 if fitted is not None else float(points["flops"].min())
    grid = np.geomspace(start, data_max * EXTRAPOLATE, 300)
    law = extrapolated_law(fits, grid)
    if law is not None:
        label, values, band = law
        ax.plot(grid, values, color="crimson", lw=2.0, zorder=4)
        handles.append(Line2D([], [], color="crimson", lw=2.0))
        labels.append(label)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color="crimson", alpha=0.18, lw=0, zorder=3)
            handles.append(matplotlib.patches.Patch(color="crimson", alpha=0.18))
            labels.append(band[2])
        # Everything right of this line is extrapolation.
        ax.axvline(data_max, color=".35", ls=":", lw=1.2, zorder=2)
        handles.append(Line2D([], [], color=".35", ls=":", lw=1.2))
        labels.append(f"largest run in the data (C = {_sci(data_max)})")
    else:
        note = fits.notes.get("loss_vs_compute") or fits.notes.get("frontier1") or "no fit"
        _note(fig, f"No law drawn: {note}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_loss_ticks(ax)
    ax.set_xlabel(LABELS["flops"])
    ax.set_ylabel(LABELS["loss"])
    heading = "Loss vs compute, the fitted law extrapolated"
    ax.set_title(_title(heading if law is not None else "Loss vs compute (no law fitted)", title))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def _has_budgets(points: pd.DataFrame) -> bool:
    """Whether the runs are several budgets of trunks (some budget index above 0)."""
    return "budget_index" in points.columns and bool((points["budget_index"] > 0).any())


def _budget_ends(
    ax: Axes,
    ends: pd.DataFrame,
    colours: matplotlib.colors.Colormap,
    norm: matplotlib.colors.Normalize,
) -> tuple[list[Any], list[str]]:
    """Mark each run's final point in its size's colour, one marker per budget index;
    return the legend entries of the markers (``budget 1`` .. ``budget k``)."""
    handles: list[Any] = []
    labels: list[str] = []
    indices = sorted(int(i) for i in ends["budget_index"].dropna().unique())
    for index in indices:
        rows = ends[ends["budget_index"] == index]
        marker = BUDGET_MARKERS[index % len(BUDGET_MARKERS)]
        ax.scatter(
            rows["flops"],
            rows["loss"],
            c=rows["params"],
            cmap=colours,
            norm=norm,
            marker=marker,
            s=30,
            edgecolor="black",
            lw=0.5,
            zorder=4,
            gid=f"budget {index}",
        )
        handles.append(_marker_handle(marker, ".6", "black"))
        labels.append(f"budget {index + 1}")
    if len(indices) > len(BUDGET_MARKERS):  # the shapes repeat: say so once
        labels[len(BUDGET_MARKERS)] += " (markers repeat)"
    return handles, labels


def extrapolated_law(
    fits: SweepFits, flops: np.ndarray
) -> tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray, str] | None] | None:
    """The loss law drawn against compute: ``(label, loss, band)`` on ``flops``, or None.

    The saturating L(C) fitted to the approach-1 frontier when there is one (learning
    curves); otherwise the Chinchilla L(N, D) evaluated along its compute-optimal
    allocation N_opt(C), D_opt = C/(6 N_opt) (approach 3). ``band`` is the pointwise
    bootstrap interval with its legend label, or None without bootstrap samples.
    """
    from analysis.optimal import optimal_params

    if fits.loss_vs_compute is not None:
        law = fits.loss_vs_compute
        fitted_to = (
            "the frontier"
            if fits.loss_vs_compute_source == "frontier"
            else "each size's final point"
        )
        label = f"L(C) fitted to {fitted_to}: {_short_formula(law, 'C')}"
        band = None
        if law.bootstrap is not None and len(law.bootstrap):
            lo, hi = law.predict_band(flops)
            band = (lo, hi, _band_label(law))
        return label, law.predict(flops), band
    if fits.chinchilla is None:
        return None
    fit = fits.chinchilla
    form = fit.law_form

    def optimal_loss(p: dict[str, float]) -> np.ndarray:
        n_opt = optimal_params(flops, p["A"], p["B"], p["alpha"], p["beta"])
        return form.predict(p, n_opt, flops / (6 * n_opt))

    label = "Chinchilla L(N, D) at its optimal N, D for each C (approach 3)"
    band = None
    if fit.bootstrap is not None and len(fit.bootstrap):
        # Each bootstrap sample has its own optimal allocation: evaluate each along its own.
        curves = np.array(
            [optimal_loss(dict(zip(form.param_names, row, strict=True))) for row in fit.bootstrap]
        )
        tail = 100 * (1 - fit.level) / 2
        lo, hi = np.nanpercentile(curves, [tail, 100 - tail], axis=0)
        band = (lo, hi, _band_label(fit))
    return label, optimal_loss(fit.params), band


def _band_label(fit: FitResult) -> str:
    """E.g. ``95 % bootstrap band (200 resamples of 12 trunks)``."""
    assert fit.bootstrap is not None
    what = f"{len(fit.bootstrap)} resamples"
    if fit.resampled is not None:
        what += f" of {fit.n_groups} {fit.resampled}"
    return f"{fit.level:.0%} bootstrap band ({what})"


def compute_vs_params_figure(
    runs: pd.DataFrame,
    fits: SweepFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Compute vs parameters in log-log, with the fitted C = a·N^k and k's interval.

    The fit says how the sweep chose its budgets (k = 2 for a fixed number of tokens
    per parameter), not how compute should grow with size: the runs are where the sweep
    put them, not a compute-optimal frontier. It is drawn only for a size ladder (one
    budget per size, see :func:`~analysis.sweep_fits.compute_fits`); the runs of
    other designs are shown without it.
    """
    fig, ax = _figure()
    hue = "family" if "family" in runs.columns and runs["family"].nunique() > 1 else None
    sns.scatterplot(
        data=runs,
        x="params",
        y="flops",
        hue=hue,
        ax=ax,
        s=40,
        color="C0",
        edgecolor="white",
        zorder=3,
        label=None if hue else f"runs (n = {len(runs)})",
    )
    law = fits.compute_vs_params
    if law is not None:
        lo, hi = float(runs["params"].min()), float(runs["params"].max())
        grid = np.geomspace(lo / 1.5, hi * 1.5, 100)
        k = law.params["k"]
        label = f"$C \\propto N^k$ at the sweep's budgets: k = {k:.3f}"
        if "k" in law.intervals:
            k_lo, k_hi = law.intervals["k"]
            label += f" [{k_lo:.3f}, {k_hi:.3f}] ({law.level:.0%} CI)"
        ax.plot(grid, law.predict(grid), color="crimson", lw=1.6, label=label, zorder=1)
        if law.bootstrap is not None and len(law.bootstrap):
            band_lo, band_hi = law.predict_band(grid)
            ax.fill_between(grid, band_lo, band_hi, color="crimson", alpha=0.15, lw=0)
    else:
        _note(fig, f"No fit of C = a·N^k: {fits.notes.get('compute_vs_params', 'no data')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel(LABELS["flops"])
    ax.set_title(_title("Training compute vs model size at the sweep's budgets", title))
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    return fig
