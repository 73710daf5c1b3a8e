"""IsoFLOP profiles (approach 2) and the frontier exponents of every approach."""

from __future__ import annotations

import matplotlib
import matplotlib.cm
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from analysis.plots.style import LABELS, _figure, _params_label, _sci, _title
from analysis.sweep_fits import SweepFits


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
    from analysis.isoflop import isoflop_labels

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
