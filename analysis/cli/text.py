"""The plain-text and JSON output of ``scaling-analyze``."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.fit import FitResult


def format_fit(result: FitResult, source: str | None = None, convention: str | None = None) -> str:
    """The formula with numbers, then a table of parameters with their intervals."""
    head = f"{result.law} fit of {result.n} points"
    if source:
        head += f" from {source}"
    if convention:
        head += f" (N = {convention} parameters)"
    lines = [head, "", f"  {result.formula()}", ""]
    level = f"{result.level:.0%} interval"
    if result.intervals:
        level += f" ({result.interval_kind})"
    rows = [("parameter", "value", level)]
    for name, value in {**result.params, **result.derived}.items():
        interval = result.intervals.get(name)
        shown = f"[{_num(interval[0])}, {_num(interval[1])}]" if interval is not None else "-"
        rows.append((name, _num(value), shown))
    lines += _table(rows)
    if result.law in ("chinchilla", "kaplan"):
        lines.append("")
        lines.append("  a, b: exponents of the compute-optimal N_opt ∝ C^a and D_opt ∝ C^b")
        if not result.identified:
            lines.append("  (from an unidentified fit: not estimates)")
    lines.append("")
    lines.append(
        f"objective {result.objective:.6g}, converged: {'yes' if result.converged else 'NO'}, "
        f"identified: {'yes' if result.identified else 'NO'}"
    )
    for reason in result.identification:
        lines.append(f"  not identified: {reason}")
    if result.resampling():
        lines.append(f"bootstrap: {result.resampling()}")
    if not result.intervals:
        lines.append("no intervals: use --bootstrap N")
    return "\n".join(lines)


def _times(factor: float | None) -> str:
    """An extrapolation factor: ``37×``; empty within the data (or unknown)."""
    if factor is None or not math.isfinite(factor) or factor <= 1:
        return ""
    return _factor(factor)


def _factor(factor: float) -> str:
    """``1.9×``, ``37×``, ``1667×``."""
    return f"{factor:.1f}×" if factor < 10 else f"{factor:.0f}×"


def _reach(beyond: dict[str, float], scale: str) -> str:
    """``37× the largest C in the data (5.1× the largest N)``; empty inside the data."""
    symbol = {"flops": "C", "params": "N", "tokens": "D"}
    main = beyond.get(scale)
    if main is None or not math.isfinite(main):
        return ""
    text = f"{_factor(main)} the largest {symbol.get(scale, scale)} in the data"
    n_factor = beyond.get("params", math.nan) if scale == "flops" else math.nan
    if math.isfinite(n_factor) and n_factor > 1:
        text += f" ({_factor(n_factor)} the largest N)"
    return text


def _interval_text(interval: Any) -> str:
    if interval is None or not all(math.isfinite(v) for v in interval):
        return "-"
    return f"[{_num(interval[0])}, {_num(interval[1])}]"


def format_frontier(frontier: Any, max_rows: int = 12) -> str:
    """The exponent with its interval, then (up to ``max_rows``, evenly spaced) its points;
    rows past the data (approach 3) say how far, and an unidentified fit is marked."""
    import numpy as np

    law = getattr(frontier, "law", None) or "chinchilla"
    name = {1: "envelope of the learning curves", 2: "IsoFLOP parabolas", 3: f"{law} fit"}
    lines = [f"approach {frontier.approach} ({name[frontier.approach]}): N_opt ∝ C^a"]
    interval = frontier.interval
    a = f"  a = {_num(frontier.a)}"
    if interval is not None:
        a += f"   [{_num(interval[0])}, {_num(interval[1])}]"
    if not getattr(frontier, "identified", True):
        a += "   (not identified: not an estimate)"
    lines.append(a)
    if getattr(frontier, "b", None) is not None:
        lines.append(f"  b = {_num(frontier.b)}   (D_opt ∝ C^b)")
    how = _frontier_method(frontier)
    if how:
        lines.append(f"  {how}")
    points = frontier.points
    if points is not None and len(points):
        lines.append("")
        shown = points
        if len(points) > max_rows:
            shown = points.iloc[np.unique(np.linspace(0, len(points) - 1, max_rows).astype(int))]
            lines.append(f"  {len(shown)} of {len(points)} points (all with --json):")
        columns = [str(c) for c in shown.columns]
        rows = [tuple("past the data" if c == "extrapolation" else c for c in columns)]
        for row in shown.itertuples(index=False):
            rows.append(
                tuple(
                    _times(v) if c == "extrapolation" else _num(v)
                    for c, v in zip(columns, row, strict=True)
                )
            )
        lines += _table(rows)
    return "\n".join(lines)


def _frontier_method(frontier: Any) -> str:
    """One line on how the frontier's points were obtained (empty when there is nothing
    to say)."""
    envelope = getattr(frontier, "envelope", None)
    if envelope == "final":
        return "envelope through the final (decayed) point of every budget record"
    if envelope == "all":
        return "envelope through every evaluation of the learning curves"
    grouping = getattr(frontier, "grouping", None)
    if grouping:
        if grouping == "flops_target":
            text = "IsoFLOP groups: runs grouped by the asked compute budget (flops_target)"
        elif grouping == "flops_tolerance":
            text = "IsoFLOP groups: runs grouped by the compute they achieved (no flops_target)"
        else:
            text = f"IsoFLOP groups: runs grouped by the column {grouping!r}"
        method = getattr(frontier, "method", None)
        if method == "porian":
            text += (
                "; parabolas near each minimum, regression weighted by their spread (Porian et al.)"
            )
        elif method == "hoffmann":
            text += "; one parabola over every size, unweighted regression (Hoffmann et al.)"
        return text
    resampled = getattr(frontier, "resampled", None)
    if resampled:
        return (
            f"interval: bootstrap of the {getattr(frontier, 'law', None) or 'chinchilla'} fit, "
            f"resampling {frontier.n_groups} {resampled}"
        )
    return ""


def format_allocation(allocation: Any) -> str:
    """One budget's N, D and loss with their intervals, how far past the data, and the
    ladder member to train."""
    iv = allocation.intervals

    def value(name: str) -> str:
        text = _num(getattr(allocation, name))
        return f"{text} {_interval_text(iv[name])}" if name in iv else text

    text = (
        f"budget C = {_num(allocation.flops)} FLOP: N = {value('params')}, "
        f"D = {value('tokens')} tokens ({_num(allocation.tokens_per_param)} per parameter), "
        f"predicted loss {value('loss')}"
    )
    if iv:
        text += f"   ({allocation.level:.0%} bootstrap intervals)"
    reach = _reach(allocation.extrapolation, "flops")
    if reach and allocation.extrapolation.get("flops", 0) > 1:
        text += f"\n  extrapolation: {reach}"
    if allocation.nearest:
        n = allocation.nearest
        text += (
            f"\n  nearest size in the ladder: N = {_num(n['params'])}, "
            f"D = C/(6N) = {_num(n['tokens'])}, predicted loss {_num(n['loss'])}"
        )
        if "interval" in n:
            text += f" {_interval_text(n['interval'])}"
    if not allocation.identified:
        text += "\n  (from an unidentified fit: not a recommendation)"
    return text


def format_predictions(predictions: Any, source: str | None = None) -> str:
    """The fitted law, then one row per prediction: the point, D/N, the loss and its band,
    and how far past the data."""
    fit = predictions.fit
    head = f"{fit.law} fit of {fit.n} points" + (f" from {source}" if source else "")
    lines = [head, f"  {fit.formula()}", ""]
    level = f"{fit.level:.0%} interval"
    rows = [("kind", "params", "tokens", "flops", "D/N", fit.target or "loss", level, "past data")]
    for p in predictions.predictions:
        rows.append(
            (
                p.kind,
                _num(p.params),
                _num(p.tokens),
                _num(p.flops),
                _num(p.tokens_per_param),
                _num(p.loss),
                _interval_text(p.interval),
                _times(p.extrapolation),
            )
        )
    lines += _table(rows)
    for p in predictions.predictions:
        if p.intervals:
            lines.append(
                f"  optimum at C = {_num(p.flops)}: N {_interval_text(p.intervals['params'])}, "
                f"D {_interval_text(p.intervals['tokens'])}"
            )
    farthest = predictions.farthest
    if farthest is not None:
        reach = _reach(farthest.beyond, farthest.scale)
        if farthest.extrapolation > 1 and reach:
            lines.append(f"extrapolation: {reach}")
        else:
            lines.append("extrapolation: none, every point lies within the data")
    if not any(p.interval for p in predictions.predictions):
        lines.append("no intervals: use --bootstrap N")
    if not fit.identified:
        lines.append("from an unidentified fit: these are not predictions (see the warning)")
    return "\n".join(lines)


def format_backtest(result: Any) -> str:
    """The fit, what was held out, each held-out row with its prediction interval and
    whether the actual value fell inside, and the errors."""
    lines = [
        f"{result.law} fitted on the other {result.fit.n} rows; held out {result.held_out}:",
        f"  {result.fit.formula()}",
    ]
    if result.fit.resampling():
        lines.append(f"  bootstrap: {result.fit.resampling()}")
    lines.append("")
    table = result.table
    level = f"{result.fit.level:.0%} interval"
    columns = [
        c for c in ("run", "params", "tokens", "flops", "loss", result.y, "predicted") if c in table
    ]
    columns = list(dict.fromkeys(columns))
    rows = [(*columns, level, "inside", "rel_error", "past data")]
    for record in table.to_dict(orient="records"):
        cells = [_num(record[c]) if not isinstance(record[c], str) else record[c] for c in columns]
        inside = record["inside"]
        rows.append(
            (
                *cells,
                _interval_text((record["lo"], record["hi"])),
                "-" if inside is None else ("yes" if inside else "NO"),
                f"{record['rel_error']:+.2%}",
                _times(record["extrapolation"]),
            )
        )
    lines += _table(rows)
    lines.append("")
    summary = (
        f"mean |rel_error| {result.mean_abs_rel_error:.2%}, max {result.max_abs_rel_error:.2%}"
    )
    if result.coverage is not None:
        inside = int(round(result.coverage * len(table)))
        summary += f"; {inside} of {len(table)} inside their {level}s"
    else:
        summary += "; no intervals: use --bootstrap N"
    lines.append(summary)
    if not result.fit.identified:
        lines.append(
            "from an unidentified fit: the predictions are not the law's (see the warning)"
        )
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _print_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), indent=2))


def _jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars to Python, frames to records, NaN/inf to null."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
