"""What every figure shares: the theme, labels, colours, number formats, saving.

Every figure is a :class:`matplotlib.figure.Figure` built without pyplot, so drawing
never touches a global backend or leaks figures in a long-lived process (PNG and SVG are
written by the Agg and SVG canvases directly). Seaborn supplies the theme and palettes.
The underscored helpers are shared by the figure modules of this package only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analysis.fit import FitResult


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


def save_figure(figure: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save a figure (format from the suffix) through a temporary file, atomically."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a figure's file name")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(tmp, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves nothing behind
    return path


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
    """3e14 -> '$3.0\\times10^{14}$', 1e20 -> '$10^{20}$' (mathtext).

    The mantissa is rounded before it is shown, so a budget a hair under a power of ten
    (9.996e19, from whole steps) reads 10^20, not 10.0×10^19.
    """
    exponent = math.floor(math.log10(value))
    mantissa = round(value / 10**exponent, 1)
    if mantissa >= 10.0:
        exponent, mantissa = exponent + 1, round(mantissa / 10, 1)
    if mantissa == 1.0:
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
