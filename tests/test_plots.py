"""Figures: files written, and what is on the axes (scales, labels, extrapolation, fits)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.colors
import numpy as np
import pytest
from analysis_fixtures import (
    BUDGETS_PER_PARAM,
    FIXED_TOKENS,
    ISOFLOP_BUDGETS,
    write_isoflop_sweep,
    write_isoflop_trunk_sweep,
    write_sweep,
    write_trunk_sweep,
)
from matplotlib.collections import PolyCollection

from analysis import plots
from analysis.io import DataWarning, load, load_curves, load_runs
from analysis.plots.style import _sci

EPOCH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "chinchilla-epoch"
    / "svg_extracted_data.csv"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The usual size sweep: every size trained on 20 tokens per parameter."""
    sweep = write_sweep(tmp_path_factory.mktemp("results"), "demo")
    runs, curves = load_runs(sweep), load_curves(sweep)
    with pytest.warns(DataWarning, match="cosine learning curves"):  # approach 1's envelope
        fits = plots.compute_fits(runs, curves, bootstrap=40, seed=1)
    return runs, curves, fits


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """Every size trained on the same tokens: overlapping curves, an approach-1 frontier."""
    sweep = write_sweep(tmp_path_factory.mktemp("results"), "fixed", fixed_tokens=FIXED_TOKENS)
    runs, curves = load_runs(sweep), load_curves(sweep)
    with pytest.warns(DataWarning, match="cosine learning curves"):
        fits = plots.compute_fits(runs, curves, bootstrap=40, seed=1)
    return runs, curves, fits


@pytest.fixture(scope="module")
def isoflop(tmp_path_factory):
    runs = load_runs(write_isoflop_sweep(tmp_path_factory.mktemp("results")))
    return runs, plots.compute_fits(runs, None, bootstrap=20)


@pytest.fixture(scope="module")
def wsd(tmp_path_factory):
    """One WSD-S trunk per size, each cut at nine budgets (1..256 tokens per parameter)."""
    sweep = write_trunk_sweep(tmp_path_factory.mktemp("results"), "wsd", trunk_sd=0.01)
    runs, curves = load_runs(sweep), load_curves(sweep)
    with pytest.warns(DataWarning, match="only 7 trunks"):  # chinchilla has 5 parameters
        fits = plots.compute_fits(runs, curves, bootstrap=20, seed=1)
    return sweep, runs, curves, fits


def legend_texts(ax) -> list[str]:
    """Texts of the legends of an axes and of its figure."""
    legends = [ax.get_legend(), *ax.figure.legends]
    return [t.get_text() for legend in legends if legend for t in legend.get_texts()]


def test_plot_all_writes_png_and_svg(fixed, tmp_path):
    runs, curves, fits = fixed
    with pytest.warns(DataWarning, match="'isoflop' skipped"):
        files = plots.plot_all(runs, curves, tmp_path / "out", fits=fits, title="demo")
    names = {p.name for p in files}
    for name in ("loss_vs_compute", "compute_vs_params", "residuals"):
        assert {f"{name}.png", f"{name}.svg"} <= names
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            assert width > 600 and height > 400
        else:
            assert ET.fromstring(data).tag.endswith("svg")
    assert not list((tmp_path / "out").glob(".*tmp"))  # saved through temporary files


def test_loss_vs_compute_axes_and_extrapolation(fixed):
    runs, curves, fits = fixed
    assert fits.frontier1 is not None and fits.loss_vs_compute is not None
    fig = plots.loss_vs_compute_figure(curves, fits)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "compute" in ax.get_xlabel() and "FLOP" in ax.get_xlabel()
    assert "loss" in ax.get_ylabel() and "nats/token" in ax.get_ylabel()
    # One line per run, plus the fitted law that reaches far past the largest run.
    law_lines = [line for line in ax.get_lines() if line.get_color() == "crimson"]
    assert len(law_lines) == 1
    assert law_lines[0].get_xdata().max() >= 10 * curves["flops"].max()
    run_lines = [
        line for line in ax.get_lines() if line.get_linestyle() == "-" and line not in law_lines
    ]
    assert len(run_lines) == curves["run"].nunique()
    # The bootstrap band is drawn under the law, and it contains it.
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    texts = legend_texts(ax)
    assert any("frontier" in t for t in texts)
    assert any("bootstrap band" in t for t in texts)
    assert sum(t.startswith("N = ") for t in texts) == curves["params"].nunique()


def test_ladder_without_frontier_fits_l_of_c_to_final_points(demo):
    runs, curves, _ = demo
    # Final points only (no curves, so no approach 1) and 20 tokens per parameter (so no
    # chinchilla): the law is fitted to the final point of each size.
    fits = plots.compute_fits(runs, None, bootstrap=20)
    assert fits.frontier1 is None and fits.chinchilla is None
    assert fits.loss_vs_compute_source == "runs"
    assert len(fits.loss_vs_compute_points) == len(runs)
    ax = plots.loss_vs_compute_figure(runs, fits).axes[0]
    (law,) = [line for line in ax.get_lines() if line.get_color() == "crimson"]
    assert law.get_xdata().max() >= 10 * runs["flops"].max()
    assert any("each size's final point" in t for t in legend_texts(ax))


def test_compute_vs_params_legend_has_k_and_its_interval(demo):
    runs, _, fits = demo
    fig = plots.compute_vs_params_figure(runs, fits)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "parameters N" in ax.get_xlabel() and "FLOP" in ax.get_ylabel()
    (label,) = [t for t in legend_texts(ax) if "CI" in t]
    assert "at the sweep's budgets" in label  # what the sweep spent, not a frontier
    k, lo, hi = map(float, re.findall(r"[-+]?\d+\.\d+", label)[:3])
    assert lo < k < hi
    assert k == pytest.approx(fits.compute_vs_params.params["k"], abs=5e-4)
    assert 1.9 < k < 2.2  # 20 tokens per parameter: C ∝ N^2


def test_isoflop_figure_draws_a_parabola_per_budget(isoflop):
    runs, fits = isoflop
    groups = plots.isoflop_groups(runs)
    assert groups["group"].nunique() == 3  # the fixture's three budgets
    fig = plots.isoflop_figure(runs, fits)
    ax, ax_opt = fig.axes
    assert ax.get_xscale() == "log"
    assert len(ax.get_lines()) == 3
    assert sum("FLOP" in t for t in legend_texts(ax)) == 3
    assert ax_opt.get_xscale() == "log" and ax_opt.get_yscale() == "log"
    texts = legend_texts(ax_opt)
    assert any(t.startswith(f"approach 2: a = {fits.frontier2.a:.3f}") for t in texts)
    assert any(t.startswith("approach 3: a = ") for t in texts)  # chinchilla fitted too
    # The approach-2 line is N_opt ∝ C^a: its log-log slope is a.
    (line,) = [ln for ln in ax_opt.get_lines() if ln.get_label().startswith("approach 2")]
    x, y = line.get_xdata(), line.get_ydata()
    slope = np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])
    assert slope == pytest.approx(fits.frontier2.a, rel=1e-9)


def test_isoflop_figure_skipped_without_budgets(demo):
    runs, _, fits = demo
    assert plots.isoflop_groups(runs) is None
    assert plots.isoflop_figure(runs, fits) is None
    assert "IsoFLOP" in fits.notes["frontier2"]


def test_residuals_figure_plots_the_fit_residuals(demo):
    runs, _, fits = demo
    # Every run has 20 tokens per parameter: D follows N, so L(N) is the law, not chinchilla.
    assert fits.law == "saturating" and fits.chinchilla is None
    assert "D follows N" in fits.notes["chinchilla"]
    fig = plots.residuals_figure(runs, fits.loss_vs_params)
    # One panel against each of N, D and C, in that order, all on log axes.
    assert [ax.get_xscale() for ax in fig.axes] == ["log"] * 3
    for ax, column in zip(fig.axes, ("params", "tokens", "flops"), strict=True):
        offsets = ax.collections[-1].get_offsets()
        assert np.allclose(offsets[:, 0], runs[column])
        assert np.allclose(offsets[:, 1], fits.loss_vs_params.residuals)
    assert "tokens D" in fig.axes[1].get_xlabel() and "FLOP" in fig.axes[2].get_xlabel()
    assert "L(N)" in fig.get_suptitle()


def test_residuals_figure_leaves_out_a_missing_column(demo):
    runs, _, fits = demo
    fig = plots.residuals_figure(runs.drop(columns="tokens"), fits.loss_vs_params)
    assert len(fig.axes) == 2 and "tokens" not in fig.axes[1].get_xlabel()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1e20, "$10^{20}$"),
        (9.996e19, "$10^{20}$"),  # a budget a hair under 1e20, from whole steps
        (9.94e19, "$9.9\\times10^{19}$"),
        (3e14, "$3.0\\times10^{14}$"),
        (2.96e14, "$3.0\\times10^{14}$"),
    ],
)
def test_compute_budgets_print_as_powers_of_ten(value, shown):
    assert _sci(value) == shown


def test_isoflop_legend_reads_ten_to_the_twenty(isoflop):
    runs, fits = isoflop
    # The same profiles, scaled so that one budget sits just under 10^20 FLOP.
    scale = 9.996e19 / 1e14
    scaled = runs.assign(flops=runs["flops"] * scale)
    ax = plots.isoflop_figure(scaled, plots.compute_fits(scaled, None, bootstrap=0)).axes[0]
    texts = legend_texts(ax)
    assert "C = $10^{20}$ FLOP" in texts
    assert not [t for t in texts if "10.0" in t]


def test_the_law_follows_the_design(demo, wsd):
    runs, _, fits = demo
    assert fits.law == "saturating" and fits.law_reason.startswith("law: saturating")
    assert fits.loss_vs_params is not None and fits.compute_vs_params is not None
    _, _, _, trunks = wsd
    # Nine budgets per size: N and D vary independently, so chinchilla, and neither L(N)
    # nor the compute rule C = a N^k of a size ladder.
    assert trunks.law == "chinchilla" and "vary independently" in trunks.law_reason
    assert trunks.chinchilla is not None and trunks.frontier3 is not None
    assert trunks.loss_vs_params is None and "mix their effects" in trunks.notes["loss_vs_params"]
    assert trunks.compute_vs_params is None
    assert "not a size ladder" in trunks.notes["compute_vs_params"]


def test_a_law_asked_for_is_the_one_fitted(wsd):
    _, runs, _, _ = wsd
    told = []
    fits = plots.compute_fits(runs, None, bootstrap=0, law="saturating", progress=told.append)
    assert fits.law == "saturating" and fits.law_reason == "law: saturating (asked with --law)"
    assert told[0] == fits.law_reason  # said first, on the progress path
    assert fits.chinchilla is None and fits.frontier3 is None
    assert fits.loss_vs_params is not None
    with pytest.raises(ValueError, match="law='power'"):
        plots.compute_fits(runs, None, law="power")


def test_frontier_law_resamples_the_runs_behind_the_envelope(fixed):
    _, _, fits = fixed
    envelope = fits.frontier1.points
    law = fits.loss_vs_compute
    assert law.resampled == "runs" and law.n_groups == envelope["run"].nunique()
    assert law.n_groups < len(envelope)  # several envelope points come from one curve


@pytest.mark.skipif(not EPOCH.exists(), reason="reference data not present")
@pytest.mark.filterwarnings("ignore:approach 2 left out")  # most Epoch budgets have < 3 sizes
def test_epoch_points_use_a_colour_bar_and_give_isoflop_profiles():
    data = load(EPOCH, params_col="Model Size", flops_col="Training FLOP", where="loss < 3.44")
    fits = plots.compute_fits(data, None, bootstrap=0)
    fig = plots.loss_vs_compute_figure(data, fits)
    assert len(fig.axes) == 2  # the plot and its colour bar of model sizes
    assert "parameters" in fig.axes[1].get_ylabel()
    assert plots.isoflop_figure(data, fits) is not None


def test_loss_vs_compute_marks_each_budget_in_its_size_colour(wsd):
    sweep, _, curves, fits = wsd
    assert fits.frontier1 is not None and fits.frontier1.envelope == "final"
    ax = plots.loss_vs_compute_figure(curves, fits).axes[0]
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    records = [s for s in summaries if s.get("role") != "trunk"]
    marked = {c.get_gid(): c for c in ax.collections if str(c.get_gid()).startswith("budget")}
    k = len(BUDGETS_PER_PARAM)
    assert sorted(marked) == sorted(f"budget {i}" for i in range(k))
    # one marker shape per budget index
    shapes = {tuple(np.round(c.get_paths()[0].vertices, 6).ravel()) for c in marked.values()}
    assert len(shapes) == k
    # each budget's collection holds the decayed ends of that budget, one per trunk
    ends_by_colour = {}
    for index in range(k):
        collection = marked[f"budget {index}"]
        mine = sorted((s["flops"], s["final_val_loss"], s["params_nonembed"])
                      for s in records if s["budget_index"] == index)  # fmt: skip
        offsets = sorted(map(tuple, collection.get_offsets()))
        np.testing.assert_allclose(offsets, [m[:2] for m in mine], rtol=1e-12)
        # ... in the colour of its size, which is the colour of the curve ending there
        colours = collection.to_rgba(collection.get_array())  # as drawn
        for (flops, _), colour in zip(collection.get_offsets(), colours, strict=True):
            (line,) = [ln for ln in ax.get_lines()  # the run's curve, not the dotted mark
                       if ln.get_linestyle() == "-" and ln.get_xdata()[-1] == flops]  # fmt: skip
            assert matplotlib.colors.to_rgb(line.get_color()) == pytest.approx(colour[:3])
            size = next(m[2] for m in mine if m[0] == flops)
            ends_by_colour.setdefault(size, set()).add(tuple(np.round(colour[:3], 6)))
    assert all(len(c) == 1 for c in ends_by_colour.values())  # one colour per size
    assert len({next(iter(c)) for c in ends_by_colour.values()}) == len(ends_by_colour)
    texts = legend_texts(ax)
    assert [f"budget {i + 1}" for i in range(k)] == [t for t in texts if t.startswith("budget")]
    assert "decayed end of budget" in texts
    assert sum(t.startswith("N = ") for t in texts) == curves["params"].nunique()


def test_final_points_of_budgets_are_marked_without_curves(wsd):
    _, runs, _, _ = wsd
    fits = plots.compute_fits(runs, None, bootstrap=0)
    ax = plots.loss_vs_compute_figure(runs, fits).axes[0]
    marked = [c for c in ax.collections if str(c.get_gid()).startswith("budget")]
    assert sum(len(c.get_offsets()) for c in marked) == len(runs)
    assert len(marked) == len(BUDGETS_PER_PARAM)


def test_cosine_runs_get_no_budget_markers(fixed):
    _, curves, fits = fixed
    ax = plots.loss_vs_compute_figure(curves, fits).axes[0]
    assert not [c for c in ax.collections if str(c.get_gid()).startswith("budget")]
    assert not [t for t in legend_texts(ax) if t.startswith("budget")]


def test_isoflop_profiles_of_trunks_group_by_the_asked_budget(tmp_path):
    runs = load_runs(write_isoflop_trunk_sweep(tmp_path))
    groups = plots.isoflop_groups(runs)
    # every run is in the profile of the compute it was asked for
    assert (groups["budget"] == groups["flops_target"]).all()
    assert sorted(groups["budget"].unique()) == list(ISOFLOP_BUDGETS)
    fits = plots.compute_fits(runs, None, bootstrap=0)
    assert fits.frontier2 is not None and fits.frontier2.grouping == "flops_target"
    ax = plots.isoflop_figure(runs, fits).axes[0]
    assert sum("FLOP" in t for t in legend_texts(ax)) == len(ISOFLOP_BUDGETS)
