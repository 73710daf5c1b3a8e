"""Scaling figures: loss vs compute, compute vs parameters, IsoFLOP profiles, residuals,
and the downstream and compression figures.

:func:`analysis.sweep_fits.compute_fits` does the fitting the figures need (and the
report and the CLI reuse), with the law the data can identify unless told one;
:func:`plot_all` draws and saves every figure for a sweep. The modules hold:

- :mod:`analysis.plots.compute`: loss vs compute (with the extrapolated law) and compute
  vs model size;
- :mod:`analysis.plots.isoflop`: IsoFLOP profiles and the frontier by approach;
- :mod:`analysis.plots.residuals`: log residuals against N, D and C;
- :mod:`analysis.plots.downstream`: task error against N and against pretraining loss,
  the loss a compression adds, loss against bytes (:func:`plot_downstream`);
- :mod:`analysis.plots.style`: theme, labels, number formats, atomic saving;
- :mod:`analysis.plots.sweep`: :func:`plot_all`.
"""

from __future__ import annotations

from analysis.plots.compute import (
    BUDGET_MARKERS,
    EXTRAPOLATE,
    MAX_LEGEND_SIZES,
    compute_vs_params_figure,
    extrapolated_law,
    loss_vs_compute_figure,
)
from analysis.plots.isoflop import isoflop_figure, isoflop_groups
from analysis.plots.residuals import residuals_figure
from analysis.plots.style import CONVENTION_NAMES, LABELS, save_figure
from analysis.plots.sweep import plot_all
from analysis.sweep_fits import SweepFits, best_run_per_size, compute_fits

__all__ = [
    "BUDGET_MARKERS",
    "CONVENTION_NAMES",
    "EXTRAPOLATE",
    "LABELS",
    "MAX_LEGEND_SIZES",
    "SweepFits",
    "best_run_per_size",
    "compute_fits",
    "compute_vs_params_figure",
    "extrapolated_law",
    "isoflop_figure",
    "isoflop_groups",
    "loss_vs_compute_figure",
    "plot_all",
    "residuals_figure",
    "save_figure",
]
