"""The Markdown report: tables of runs, fits, frontier and backtest; links to real figures."""

from __future__ import annotations

import json
import re

import pytest
from analysis_fixtures import FIXED_TOKENS, LADDER, write_sweep

from analysis.cli import main
from analysis.io import DataWarning, load_curves, load_runs
from analysis.report import write_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # Each size at 20 tokens per parameter and again on a fixed token budget: curves for
    # approach 1 and a spread of tokens per parameter for the chinchilla fit.
    root = tmp_path_factory.mktemp("results")
    sweep = write_sweep(root, "demo", diverged=True)
    write_sweep(root, "demo", fixed_tokens=FIXED_TOKENS, prefix="fix")
    with pytest.warns(DataWarning):
        runs, curves = load_runs(sweep), load_curves(sweep)
        path = write_report(runs, curves, sweep / "report.md", source=str(sweep), bootstrap=20, k=1)
    return sweep, path, path.read_text()


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # no header/rule


def test_runs_table_lists_every_completed_run(report):
    sweep, _, text = report
    rows = table_rows(section(text, "Runs"))
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    completed = {k: v for k, v in summaries.items() if v["status"] == "completed"}
    assert len(rows) == 2 * len(LADDER)
    for row in rows:
        run = row[0].strip("`")
        assert float(row[-1]) == pytest.approx(completed[run]["final_val_loss"], rel=1e-3)
    assert "divergedrun1" in text.split("## Runs")[0]  # named among the runs left out


def test_fits_frontier_and_backtest_sections(report):
    _, _, text = report
    fits = section(text, "Fitted laws")
    for heading in ("C = a·N^k", "L(N) = E + A·N^−α", "L(C) = E + A·C^−α", "Chinchilla"):
        assert f"### {heading}" in fits
    # Each fitted law comes with a parameter table carrying intervals.
    assert fits.count("| parameter | value |") == 4
    assert re.search(r"\| k \| [\d.]+ \| \[[\d.]+, [\d.]+\] \|", fits)
    # How the bootstrap resampled: these records predate trunks, one run per trunk, so
    # the chinchilla fit over the 14 runs drew points
    assert "converged: yes; bootstrap: 20 resamples of 14 points" in fits
    frontier = table_rows(section(text, "Compute-optimal frontier"))
    assert frontier[2][4] == "50 points; bootstrap of 14 points"
    assert [row[0] for row in frontier] == ["1", "2", "3"]
    assert re.fullmatch(r"[\d.]+", frontier[0][2])  # approach 1 has an exponent
    assert re.fullmatch(r"[\d.]+", frontier[2][2])  # and approach 3
    assert frontier[1][2] == "–" and "IsoFLOP" in frontier[1][4]  # approach 2 has no data
    backtest = table_rows(section(text, "Backtest"))
    assert len(backtest) == 1 and backtest[0][-1].endswith("%")
    assert backtest[0][0] == "`fix060384`"  # the best run of the largest size was held out


def test_figure_links_point_at_files(report):
    sweep, path, text = report
    links = re.findall(r"\]\(([^)]+)\)", section(text, "Figures"))
    assert any(link.endswith(".png") for link in links) and any(
        link.endswith(".svg") for link in links
    )
    for link in links:
        assert not link.startswith("/")
        assert (path.parent / link).is_file(), link
    assert not list(sweep.glob(".*.tmp"))


def test_report_command(tmp_path, capsys):
    sweep = write_sweep(tmp_path, "small", ladder=LADDER[:6])
    code = main(
        ["report", str(sweep), "--bootstrap", "0", "--out", str(tmp_path / "r" / "report.md")]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "r" / "report.md")
    assert "# Scaling report: small" in (tmp_path / "r" / "report.md").read_text()
