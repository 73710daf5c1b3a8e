"""The downstream and compression figures: task error against size and against
pretraining loss, the loss a compression adds against size, and loss against bytes
(the compression laws' figures are in :mod:`analysis.plots.compression`).

They read the records of :mod:`analysis.io.downstream` and the fits of
:mod:`analysis.downstream`, and share the theme and labels of every other figure
(:mod:`analysis.plots.style`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.downstream import (
    DownstreamFits,
    best_compressed_per_size,
    best_per_size,
    compute_downstream_fits,
    per_source,
)
from analysis.io.downstream import downstream_dirs, load_compress, load_finetune
from analysis.plots.style import _figure, _params_label, _style, save_figure

__all__ = [
    "compression_figure",
    "compression_size_figure",
    "error_vs_loss_figure",
    "error_vs_params_figure",
    "plot_downstream",
]


def _title(text: str, prefix: str | None) -> str:
    return f"{prefix}: {text}" if prefix else text


def _baseline_lines(ax: Any, fits: DownstreamFits) -> None:
    """The task's baselines as horizontal lines of error (1 - their test accuracy)."""
    styles = {"majority": ("majority class", "-."), "bag_of_tokens": ("bag of tokens", "--")}
    for name, accuracy in fits.baselines.items():
        label, ls = styles[name]
        error = 1.0 - accuracy
        ax.axhline(error, color="C2", ls=ls, lw=1, label=f"{label} baseline ({error:.3f})")


def error_vs_params_figure(
    finetune: pd.DataFrame,
    fits: DownstreamFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Test error vs parameters: every run, the best-trained model per size, fits, chance."""
    fig, ax = _figure()
    points = fits.per_source if fits.per_source is not None else per_source(finetune)
    sizes = best_per_size(points)
    ax.scatter(finetune["params"], finetune["test_error"], s=14, color=".6", label="every run")
    ax.scatter(
        sizes["params"],
        sizes["test_error"],
        s=40,
        color="C0",
        zorder=3,
        label="best-trained model per size (mean over seeds)",
    )
    spread = sizes[sizes["seeds"] > 1]
    if len(spread):  # the seed-to-seed spread of the mean's model: +- one s.d.
        ax.errorbar(
            spread["params"],
            spread["test_error"],
            yerr=spread["accuracy_sd"],
            fmt="none",
            ecolor="C0",
            elinewidth=1,
            capsize=3,
            zorder=3,
            label="± 1 s.d. over seeds",
        )
    grid = np.geomspace(points["params"].min() / 1.5, points["params"].max() * 3, 200)
    if fits.error_vs_params is not None:
        f = fits.error_vs_params
        ax.plot(grid, f.predict(grid), color="C0", label=f.formula().replace("test_error", "Err"))
        if f.bootstrap is not None and len(f.bootstrap):
            lo, hi = f.predict_band(grid)
            ax.fill_between(
                grid, np.clip(lo, 0, 1), np.clip(hi, 0, 1), color="C0", alpha=0.15, lw=0
            )
    if fits.loss_vs_params is not None and fits.error_vs_loss is not None:
        ax.plot(grid, fits.two_step(grid), color="C3", ls="--", label="two-step: Err(L(N))")
    chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
    ax.axhline(chance_error, color=".4", ls=":", lw=1, label=f"chance ({chance_error:.3f})")
    _baseline_lines(ax, fits)
    ax.set_xscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel("test error (1 - accuracy)")
    task = finetune["task"].iloc[0]
    ax.set_title(_title(f"fine-tuned on {task}: error vs size", title))
    ax.legend(fontsize=8)
    return fig


def error_vs_loss_figure(
    finetune: pd.DataFrame, fits: DownstreamFits, *, title: str | None = None
) -> Figure:
    """Test error vs pretraining loss with the fitted ``Err(L)`` and its band."""
    fig, ax = _figure()
    points = fits.per_source if fits.per_source is not None else per_source(finetune)
    sc = ax.scatter(
        finetune["pretrain_loss"],
        finetune["test_error"],
        c=np.log10(finetune["params"].astype(float)),
        cmap="crest",
        s=30,
        zorder=3,
    )
    fig.colorbar(sc, ax=ax, pad=0.02).set_label("log10 N")
    lo_l, hi_l = points["pretrain_loss"].min(), points["pretrain_loss"].max()
    pad = 0.15 * (hi_l - lo_l or 1.0)
    grid = np.linspace(lo_l - pad, hi_l + pad, 200)
    m = fits.error_vs_loss
    if m is not None:
        ax.plot(grid, m.predict(grid), color="C3", label=m.formula())
        if m.bootstrap is not None and len(m.bootstrap):
            lo, hi = m.predict_band(grid)
            ax.fill_between(
                grid,
                np.clip(lo, 0, 1),
                np.clip(hi, 0, 1),
                color="C3",
                alpha=0.15,
                lw=0,
                label=f"{m.level:.0%} bootstrap band",
            )
    chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
    ax.axhline(chance_error, color=".4", ls=":", lw=1, label=f"chance ({chance_error:.3f})")
    _baseline_lines(ax, fits)
    # an error rate lives in [0, 1]; a wide band beyond the data is not worth the axis
    # (the baselines kept in view)
    low = min([float(finetune["test_error"].min())] + [1 - a for a in fits.baselines.values()])
    ax.set_ylim(max(0.0, low - 0.5 * (chance_error - low) - 0.02), min(1.0, chance_error + 0.05))
    ax.set_xlabel("pretraining validation loss L (nats/token)")
    ax.set_ylabel("test error (1 - accuracy)")
    ax.set_title(_title("task error vs pretraining loss", title))
    ax.legend(fontsize=8)
    return fig


def compression_figure(
    compress: pd.DataFrame,
    fits: DownstreamFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Loss increase from each compression vs parameters (log-log), with power fits.

    One point per size and variant: the best-trained model of each size, as fitted.
    """
    fig, ax = _figure()
    grid = np.geomspace(compress["params"].min() / 1.5, compress["params"].max() * 1.5, 100)
    hidden = 0
    best = best_compressed_per_size(compress)
    for i, (variant, rows) in enumerate(
        best[best["variant"] != "baseline"].groupby("variant", sort=False)
    ):
        pos = rows[rows["delta_loss"] > 0]
        hidden += len(rows) - len(pos)
        colour = f"C{i}"
        ax.plot(pos["params"], pos["delta_loss"], "o", color=colour, label=variant)
        fit = fits.compression.get(variant)
        if fit is not None:
            ax.plot(grid, fit.predict(grid), color=colour, lw=1, label=f"  N^{fit.params['k']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel("validation loss increase dL (nats/token)")
    note = f"\n({hidden} points with dL <= 0 not shown)" if hidden else ""
    ax.set_title(_title(f"cost of compression, best-trained model of each size{note}", title))
    ax.legend(fontsize=8, ncol=2)
    return fig


def compression_size_figure(compress: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Validation loss vs bytes: one line per variant across the model sizes.

    One point per size and variant, its best-trained model. Where a compressed large
    model lies below and left of a smaller fp32 one, compressing beats training smaller
    for that size budget.
    """
    fig, ax = _figure()
    best = best_compressed_per_size(compress)
    for i, (variant, rows) in enumerate(best.groupby("variant", sort=False)):
        rows = rows.sort_values("size_bytes")
        style = {"color": "black", "lw": 2} if variant == "baseline" else {"color": f"C{i}"}
        ax.plot(rows["size_bytes"], rows["val_loss"], "o-", ms=4, label=variant, **style)
    ax.set_xscale("log")
    ax.set_xlabel("serialized size (bytes)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(_title("loss vs size, per compression (best-trained model of each size)", title))
    ax.legend(fontsize=8)
    return fig


def plot_downstream(
    path: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = ("png", "svg"),
    *,
    params: str = "nonembed",
    bootstrap: int = 200,
    seed: int = 0,
    title: str | None = None,
    fits: DownstreamFits | None = None,
    progress: Any = None,
) -> list[Path]:
    """Draw the downstream and compression figures of a sweep, if it has such records.

    Parameters
    ----------
    path
        The pretraining sweep directory (or its ``-finetune``/``-compress`` sibling).
    out_dir
        Where the files go (created if needed).
    formats, params, bootstrap, seed, title
        File formats, parameter convention, fitting options, title prefix.
    fits
        Precomputed fits, to avoid fitting twice.

    Returns
    -------
    list of Path
        The files written; empty when the sweep has no fine-tuning or compression records.
    """
    say = progress or (lambda _text: None)
    ft_dir, comp_dir = downstream_dirs(path)
    finetune = load_finetune(ft_dir, params) if ft_dir else None
    compress = load_compress(comp_dir, params) if comp_dir else None
    if finetune is None and compress is None:
        return []
    if fits is None:
        say("downstream fits: task error vs N, Err(L), compression dL(N) and laws")
        fits = compute_downstream_fits(finetune, compress, bootstrap=bootstrap, seed=seed)
    figures: dict[str, Figure] = {}
    with _style():
        if finetune is not None:
            figures["downstream_error_vs_params"] = error_vs_params_figure(
                finetune, fits, convention=params, title=title
            )
            figures["downstream_error_vs_loss"] = error_vs_loss_figure(finetune, fits, title=title)
        if compress is not None:
            figures["compression_loss_vs_params"] = compression_figure(
                compress, fits, convention=params, title=title
            )
            figures["compression_loss_vs_size"] = compression_size_figure(compress, title=title)
            # the laws of N, D and precision, and the Pareto front (analysis.compression)
            from analysis.plots.compression import compression_figures

            figures.update(compression_figures(compress, fits, title=title))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        for fmt in formats:
            written.append(save_figure(figure, out_dir / f"{name}.{fmt}"))
    return written
