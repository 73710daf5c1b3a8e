"""Every figure of a sweep at once: :func:`plot_all` fits, draws and saves them."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis import progress as bars
from analysis.io import DataWarning, require
from analysis.plots.compute import compute_vs_params_figure, loss_vs_compute_figure
from analysis.plots.isoflop import isoflop_figure
from analysis.plots.residuals import residuals_figure
from analysis.plots.style import _style, save_figure
from analysis.sweep_fits import SweepFits, best_run_per_size, compute_fits


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
    law: str | None = None,
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
    law
        The law of the loss (``"chinchilla"``, ``"saturating"``; ignored when ``fits`` is
        given); None: the one the data can identify (:func:`analysis.choice.choose_law`).
    progress
        Optional callable taking a line of progress (the law chosen and why first).

    Returns
    -------
    list of Path
        The files written. A figure that cannot be drawn (no IsoFLOP groups, a fit that
        failed) is skipped with a :class:`~analysis.io.DataWarning` saying why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fits is None:
        fits = compute_fits(
            runs, curves, bootstrap=bootstrap, seed=seed, law=law, progress=progress
        )
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
        # Residuals of the law fitted over the runs: chinchilla, or L(N).
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
    drawn = [name for name, figure in figures.items() if figure is not None]
    with bars.bar(len(drawn) * len(formats), "saving figures") as done:
        for name, figure in figures.items():
            if figure is None:
                reason = _skip_reason(name, fits)
                warnings.warn(f"figure {name!r} skipped: {reason}", DataWarning, stacklevel=2)
                continue
            for fmt in formats:
                path = out_dir / f"{name}.{fmt}"
                save_figure(figure, path)
                written.append(path)
                done(len(written))
    return written


def _skip_reason(name: str, fits: SweepFits) -> str:
    if name == "isoflop":
        return fits.notes.get("frontier2", "")
    key = "chinchilla" if fits.law == "chinchilla" else "loss_vs_params"
    return fits.notes.get(key, "")
