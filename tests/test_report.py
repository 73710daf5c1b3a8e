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
    # Two budgets per size: N and D vary independently, and the section says so first.
    assert fits.strip().startswith("law: chinchilla L(N, D), because N and D vary independently")
    headings = re.findall(r"^### (.*)$", fits, flags=re.M)
    assert headings[0].startswith("Chinchilla")  # the law fitted over the runs comes first
    for heading in ("C = a·N^k", "L(N) = E + A·N^−α", "L(C) = E + A·C^−α", "Chinchilla"):
        assert any(h.startswith(heading) for h in headings)
    assert "at the sweep's budgets" in next(h for h in headings if h.startswith("C = a·N^k"))
    # Fitted: chinchilla and L(C) on the frontier, each with a parameter table; not a
    # one-variable L(N), nor the compute rule of a size ladder (this is not one).
    assert fits.count("| parameter | value |") == 2
    assert "Not fitted: the runs are not a size ladder" in fits
    assert "Not fitted: N and D vary independently" in fits
    # How the bootstrap resampled: these records predate trunks, one run per trunk, so
    # the chinchilla fit over the 14 runs drew points; the frontier's L(C) drew the
    # curves its envelope points were read from.
    assert "converged: yes; bootstrap: 20 resamples of 14 points" in fits
    assert re.search(r"bootstrap: 20 resamples of \d+ runs \(the points of one run", fits)
    frontier = table_rows(section(text, "Compute-optimal frontier"))
    # Approach 3 counts the runs of its fit, not the points of the line drawn from it.
    assert frontier[2][4] == "chinchilla fit to 14 runs; bootstrap of 14 points"
    assert [row[0] for row in frontier] == ["1", "2", "3"]
    assert re.fullmatch(r"[\d.]+", frontier[0][2])  # approach 1 has an exponent
    assert re.fullmatch(r"[\d.]+", frontier[2][2])  # and approach 3
    assert frontier[1][2] == "–" and "IsoFLOP" in frontier[1][4]  # approach 2 has no data
    backtest = section(text, "Backtest")
    assert backtest.strip().startswith("Chinchilla L(N, D)")  # the report's law
    rows = table_rows(backtest)
    assert len(rows) == 1 and rows[0][-1].endswith("%")
    # The run of most compute is held out: the largest size at 20 tokens per parameter
    # (its FIXED_TOKENS twin has the same N and D; the stable sort keeps that one in).
    assert rows[0][0] in ("`run060384`", "`fix060384`")


def test_saturating_report_when_asked(tmp_path):
    root = tmp_path / "results"
    sweep = write_sweep(root, "demo")
    write_sweep(root, "demo", fixed_tokens=FIXED_TOKENS, prefix="fix")
    told = []
    with pytest.warns(DataWarning):
        path = write_report(
            load_runs(sweep), None, tmp_path / "r.md", bootstrap=0, law="saturating",
            progress=told.append,
        )  # fmt: skip
    text = path.read_text()
    assert told[0] == "law: saturating (asked with --law)"
    fits = section(text, "Fitted laws")
    assert fits.strip().startswith("law: saturating (asked with --law)")
    assert re.findall(r"^### (.*)$", fits, flags=re.M)[0].startswith("L(N)")
    assert "Not fitted: --law saturating was asked" in fits
    frontier = table_rows(section(text, "Compute-optimal frontier"))
    assert frontier[2][2] == "–" and "--law saturating" in frontier[2][4]
    backtest = section(text, "Backtest")
    assert backtest.strip().startswith("Saturating L(N), over the best run of each size")
    assert table_rows(backtest)[0][0] == "`fix060384`"  # the best run of the largest size


def test_ladder_report_fits_l_of_n_and_the_compute_rule(tmp_path):
    sweep = write_sweep(tmp_path, "ladder")
    path = write_report(load_runs(sweep), None, tmp_path / "r.md", bootstrap=0)
    fits = section(path.read_text(), "Fitted laws")
    assert fits.strip().startswith("law: saturating L(N) = E + A/N^alpha, because D follows N")
    k, lo, hi = map(
        float, re.search(r"\| k \| ([\d.]+) \| \[([\d.]+), ([\d.]+)\] \|", fits).groups()
    )
    assert lo < k < hi and 1.9 < k < 2.2  # 20 tokens per parameter: C ∝ N^2
    assert "Not fitted: D follows N" in fits  # chinchilla


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
    # The law and why, on stderr and in the report.
    assert "scaling-analyze: law: saturating L(N) = E + A/N^alpha, because D follows N" in err
    assert "law: saturating L(N)" in (tmp_path / "r" / "report.md").read_text()


def test_report_out_over_a_directory_is_refused_and_writes_nothing(tmp_path, capsys):
    sweep = write_sweep(tmp_path, "small", ladder=LADDER[:6])
    target = tmp_path / "rep"
    target.mkdir()
    code = main(["report", str(sweep), "--bootstrap", "0", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{target} is a directory" in err and "Traceback" not in err
    # nothing left: no temporary file beside it, no figures drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "small"]
    assert list(target.iterdir()) == []
