"""analysis/progress.py: bars on a terminal only, never with --quiet, nothing without tqdm."""

import io
import sys

import numpy as np
import pytest

from analysis import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    err = Terminal()
    monkeypatch.setattr(progress, "_stream", lambda: err)
    progress.set_quiet(False)
    yield err
    progress.set_quiet(False)


def test_a_bar_is_drawn_on_a_terminal_and_reaches_its_total(terminal):
    pytest.importorskip("tqdm")
    seen = []
    with progress.bar(50, "work") as update:
        for done in (10, 30, 50):
            update(done)
            seen.append(terminal.getvalue())
    # tqdm draws at its start and then at most every 0.1 s: the bar is there, of 50
    assert "work" in seen[-1] and "/50" in seen[-1]


def test_quiet_and_a_pipe_draw_nothing(terminal, monkeypatch):
    progress.set_quiet(True)
    with progress.bar(50, "work") as update:
        update(50)
    assert terminal.getvalue() == ""
    progress.set_quiet(False)
    monkeypatch.setattr(progress, "_stream", io.StringIO)  # not a terminal
    assert not progress.shown()


def test_without_tqdm_nothing_is_drawn_and_nothing_fails(terminal, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    assert not progress.shown()
    with progress.bar(50, "work") as update:
        update(50)
    assert terminal.getvalue() == ""


def test_a_bootstrap_fit_shows_its_refits_on_a_terminal(terminal):
    pytest.importorskip("tqdm")
    from analysis.fit import fit

    x = np.logspace(3, 6, 12)
    y = 1.7 + 400.0 * x**-0.35  # a known saturating law
    fit("saturating", x, y, bootstrap=20, seed=0)
    assert "saturating bootstrap" in terminal.getvalue()


def test_reading_a_sweep_and_saving_its_figures_show_bars_on_a_terminal(terminal, tmp_path):
    """The import of many files and the figures of a plot, each with its bar."""
    pytest.importorskip("tqdm")
    from analysis_fixtures import write_sweep

    from analysis.io import load_curves, load_runs
    from analysis.plots import plot_all

    sweep = write_sweep(tmp_path, "bars")
    runs, curves = load_runs(sweep), load_curves(sweep)
    assert "reading records" in terminal.getvalue()
    assert "reading curves" in terminal.getvalue()
    plot_all(runs, curves, tmp_path / "plots", formats=("png",), bootstrap=0)
    assert "saving figures" in terminal.getvalue()
    progress.set_quiet(True)
    before = terminal.getvalue()
    load_curves(sweep)
    assert terminal.getvalue() == before  # --quiet: nothing more drawn
