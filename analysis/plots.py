"""Scaling figures: loss vs compute, compute vs parameters, IsoFLOP profiles, residuals.

Every figure is a :class:`matplotlib.figure.Figure` built without pyplot, so drawing
never touches a global backend or leaks figures in a long-lived process (PNG and SVG are
written by the Agg and SVG canvases directly). Seaborn supplies the theme and palettes.

:func:`compute_fits` does the fitting the figures need (and the report reuses);
:func:`plot_all` draws and saves every figure for a sweep.

The extrapolated law of the loss-vs-compute figure is a saturating power law
L(C) = E + A·C^(-alpha) fitted to the compute-optimal frontier (approach 1: the lower
envelope of all the learning curves), with its bootstrap band. Sweeps that cut several
budgets from one trajectory (warmup-stable-decay trunks) show the decayed end of each
budget as a marker, one shape per budget index, in the colour of its model size, so the
points of one trunk can be told apart.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.io import DataWarning, final_points, require

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analysis.fit import FitResult
    from analysis.optimal import Frontier

#: How far beyond the largest compute in the data the fitted law is drawn.
EXTRAPOLATE = 30.0
#: Above this many distinct sizes a colour bar replaces the legend entries.
MAX_LEGEND_SIZES = 10
#: Marker of the decayed end of each budget of a trunk, by ``budget_index`` (cycled).
BUDGET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")

LABELS = {
    "flops": "training compute C (FLOP)",
    "params": "parameters N ({convention})",
    "tokens": "training tokens D",
    "loss": "validation loss (nats/token)",
}
CONVENTION_NAMES = {
    "nonembed": "non-embedding",
    "matmul": "non-embedding + LM head",
    "total": "total",
}

_STYLE = {"axes.edgecolor": ".3", "grid.color": ".9"}


@dataclass
class SweepFits:
    """The fits and frontiers behind the figures; a failed one is ``None`` with a note.

    Attributes
    ----------
    frontier1
        Approach 1: lower envelope of the loss-vs-compute curves.
    loss_vs_compute
        Saturating L(C), the law drawn extrapolated: fitted to ``frontier1``'s points, or,
        without a frontier or a chinchilla fit, to the final point of each size.
    loss_vs_compute_points, loss_vs_compute_source
        The points it was fitted to, and ``"frontier"`` or ``"runs"``.
    compute_vs_params
        Power law C = a·N^k over the runs.
    loss_vs_params
        Saturating L(N) = E + A·N^(-alpha) over the best run of each size.
    frontier2
        Approach 2: parabolas per IsoFLOP group (only when runs share compute budgets).
    chinchilla
        L(N, D) = E + A/N^alpha + B/D^beta over the runs.
    frontier3
        Approach 3, from the chinchilla fit.
    notes
        Why a fit or a figure is missing, keyed like the attributes.
    """

    frontier1: Frontier | None = None
    loss_vs_compute: FitResult | None = None
    compute_vs_params: FitResult | None = None
    loss_vs_params: FitResult | None = None
    loss_vs_compute_points: pd.DataFrame | None = None
    loss_vs_compute_source: str = "frontier"
    frontier2: Frontier | None = None
    chinchilla: FitResult | None = None
    frontier3: Frontier | None = None
    notes: dict[str, str] = field(default_factory=dict)


def compute_fits(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    progress: Any = None,
) -> SweepFits:
    """Fit everything the figures show; a fit that cannot be made is noted, not raised.

    Parameters
    ----------
    runs
        One row per run (canonical columns).
    curves
        Long-form learning curves; without them the runs' final points stand in.
    bootstrap
        Resamples for the intervals and bands (0: none, and no band is drawn).
    seed
        Seed of the bootstrap.
    progress
        Optional callable taking a line of text, told when each fit starts.
    """
    from analysis.fit import fit_frame
    from analysis.optimal import approach1, approach2, approach3

    say = progress or (lambda _text: None)
    out = SweepFits()
    points = curves if curves is not None and len(curves) else runs

    def attempt(name: str, make: Any) -> Any:
        try:
            return make()
        except ValueError as err:  # DataError is a ValueError too
            out.notes[name] = str(err)
            return None

    if "run" in points.columns and points.groupby("run").size().max() > 1:
        say("approach 1: lower envelope of loss vs compute")
        out.frontier1 = attempt(
            "frontier1",
            lambda: approach1(require(points, ["flops", "params", "loss"], "approach 1")),
        )
    else:
        out.notes["frontier1"] = (
            "approach 1 needs learning curves (several evaluations per run); this data has "
            "one point per run"
        )
    if out.frontier1 is not None:
        say(f"saturating L(C) on the frontier (bootstrap {bootstrap})")
        envelope = out.frontier1.points
        # The envelope is read off the curves on a grid of budgets: its points belong to
        # no run or trunk that could be drawn as a whole (resampling the curves would mean
        # recomputing the envelope per resample), so its points are resampled as they are.
        out.loss_vs_compute = attempt(
            "loss_vs_compute",
            lambda: fit_frame(
                envelope, "saturating", x="flops", y="loss", bootstrap=bootstrap, seed=seed,
                groups=None,
            ),  # fmt: skip
        )
        out.loss_vs_compute_points = envelope
    say("power law C = a N^k")
    out.compute_vs_params = attempt(
        "compute_vs_params",
        lambda: fit_frame(
            require(runs, ["params", "flops"], "C vs N"), "power", x="params", y="flops", seed=seed
        ),
    )
    say(f"saturating L(N) (bootstrap {bootstrap})")
    out.loss_vs_params = attempt(
        "loss_vs_params",
        lambda: fit_frame(
            best_run_per_size(require(runs, ["params", "loss"], "L(N)")),
            "saturating",
            x="params",
            y="loss",
            bootstrap=bootstrap,
            seed=seed,
        ),
    )
    if isoflop_groups(runs) is None:
        out.notes["frontier2"] = (
            "no IsoFLOP profiles: approach 2 needs at least two compute budgets each "
            "trained at three or more model sizes"
        )
    else:
        say("approach 2: IsoFLOP parabolas")
        out.frontier2 = attempt("frontier2", lambda: approach2(runs))
    if _tokens_follow_params(runs):
        out.notes["chinchilla"] = (
            "not fitted: every run has the same tokens per parameter, so L(N, D) cannot tell "
            "the effect of N from that of D (vary the token budget per size to fit it)"
        )
    else:
        say(f"chinchilla L(N, D) (bootstrap {bootstrap})")
        out.chinchilla = attempt(
            "chinchilla",
            lambda: fit_frame(
                require(runs, ["params", "tokens", "loss"], "chinchilla"),
                "chinchilla",
                bootstrap=bootstrap,
                seed=seed,
            ),
        )
    if out.chinchilla is not None:
        out.frontier3 = attempt("frontier3", lambda: approach3(out.chinchilla))
    if out.loss_vs_compute is None and out.chinchilla is None:
        # Neither a frontier nor L(N, D): a size ladder's own final points stand in. Each
        # size trained on a budget rule (e.g. 20 tokens per parameter) ends near the
        # compute-optimal allocation, so its best final point approximates L_opt(C).
        say(f"saturating L(C) on the final point of each size (bootstrap {bootstrap})")
        finals = best_run_per_size(require(runs, ["flops", "loss", "params"], "L(C)"))
        out.loss_vs_compute = attempt(
            "loss_vs_compute",
            lambda: fit_frame(
                finals, "saturating", x="flops", y="loss", bootstrap=bootstrap, seed=seed
            ),
        )
        if out.loss_vs_compute is not None:
            out.loss_vs_compute_points = finals[["flops", "params", "loss"]]
            out.loss_vs_compute_source = "runs"
    return out


def best_run_per_size(runs: pd.DataFrame) -> pd.DataFrame:
    """The run with the lowest loss of each model size, in order of size.

    L(N) describes how far a size can go, so when a sweep trains a size several times
    (several budgets, several seeds) its best run stands for it; a plain size ladder is
    returned as it is (sorted).
    """
    best = runs.loc[runs.groupby("params", sort=True)["loss"].idxmin()]
    return best.reset_index(drop=True)


def _tokens_follow_params(runs: pd.DataFrame, tol: float = 0.05) -> bool:
    """True when tokens/params is the same for every run (within ``tol`` decades)."""
    if not {"params", "tokens"} <= set(runs.columns):
        return False
    ratio = np.log10(runs["tokens"] / runs["params"]).dropna()
    return len(ratio) > 1 and float(ratio.max() - ratio.min()) < tol


# --------------------------------------------------------------------------------------
# Figures


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
    """Compute vs parameters in log-log, with the fitted C = a·N^k and k's interval."""
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
        label = f"fit $C \\propto N^k$: k = {k:.3f}"
        if "k" in law.intervals:
            k_lo, k_hi = law.intervals["k"]
            label += f" [{k_lo:.3f}, {k_hi:.3f}] ({law.level:.0%} CI)"
        ax.plot(grid, law.predict(grid), color="crimson", lw=1.6, label=label, zorder=1)
        if law.bootstrap is not None and len(law.bootstrap):
            band_lo, band_hi = law.predict_band(grid)
            ax.fill_between(grid, band_lo, band_hi, color="crimson", alpha=0.15, lw=0)
    else:
        _note(fig, f"No fit: {fits.notes.get('compute_vs_params', 'no data')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel(LABELS["flops"])
    ax.set_title(_title("Training compute vs model size", title))
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    return fig


def isoflop_figure(
    runs: pd.DataFrame,
    fits: SweepFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure | None:
    """IsoFLOP profiles (approach 2) and the frontier exponents of every approach.

    Left: loss vs N for each compute budget with approach 2's parabola in log N and its
    minimum. Right: those minima against C with the fitted N_opt ∝ C^a, and the lines of
    approaches 1 and 3 where they were computed, for comparison.

    Returns None when approach 2 has no result (see :func:`isoflop_groups`).
    """
    groups = isoflop_groups(runs)
    frontier = fits.frontier2
    if groups is None or frontier is None:
        return None
    fig, (ax, ax_opt) = _figure(ncols=2, width=12.5)
    budgets = groups.groupby("group")["budget"].first()
    norm = LogNorm(vmin=budgets.min(), vmax=budgets.max())
    cmap = sns.color_palette("flare", as_cmap=True)
    use_legend = len(budgets) <= 8
    optima = frontier.points.set_index("group") if "group" in frontier.points else None
    for label, group in groups.groupby("group"):
        colour = cmap(norm(budgets[label]))
        text = f"C = {_sci(budgets[label])} FLOP" if use_legend else None
        ax.scatter(group["params"], group["loss"], color=colour, s=22, zorder=3, label=text)
        if optima is None or label not in optima.index:
            continue  # approach 2 left this group out (no minimum inside the sizes tried)
        row = optima.loc[label]
        log_n = np.log(group["params"].to_numpy(float))
        grid = np.linspace(log_n.min() - 0.3, log_n.max() + 0.3, 200)
        # The parabola approach 2 fitted: loss_opt + curvature * (ln N - ln N_opt)^2.
        curve = row["loss_opt"] + row["curvature"] * (grid - np.log(row["params_opt"])) ** 2
        ax.plot(np.exp(grid), curve, color=colour, lw=1.3, zorder=2)
        ax.scatter(
            [row["params_opt"]],
            [row["loss_opt"]],
            marker="*",
            s=130,
            color=colour,
            edgecolor="black",
            lw=0.6,
            zorder=4,
        )
    ax.set_xscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel(LABELS["loss"])
    ax.set_title("IsoFLOP profiles (★ = parabola minimum)")
    # Frame the runs, not the parabolas, whose arms climb steeply outside the data.
    low, high = groups["loss"].min(), groups["loss"].max()
    ax.set_ylim(low - 0.05 * (high - low), high + 0.08 * (high - low))
    if use_legend:
        ax.legend(fontsize=8, framealpha=0.9, loc="upper right")
    else:
        cbar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01)
        cbar.set_label("compute budget C (FLOP)")

    pts = frontier.points
    ax_opt.scatter(
        pts["flops"],
        pts["params_opt"],
        marker="*",
        s=110,
        color="black",
        zorder=3,
        label="IsoFLOP minima",
    )
    c_grid = np.geomspace(pts["flops"].min() / 3, pts["flops"].max() * 3, 50)
    styles = {1: ("tab:blue", "--"), 2: ("crimson", "-"), 3: ("tab:green", "-.")}
    for approach in (fits.frontier1, frontier, fits.frontier3):
        if approach is None or approach.coef is None:
            continue
        colour, style = styles[approach.approach]
        label = f"approach {approach.approach}: a = {approach.a:.3f}"
        if approach.interval is not None:
            label += f" [{approach.interval[0]:.3f}, {approach.interval[1]:.3f}]"
        ax_opt.plot(
            c_grid, approach.params_opt(c_grid), color=colour, ls=style, lw=1.6, label=label
        )
    ax_opt.set_xscale("log")
    ax_opt.set_yscale("log")
    ax_opt.set_xlabel(LABELS["flops"])
    ax_opt.set_ylabel(_params_label(convention).replace("parameters N", "compute-optimal N"))
    ax_opt.set_title("$N_{opt} \\propto C^a$ by approach")
    ax_opt.legend(fontsize=9, framealpha=0.9, loc="upper left")
    fig.suptitle(_title("IsoFLOP profiles and the compute-optimal frontier", title))
    return fig


def residuals_figure(
    runs: pd.DataFrame,
    fit: FitResult,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Log residuals log(L) - log(L_fit) of a fit against N and against C.

    ``runs`` must be the rows the fit was made on, in the same order.
    """
    if len(fit.residuals) != len(runs):
        raise ValueError(f"{len(fit.residuals)} residuals for {len(runs)} runs")
    fig, axes = _figure(ncols=2, width=11.0, sharey=True)
    spread = float(np.std(fit.residuals))
    for ax, column in zip(axes, ("params", "flops"), strict=True):
        ax.axhline(0.0, color=".3", lw=1.0)
        ax.axhspan(-spread, spread, color="C0", alpha=0.08, lw=0)
        sns.scatterplot(
            x=runs[column].to_numpy(), y=fit.residuals, ax=ax, s=26, color="C0", edgecolor="white"
        )
        ax.set_xscale("log")
        ax.set_xlabel(_params_label(convention) if column == "params" else LABELS["flops"])
    axes[0].set_ylabel("log residual  log L − log L_fit")
    name = "Chinchilla L(N, D)" if fit.law == "chinchilla" else "saturating L(N)"
    fig.suptitle(
        _title(
            f"Log residuals of the {name} fit (n = {fit.n}, s.d. {spread:.2g}; shaded ±1 s.d.)",
            title,
        )
    )
    return fig


# --------------------------------------------------------------------------------------
# Everything at once


def plot_all(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    out_dir: str | Path,
    formats: Sequence[str] = ("png", "svg"),
    *,
    bootstrap: int = 200,
    seed: int = 0,
    convention: str | None = "nonembed",
    title: str | None = None,
    fits: SweepFits | None = None,
    progress: Any = None,
) -> list[Path]:
    """Draw every figure for a sweep (or an imported table) and save it in each format.

    Parameters
    ----------
    runs
        One row per run (canonical columns).
    curves
        Long-form learning curves, or None (the runs' final points stand in).
    out_dir
        Created if needed; files are named ``loss_vs_compute.png`` and so on.
    formats
        File formats understood by matplotlib, e.g. ``("png", "svg")``.
    bootstrap, seed
        For the fits' bands and intervals (ignored when ``fits`` is given).
    convention
        The parameter convention of ``params`` (``nonembed``, ``matmul``, ``total``), for
        axis labels; None for imported data.
    title
        Prefix for every figure title (e.g. the sweep's name).
    fits
        Precomputed :func:`compute_fits` output, to avoid fitting twice.

    Returns
    -------
    list of Path
        The files written. A figure that cannot be drawn (no IsoFLOP groups, a fit that
        failed) is skipped with a :class:`~analysis.io.DataWarning` saying why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fits is None:
        fits = compute_fits(runs, curves, bootstrap=bootstrap, seed=seed, progress=progress)
    points = curves if curves is not None and len(curves) else runs
    figures: dict[str, Figure | None] = {}
    with _style():
        figures["loss_vs_compute"] = loss_vs_compute_figure(
            points, fits, convention=convention, title=title
        )
        figures["compute_vs_params"] = compute_vs_params_figure(
            runs, fits, convention=convention, title=title
        )
        figures["isoflop"] = isoflop_figure(runs, fits, convention=convention, title=title)
        # Residuals of the chinchilla fit, or of L(N) when chinchilla could not be fitted.
        if fits.chinchilla is not None:
            used = require(runs, ["params", "tokens", "loss"], "chinchilla")
            figures["residuals"] = residuals_figure(
                used, fits.chinchilla, convention=convention, title=title
            )
        elif fits.loss_vs_params is not None:
            used = best_run_per_size(require(runs, ["params", "loss"], "L(N)"))
            figures["residuals"] = residuals_figure(
                used, fits.loss_vs_params, convention=convention, title=title
            )
        else:
            figures["residuals"] = None
    written = []
    for name, figure in figures.items():
        if figure is None:
            reason = _skip_reason(name, fits)
            warnings.warn(f"figure {name!r} skipped: {reason}", DataWarning, stacklevel=2)
            continue
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            save_figure(figure, path)
            written.append(path)
    return written


def _skip_reason(name: str, fits: SweepFits) -> str:
    if name == "isoflop":
        return fits.notes.get("frontier2", "")
    return fits.notes.get("loss_vs_params") or fits.notes.get("chinchilla", "")


def save_figure(figure: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save a figure (format from the suffix) through a temporary file, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    tmp.replace(path)
    return path


def isoflop_groups(
    runs: pd.DataFrame, group_tol: float = 0.1, min_sizes: int = 3
) -> pd.DataFrame | None:
    """The runs of each IsoFLOP slice, grouped as approach 2 groups them.

    Returns the usable runs (positive params, flops, loss) of the slices with at least
    ``min_sizes`` distinct model sizes, with ``group`` and ``budget`` (its compute C)
    columns, or None when fewer than two such slices exist (then approach 2 has nothing
    to fit). Runs that carry a ``flops_target`` are grouped by it.
    """
    # The same grouping as analysis.optimal.approach2, so the dots drawn are the runs
    # behind its parabolas.
    from analysis.optimal import isoflop_labels

    if not {"flops", "params", "loss"} <= set(runs.columns):
        return None
    values = runs[["flops", "params", "loss"]].to_numpy(dtype=float)
    data = runs[np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)]
    if data.empty:
        return None
    data, labels, budgets, _ = isoflop_labels(data, group_tol=group_tol)
    data = data.assign(group=labels, budget=budgets)
    sizes = data.groupby("group")["params"].nunique()
    data = data[data["group"].isin(sizes[sizes >= min_sizes].index)]
    if data["group"].nunique() < 2:
        return None
    return data.sort_values(["group", "params"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Helpers


def _figure(
    ncols: int = 1, width: float = 7.5, height: float = 5.0, **kw: Any
) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, **kw)
    return fig, axes


class _style:
    """Seaborn's whitegrid theme, applied only while our figures are built."""

    def __enter__(self) -> None:
        self._rc = matplotlib.rc_context(
            {**sns.axes_style("whitegrid", rc=_STYLE), **sns.plotting_context("notebook")}
        )
        self._rc.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._rc.__exit__(*exc)


def _size_cmap() -> matplotlib.colors.Colormap:
    # Light green (small models) to dark blue (large), without the palest end so the
    # smallest model stays visible on white, and without the darkest, near black.
    base = sns.color_palette("crest", as_cmap=True)
    return matplotlib.colors.ListedColormap(base(np.linspace(0.1, 1.0, 256)))


def _positive(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows whose ``columns`` are all finite and > 0 (what a log axis can show)."""
    values = df[columns].to_numpy(dtype=float)
    return df[np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)]


def _params_label(convention: str | None) -> str:
    """Axis label of N; ``convention`` None for imported data, counted as its source did."""
    if convention is None:
        return "parameters N"
    return LABELS["params"].format(convention=CONVENTION_NAMES.get(convention, convention))


def _marker_handle(marker: str, face: str, edge: str) -> Line2D:
    return Line2D(
        [], [], ls="", marker=marker, markerfacecolor=face, markeredgecolor=edge, markersize=6
    )


def _short_formula(law: FitResult, variable: str) -> str:
    """Saturating law as mathtext with the exponent's interval: L = E + A·C^-α."""
    p = law.params
    text = f"$L = {p['E']:.3g} + {_tex_number(p['A'])}\\,{variable}^{{-{p['alpha']:.3f}}}$"
    if "alpha" in law.intervals:
        lo, hi = law.intervals["alpha"]
        text += f", $\\alpha \\in [{lo:.3f}, {hi:.3f}]$"
    return text


def _tex_number(value: float) -> str:
    """A coefficient for mathtext: 3.3 or 3.3\\times10^{3}."""
    if 1e-2 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return _sci(value).strip("$")


def _log_loss_ticks(ax: Axes) -> None:
    """Plain-number ticks on a log loss axis (a loss axis spans less than a decade)."""
    formatter = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(formatter)
    ax.yaxis.set_minor_locator(
        matplotlib.ticker.LogLocator(subs=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0))
    )
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))


def _si(value: float) -> str:
    """12_300_000 -> '12.3M'."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _sci(value: float) -> str:
    """3e14 -> '$3.0\\times10^{14}$' (mathtext)."""
    exponent = math.floor(math.log10(value))
    mantissa = value / 10**exponent
    if round(mantissa, 1) == 1.0:
        return f"$10^{{{exponent}}}$"
    return f"${mantissa:.1f}\\times10^{{{exponent}}}$"


def _title(text: str, prefix: str | None) -> str:
    return f"{prefix}: {text}" if prefix else text


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _note(fig: Figure, text: str) -> None:
    """A line of explanation under the axes (as a legend, so the layout makes room)."""
    fig.legend(
        [Line2D([], [], alpha=0)],
        [_wrap(text, 100)],
        loc="outside lower center",
        frameon=False,
        handlelength=0,
        fontsize=8,
        labelcolor=".3",
    )
