"""A Markdown report of one sweep: runs, fitted laws, frontier exponents, backtest, figures.

``scaling-analyze report results/<sweep>`` writes ``results/<sweep>/report.md`` with its
figures in ``results/<sweep>/plots/`` (linked relatively, so the directory can be moved
or browsed on a forge as it is). The report is written to a temporary file and renamed,
so a reader never sees half of it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.plots import CONVENTION_NAMES, plot_all
from analysis.sweep_fits import SweepFits, best_run_per_size, compute_fits

if TYPE_CHECKING:
    from analysis.backtest import Backtest
    from analysis.fit import FitResult

APPROACHES = {
    1: "lower envelope of the learning curves",
    2: "parabola minima of IsoFLOP profiles",
    3: "closed form β/(α+β) of the Chinchilla fit",
}
FIGURES = {
    "loss_vs_compute": "Loss vs compute, with the frontier and the extrapolated law",
    "compute_vs_params": "Training compute vs model size at the sweep's budgets (not a frontier)",
    "isoflop": "IsoFLOP profiles (approach 2)",
    "residuals": "Log residuals of the fitted law against N, D and C",
}


def write_report(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    out: str | Path,
    *,
    source: str = "",
    convention: str | None = "nonembed",
    bootstrap: int = 200,
    seed: int = 0,
    k: int = 1,
    figures_dir: str | Path | None = None,
    law: str | None = None,
    progress: Any = None,
) -> Path:
    """Fit, plot and write the Markdown report of one sweep; return its path.

    Parameters
    ----------
    runs, curves
        One row per run, and the learning curves (or None), as loaded by
        :mod:`analysis.io`.
    out
        The report file (``.md``).
    source
        Where the data came from, shown at the top.
    convention
        The parameter convention of ``params`` (for labels); None for imported data.
    bootstrap, seed
        Resamples for the intervals and bands.
    k
        How many of the largest runs the backtest holds out.
    figures_dir
        Where the figures go (default: ``plots/`` next to the report).
    law
        The law of the loss fitted over the runs and backtested (``"chinchilla"``,
        ``"saturating"``); None: the one the data can identify
        (:func:`analysis.choice.choose_law`), with the reason in the report.
    progress
        Optional callable taking a line of progress (the law chosen and why first).
    """
    out = Path(out)
    if out.is_dir():  # before anything is drawn or written
        raise ValueError(f"{out} is a directory: give --out a file name, e.g. {out / 'report.md'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    figures_dir = Path(figures_dir) if figures_dir is not None else out.parent / "plots"
    say = progress or (lambda _text: None)

    fits = compute_fits(runs, curves, bootstrap=bootstrap, seed=seed, law=law, progress=say)
    extra = _extra_fits(runs, fits.law, k=k, bootstrap=bootstrap, seed=seed, say=say)
    title = _sweep_name(runs)
    say(f"drawing figures into {figures_dir}")
    written = plot_all(
        runs, curves, figures_dir, ("png", "svg"), fits=fits, convention=convention, title=title
    )
    text = render(runs, fits, extra, written, out.parent, source=source, convention=convention, k=k)
    _write_atomic(out, text)
    return out


def _extra_fits(
    runs: pd.DataFrame, law: str, *, k: int, bootstrap: int, seed: int, say: Any
) -> dict[str, Any]:
    """Fits the report shows beyond those of the figures: the backtest of ``law``."""
    from analysis.backtest import backtest
    from analysis.io import require

    extra: dict[str, Any] = {"notes": {}}
    try:
        if law == "chinchilla":
            say(f"backtest: chinchilla L(N, D) without the {k} run(s) of most compute")
            used = require(runs, ["params", "tokens", "loss"], "backtest")
        else:
            say(f"backtest: saturating L(N) without the {k} largest size(s)")
            used = best_run_per_size(require(runs, ["params", "loss"], "backtest"))
        extra["backtest"] = backtest(used, law, k=k, bootstrap=bootstrap, seed=seed)
    except ValueError as err:
        extra["notes"]["backtest"] = str(err)
    return extra


# --------------------------------------------------------------------------------------
# Rendering


def render(
    runs: pd.DataFrame,
    fits: SweepFits,
    extra: dict[str, Any],
    figures: Sequence[Path],
    base: Path,
    *,
    source: str = "",
    convention: str | None = "nonembed",
    k: int = 1,
) -> str:
    """The report's Markdown text; figure links are made relative to ``base``."""
    name = _sweep_name(runs) or (Path(source).name if source else "runs")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    counted = (
        f"{CONVENTION_NAMES.get(convention, convention)} parameters"
        if convention is not None
        else "parameters as the source counts them"
    )
    parts = [
        f"# Scaling report: {name}",
        "",
        f"{len(runs)} runs from `{source}`; N counts {counted}, C is training compute in "
        f"FLOP, D training tokens, L the final validation loss (nats/token). Generated {when}.",
        "",
    ]
    excluded = runs.attrs.get("excluded") or []
    if excluded:
        left_out = "; ".join(
            f"`{e['run']}` ({e['status']}{': ' + str(e['error']) if e.get('error') else ''})"
            for e in excluded
        )
        parts += [f"Left out (not completed): {left_out}.", ""]

    parts += ["## Runs", "", *_runs_table(runs), ""]
    parts += ["## Fitted laws", "", *_fits_section(fits), ""]
    parts += ["## Compute-optimal frontier", "", *_frontier_table(fits), ""]
    parts += ["## Backtest", "", *_backtest_section(extra, k), ""]
    parts += ["## Figures", "", *_figures_section(figures, base, fits), ""]
    return "\n".join(parts)


def _runs_table(runs: pd.DataFrame) -> list[str]:
    header = ["run"]
    has_shape = {"n_layers", "d_model"} <= set(runs.columns)
    if "family" in runs.columns:
        header.append("family")
    if has_shape:
        header.append("size (layers × d_model)")
    header += ["params N", "tokens D", "compute C (FLOP)", "final loss"]
    rows = []
    for row in runs.sort_values(["params", "flops"]).itertuples(index=False):
        cells = [f"`{row.run}`"]
        if "family" in runs.columns:
            cells.append(str(row.family))
        if has_shape:
            cells.append(f"{_int(row.n_layers)} × {_int(row.d_model)}")
        cells += [_num(row.params), _num(row.tokens), _num(row.flops), _num(row.loss, 4)]
        rows.append(cells)
    return _markdown_table(
        header, rows, align_right_from=1 + int("family" in runs.columns) + int(has_shape)
    )


def _fits_section(fits: SweepFits) -> list[str]:
    compute_rule = (
        "C = a·N^k: compute against size at the sweep's budgets (its budget rule, "
        "not a compute-optimal frontier)"
    )
    loss_of_size = "L(N) = E + A·N^−α over the best run of each size"
    chinchilla = "Chinchilla L(N, D) = E + A/N^α + B/D^β over the runs"
    loss_of_compute = (
        "L(C) = E + A·C^−α on the approach-1 frontier"
        if fits.loss_vs_compute_source == "frontier"
        else "L(C) = E + A·C^−α on the final point of each size (no frontier)"
    )
    entries = {
        "loss_vs_params": (loss_of_size, fits.loss_vs_params, fits.notes.get("loss_vs_params")),
        "chinchilla": (chinchilla, fits.chinchilla, fits.notes.get("chinchilla")),
        "loss_vs_compute": (
            loss_of_compute,
            fits.loss_vs_compute,
            fits.notes.get("loss_vs_compute") or fits.notes.get("frontier1"),
        ),
        "compute_vs_params": (
            compute_rule,
            fits.compute_vs_params,
            fits.notes.get("compute_vs_params"),
        ),
    }
    # The law fitted over the runs first, then what the figures add, then the other law.
    main, other = (
        ("chinchilla", "loss_vs_params")
        if fits.law == "chinchilla"
        else ("loss_vs_params", "chinchilla")
    )
    lines = [f"{fits.law_reason}." if fits.law_reason else "", ""]
    for key in (main, "loss_vs_compute", "compute_vs_params", other):
        heading, result, note = entries[key]
        lines += [f"### {heading}", ""]
        if result is None:
            lines += [f"Not fitted: {_strip_prefix(note or 'no data')}", ""]
            continue
        lines += _fit_table(result)
    return lines


def _strip_prefix(note: str) -> str:
    """A note that already says ``not fitted:`` or ``left out:`` without saying it twice."""
    for prefix in ("not fitted: ", "left out: "):
        if note.lower().startswith(prefix):
            return note[len(prefix) :]
    return note


def _fit_table(result: FitResult) -> list[str]:
    interval = f"{result.level:.0%} interval"
    if result.interval_kind and result.interval_kind != "none":
        interval += f" ({result.interval_kind})"
    rows = []
    for name, value in {**result.params, **result.derived}.items():
        lo_hi = result.intervals.get(name)
        shown = f"[{_num(lo_hi[0], 4)}, {_num(lo_hi[1], 4)}]" if lo_hi is not None else "–"
        rows.append([name, _num(value, 4), shown])
    summary = (
        f"n = {result.n}, objective = {result.objective:.4g}, "
        f"converged: {'yes' if result.converged else '**no**'}"
    )
    if result.resampling():
        summary += f"; bootstrap: {result.resampling()}"
    lines = [
        f"`{result.formula()}`",
        "",
        summary,
        "",
        *_markdown_table(["parameter", "value", interval], rows, align_right_from=1),
        "",
    ]
    return lines


def _frontier_table(fits: SweepFits) -> list[str]:
    rows = []
    for approach, frontier, note_key in (
        (1, fits.frontier1, "frontier1"),
        (2, fits.frontier2, "frontier2"),
        (3, fits.frontier3, "frontier3"),
    ):
        if frontier is None:
            note = fits.notes.get(note_key) or fits.notes.get("chinchilla", "not computed")
            rows.append([str(approach), APPROACHES[approach], "–", "–", _one_line(note)])
            continue
        interval = (
            f"[{_num(frontier.interval[0], 3)}, {_num(frontier.interval[1], 3)}]"
            if frontier.interval is not None
            else "–"
        )
        if approach == 3 and fits.chinchilla is not None:
            # Approach 3's points are the line drawn from the fit, not data: count the runs.
            source = f"chinchilla fit to {fits.chinchilla.n} runs"
        else:
            source = f"{len(frontier.points)} points"
        if frontier.envelope == "final":
            source += ", through the decayed end of each budget"
        if frontier.grouping == "flops_target":
            source += ", grouped by the asked compute budget"
        if frontier.resampled is not None:
            source += f"; bootstrap of {frontier.n_groups} {frontier.resampled}"
        rows.append([str(approach), APPROACHES[approach], _num(frontier.a, 3), interval, source])
    return [
        "N_opt ∝ C^a: how the compute-optimal model size grows with the compute budget "
        "(Hoffmann et al. found a ≈ 0.5; Kaplan et al. 0.73).",
        "",
        *_markdown_table(["approach", "method", "a", "interval", "from"], rows),
    ]


def _backtest_section(extra: dict[str, Any], k: int) -> list[str]:
    result: Backtest | None = extra.get("backtest")
    if result is None:
        return [f"Not run: {extra['notes'].get('backtest', 'no data')}"]
    table = result.table
    # Prediction intervals when the backtest's fit had bootstrap resamples.
    has_band = {"lo", "hi"} <= set(table.columns) and bool(table["lo"].notna().any())
    rows = []
    for row in table.to_dict(orient="records"):
        cells = [f"`{row['run']}`", _num(row.get("params"))]
        if result.law == "chinchilla":
            cells.append(_num(row.get("tokens")))
        cells += [_num(row["loss"], 4), _num(row["predicted"], 4)]
        if has_band:
            cells.append(f"[{_num(row['lo'], 4)}, {_num(row['hi'], 4)}]")
        cells.append(f"{100 * row['rel_error']:+.2f} %")
        rows.append(cells)
    header = ["run", "params N"] + (["tokens D"] if result.law == "chinchilla" else [])
    header += ["loss", "predicted"]
    if has_band:
        header.append(f"{result.fit.level:.0%} prediction interval")
    header.append("relative error")
    if result.law == "chinchilla":
        what = (
            f"Chinchilla L(N, D), over the runs, fitted on all but the {k} run(s) of most compute"
        )
    else:
        what = (
            f"Saturating L(N), over the best run of each size, fitted on all but the {k} "
            "largest size(s)"
        )
    return [
        f"{what} (`{result.fit.formula()}`), then asked to predict the held-out run(s):",
        "",
        *_markdown_table(header, rows, align_right_from=1),
    ]


def _figures_section(figures: Sequence[Path], base: Path, fits: SweepFits) -> list[str]:
    by_name: dict[str, dict[str, Path]] = {}
    for path in figures:
        by_name.setdefault(path.stem, {})[path.suffix.lstrip(".")] = path
    lines = []
    for name, caption in FIGURES.items():
        files = by_name.get(name)
        if not files:
            reason = fits.notes.get("frontier2" if name == "isoflop" else "chinchilla", "not drawn")
            lines += [f"*{caption}*: not drawn ({_one_line(reason)}).", ""]
            continue
        main = files.get("png") or next(iter(files.values()))
        links = ", ".join(f"[{fmt.upper()}]({_rel(p, base)})" for fmt, p in sorted(files.items()))
        lines += [f"![{caption}]({_rel(main, base)})", "", f"*{caption}* ({links})", ""]
    return lines


# --------------------------------------------------------------------------------------
# Helpers


def _markdown_table(
    header: list[str], rows: list[list[str]], align_right_from: int | None = None
) -> list[str]:
    def escape(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    align = [
        "---:" if align_right_from is not None and i >= align_right_from else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return lines


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _int(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sweep_name(runs: pd.DataFrame) -> str | None:
    if "sweep" in runs.columns and runs["sweep"].nunique() == 1:
        return str(runs["sweep"].iloc[0])
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
