"""The compression-law figures: Kumar et al.'s quantization loss against D/N per
precision and against the bits P, and the Pareto front of loss against bytes.

They read the rows of :func:`analysis.io.downstream.load_compress` and the fits of
:mod:`analysis.compression` (through :class:`analysis.downstream.DownstreamFits`);
:func:`analysis.plots.downstream.plot_downstream` draws and saves them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compression import QUANT_SCHEMES, CompressionFit, scheme_key
from analysis.downstream import DownstreamFits, best_compressed_per_size
from analysis.plots.style import _figure, _marker_handle, _size_cmap, _title

__all__ = [
    "compression_figures",
    "pareto_figure",
    "pareto_front",
    "ptq_vs_bits_figure",
    "ptq_vs_data_figure",
]

# one marker per model size, in order of size (cycled past the eighth)
_SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _scheme_rows(compress: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of the quantization scheme ``key`` (:func:`scheme_key`)."""
    q = compress[compress["scheme"].isin(QUANT_SCHEMES) & compress["bits"].notna()]
    keys = [scheme_key(s, g) for s, g in zip(q["scheme"], q["group_size"], strict=True)]
    return q[np.array(keys, dtype=object) == key]


def ptq_vs_data_figure(
    compress: pd.DataFrame, fit: CompressionFit, *, title: str | None = None
) -> Figure:
    """delta against D/N (log-log) for one scheme: one colour per bits value, one marker
    per model size, and the fitted law along the D range of each (N, P)."""
    fig, ax = _figure()
    rows = _scheme_rows(compress, fit.scheme)
    sizes = sorted(rows["params"].unique())
    bits = sorted(rows["bits"].unique())
    colour = {b: f"C{i}" for i, b in enumerate(bits)}
    marker = {n: _SIZE_MARKERS[i % len(_SIZE_MARKERS)] for i, n in enumerate(sizes)}
    shown = rows[rows["delta_loss"] > 0]
    for (n, b), group in shown.groupby(["params", "bits"]):
        ratio = group["pretrain_tokens"] / n
        ax.scatter(ratio, group["delta_loss"], color=colour[b], marker=marker[n], s=36, zorder=3)
    for (n, b), group in rows.groupby(["params", "bits"]):
        lo, hi = group["pretrain_tokens"].min(), group["pretrain_tokens"].max()
        grid = np.geomspace(lo / 1.5, hi * 1.5, 50)
        with np.errstate(invalid="ignore"):
            line = fit.predict(n, grid, b)
        ax.plot(grid / n, line, color=colour[b], lw=1, alpha=0.8)
    handles = [_marker_handle("o", colour[b], colour[b]) for b in bits]
    labels = [f"P = {b:g} bits" for b in bits]
    handles += [_marker_handle(marker[n], "white", ".3") for n in sizes]
    labels += [f"N = {n:.3g}" for n in sizes]
    ax.legend(handles, labels, fontsize=8, ncol=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pretraining tokens per parameter D/N")
    ax.set_ylabel("loss added by quantization delta (nats/token)")
    hidden = len(rows) - len(shown)
    note = f" ({hidden} points with delta <= 0 not shown)" if hidden else ""
    ax.set_title(_title(f"{fit.scheme}: {fit.formula()}{note}", title), fontsize=9)
    return fig


def ptq_vs_bits_figure(
    compress: pd.DataFrame, fits: DownstreamFits, *, title: str | None = None
) -> Figure:
    """delta against the bits P at the largest N and its largest D: the measured points
    of every quantization scheme and each scheme's law."""
    fig, ax = _figure()
    q = compress[compress["scheme"].isin(QUANT_SCHEMES) & compress["bits"].notna()]
    n = float(q["params"].max())
    d = float(q.loc[q["params"] == n, "pretrain_tokens"].max())
    at = q[(q["params"] == n) & (q["pretrain_tokens"] == d)]
    for i, (key, fit) in enumerate(fits.quantization.items()):
        rows = _scheme_rows(at, key)
        rows = rows[rows["delta_loss"] > 0]
        colour = f"C{i}"
        ax.plot(rows["bits"], rows["delta_loss"], "o", color=colour, label=key, zorder=3)
        ps = np.unique(fit.x[2])
        grid = np.linspace(ps.min() - 0.5, ps.max() + 0.5, 100) if len(ps) > 1 else ps
        with np.errstate(invalid="ignore"):
            law = fit.predict(n, d, grid)
        # a scheme of one precision has its law at that P alone: a cross, not a line
        style = {"lw": 1} if len(ps) > 1 else {"ls": "", "marker": "x", "ms": 9}
        ax.plot(grid, law, color=colour, label=f"  {fit.formula()}", **style)
    ax.set_yscale("log")
    ax.set_xlabel("weight bits P")
    ax.set_ylabel("loss added by quantization delta (nats/token)")
    ax.set_title(_title(f"quantization loss vs precision at N = {n:.3g}, D = {d:.3g}", title))
    ax.legend(fontsize=7)
    return fig


def pareto_front(points: pd.DataFrame, x: str = "size_bytes", y: str = "val_loss") -> pd.DataFrame:
    """The rows no other row beats: fewer (or as many) bytes and a lower loss, by bytes."""
    ordered = points.sort_values([x, y])
    loss = ordered[y].to_numpy(dtype=float)
    # the lowest loss of every smaller (or equal but listed earlier) row: a row is on the
    # front when it beats all of them
    before = np.r_[np.inf, np.minimum.accumulate(loss)[:-1]]
    return ordered[loss < before]


def pareto_figure(compress: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Validation loss against bytes on disk, per model size: every variant of the
    best-trained model of each size as a point, the Pareto front of each size a line.
    A compressed large model below and left of a smaller one is the better buy."""
    fig, ax = _figure()
    best = best_compressed_per_size(compress)
    sizes = sorted(best["params"].unique())
    cmap = _size_cmap()
    for i, n in enumerate(sizes):
        colour = cmap(i / max(1, len(sizes) - 1))
        rows = best[best["params"] == n]
        ax.scatter(rows["size_bytes"], rows["val_loss"], color=colour, s=24, zorder=3)
        front = pareto_front(rows)
        ax.plot(front["size_bytes"], front["val_loss"], "-", color=colour, lw=1.5,
                label=f"N = {n:.3g}")  # fmt: skip
        for row in front.itertuples(index=False):
            ax.annotate(str(row.variant), (row.size_bytes, row.val_loss), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color=".3")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("size on disk (bytes)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(_title("loss vs bytes, Pareto front per model size", title))
    ax.legend(fontsize=8, title="best-trained model of each size", title_fontsize=8)
    return fig


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")


def compression_figures(
    compress: pd.DataFrame, fits: DownstreamFits, *, title: str | None = None
) -> dict[str, Figure]:
    """Every compression-law figure the data allow, keyed by file stem:
    ``compression_ptq_vs_data_<scheme>`` for each quantization scheme fitted over two
    precisions or more, ``compression_ptq_vs_bits`` when any scheme is fitted, and
    ``compression_pareto``."""
    figures: dict[str, Figure] = {}
    for key, fit in fits.quantization.items():
        if "P" not in fit.held:
            figures[f"compression_ptq_vs_data_{_slug(key)}"] = ptq_vs_data_figure(
                compress, fit, title=title
            )
    if fits.quantization:
        figures["compression_ptq_vs_bits"] = ptq_vs_bits_figure(compress, fits, title=title)
    figures["compression_pareto"] = pareto_figure(compress, title=title)
    return figures
