"""``scaling-analyze``: fit scaling laws, find the compute-optimal frontier, plot, report.

Examples
--------
::

    scaling-analyze fit results/demo --law chinchilla --bootstrap 1000
    scaling-analyze fit results/demo --law power --x params --y flops
    scaling-analyze fit runs.csv --law chinchilla --params-col "Model Size" \\
        --flops-col "Training FLOP" --where "loss < 3.44" --json
    scaling-analyze frontier results/demo --approach 3 --budget 1e18
    scaling-analyze backtest results/demo --law saturating --k 2
    scaling-analyze plot results/demo --out results/demo/plots
    scaling-analyze report results/demo

Every command reads the same inputs (run records, CSV/TSV/JSONL, trainer_state.json,
TensorBoard logs; see :mod:`analysis.io`). Results go to stdout (``--json`` for
machine-readable output); warnings, notes and progress go to stderr. Bad input exits with
status 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from analysis.fit import FitResult

PROG = "scaling-analyze"
#: Default bootstrap resamples: enough for stable 95 % percentile intervals (the 2.5 %
#: tail holds 5 samples) while keeping a chinchilla fit to seconds.
DEFAULT_BOOTSTRAP = 200
LAWS = ("power", "saturating", "chinchilla")


# --------------------------------------------------------------------------------------
# Argument parsing


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scaling-analyze`` (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    data = common.add_argument_group("input")
    data.add_argument(
        "path",
        type=Path,
        help="a run, sweep or results dir; a .csv/.tsv/.jsonl table; a trainer_state.json; "
        "or TensorBoard event files",
    )
    data.add_argument(
        "--params",
        choices=("nonembed", "matmul", "total"),
        default="nonembed",
        help="parameter convention of run records used as N (default: nonembed, Kaplan's N)",
    )
    for name, what in (
        ("params", "parameter counts N"),
        ("tokens", "training tokens D (or TensorBoard tag)"),
        ("flops", "training compute C"),
        ("loss", "the loss (or TensorBoard tag / trainer_state key)"),
        ("run", "run names"),
        ("trunk", "the training trajectory (trunk) of each row; the bootstrap draws a trunk's rows together"),
    ):
        data.add_argument(f"--{name}-col", metavar="COL", help=f"source column holding {what}")
    data.add_argument(
        "--where", metavar="EXPR", help="pandas query to filter rows, e.g. 'loss < 3.44'"
    )
    data.add_argument(
        "--n-params",
        type=float,
        metavar="N",
        help="parameter count of a logged run (trainer_state, TensorBoard)",
    )
    data.add_argument(
        "--tokens-per-step",
        type=float,
        metavar="T",
        help="tokens per optimiser step when the log does not count tokens",
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")

    boot = _fit_options(DEFAULT_BOOTSTRAP)

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fit scaling laws to run records or imported logs.",
        epilog=f"Run '{PROG} COMMAND -h' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "fit", parents=[common, _fit_options(None)], help="fit a law and print it with intervals"
    )
    p.add_argument(
        "--law",
        choices=LAWS,
        default="chinchilla",
        help="power: y = a x^k; saturating: y = E + A x^-alpha; chinchilla: L = E + A/N^alpha + B/D^beta "
        "(default chinchilla)",
    )
    p.add_argument("--x", metavar="COL", help="input column for power/saturating (default params)")
    p.add_argument(
        "--curves",
        action="store_true",
        help="fit every evaluation of the learning curves, not each run's final point "
        "(automatic for a log of a single run)",
    )
    p.add_argument(
        "--y", metavar="COL", help="target column (default: flops for power, loss otherwise)"
    )
    p.set_defaults(handler=cmd_fit)

    p = sub.add_parser(
        "frontier", parents=[common, boot], help="compute-optimal frontier N_opt ∝ C^a"
    )
    p.add_argument(
        "--approach",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="1: envelope of the learning curves; 2: IsoFLOP parabolas (grouped by the "
        "asked compute flops_target when the runs have one); 3: from the chinchilla fit (default)",
    )
    p.add_argument(
        "--envelope",
        choices=("auto", "final", "all"),
        default="auto",
        help="approach 1: the points the curves go through: final (each run's last, decayed "
        "point), all (every evaluation), auto (final for wsd/wsd_s records, else all; default)",
    )
    p.add_argument(
        "--budget",
        type=float,
        action="append",
        metavar="C",
        help="also recommend N, D and the nearest run size for this compute (FLOP); repeatable; approach 3",
    )
    p.set_defaults(handler=cmd_frontier)

    p = sub.add_parser(
        "backtest",
        parents=[common, _fit_options(0)],
        help="fit on smaller runs, predict the largest",
    )
    p.add_argument(
        "--law", choices=LAWS, default="saturating", help="law to backtest (default saturating)"
    )
    p.add_argument(
        "--k", type=int, default=1, help="how many of the largest runs to hold out (default 1)"
    )
    p.add_argument(
        "--x", metavar="COL", default="params", help="size column for saturating (default params)"
    )
    p.add_argument("--y", metavar="COL", default="loss", help="target column (default loss)")
    p.add_argument(
        "--curves",
        action="store_true",
        help="use every evaluation of the learning curves (automatic for a single run): "
        "e.g. --x tokens predicts the end of a curve from its start",
    )
    p.set_defaults(handler=cmd_backtest)

    p = sub.add_parser("plot", parents=[common, boot], help="draw every figure (PNG and SVG)")
    p.add_argument(
        "--out", type=Path, help="output dir (default: <sweep>/plots, or ./<file stem>_plots)"
    )
    p.add_argument(
        "--format", nargs="+", default=["png", "svg"], help="file formats (default png svg)"
    )
    p.add_argument("--title", help="prefix of every figure title (default: the sweep's name)")
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser(
        "report", parents=[common, boot], help="write a Markdown report of one sweep"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="report file (default: <sweep>/report.md, or ./<file stem>_report.md)",
    )
    p.add_argument("--k", type=int, default=1, help="runs held out by the backtest (default 1)")
    p.set_defaults(handler=cmd_report)

    from analysis.downstream import add_parser as add_downstream

    add_downstream(sub, _fit_options(DEFAULT_BOOTSTRAP))
    return parser


def _fit_options(bootstrap: int | None) -> argparse.ArgumentParser:
    """Options of the fits (a new parser each time: parents share their action objects).

    ``bootstrap=None`` means: chosen by the law (see :func:`_bootstrap_for`).
    """
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("fitting")
    shown = (
        f"{DEFAULT_BOOTSTRAP}; for power 0, which gives exact Student-t intervals"
        if bootstrap is None
        else str(bootstrap)
    )
    group.add_argument(
        "--bootstrap",
        type=int,
        default=bootstrap,
        metavar="N",
        help=f"bootstrap resamples for intervals and bands (default {shown}; 0 = none)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    group.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    group.add_argument(
        "--delta", type=float, default=1e-3, help="Huber threshold on log residuals (default 1e-3)"
    )
    return options


# --------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scaling-analyze``; return the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from analysis.io import DataError, OptionalDependencyError

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: note: %(message)s"))
    handler.addFilter(_Once())
    logger = logging.getLogger("analysis")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            shown: set[str] = set()
            warnings.showwarning = lambda message, category, *_a, **_k: _show_warning(
                message, category, shown
            )
            return args.handler(args)
    except (DataError, ValueError, OptionalDependencyError, OSError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__  # one line, always
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class _Once(logging.Filter):
    """Let each message through once (commands may load the same data twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _show_warning(message: Warning | str, category: type[Warning], shown: set[str]) -> None:
    """Print a warning once, as one line; optimiser noise is left out."""
    from analysis.io import DataWarning

    if issubclass(category, DataWarning):
        line = f"{PROG}: warning: {message}"
    elif issubclass(category, (RuntimeWarning, DeprecationWarning, FutureWarning)):
        return  # numerical noise from the optimiser (overflow in a discarded start) is not news
    else:
        line = f"{PROG}: warning: {category.__name__}: {message}"
    if line not in shown:
        shown.add(line)
        print(line, file=sys.stderr)


def progress(text: str) -> None:
    """A line of progress on stderr (stdout is kept for results)."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Commands


def cmd_fit(args: argparse.Namespace) -> int:
    from analysis.fit import fit_frame
    from analysis.io import require

    df = _load_for_fit(args)
    x, y = _fit_columns(args.law, args.x, args.y)
    used = require(df, x + [y], f"the {args.law} fit")
    started = time.perf_counter()
    n_boot = _bootstrap_for(args.law, args.bootstrap)
    what = f"fitting {args.law} on {len(used)} points"
    if n_boot:
        what += f" with {n_boot} bootstrap resamples of {_groups_text(used)}"
    progress(what + " ...")
    kw: dict[str, Any] = {"bootstrap": n_boot, "seed": args.seed, "level": args.level}
    if args.law != "power":
        kw["delta"] = args.delta
    if args.law == "chinchilla":
        result = fit_frame(used, "chinchilla", **kw)
    else:
        result = fit_frame(used, args.law, x=x[0], y=y, **kw)
    progress(f"done in {time.perf_counter() - started:.1f} s")
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_fit(result, source=str(args.path), convention=_convention_note(args, df)))
    return 0


def cmd_frontier(args: argparse.Namespace) -> int:
    from analysis import optimal
    from analysis.fit import fit_frame
    from analysis.io import require

    allocations = None
    if args.budget and args.approach != 3:
        raise ValueError(
            "--budget needs --approach 3 (the allocation comes from the chinchilla fit)"
        )
    if args.envelope != "auto" and args.approach != 1:
        raise ValueError("--envelope applies to --approach 1 (the envelope of the curves)")
    if args.approach == 1:
        curves = require(_load(args, kind="curves"), ["flops", "params", "loss"], "approach 1")
        frontier = optimal.approach1(curves, points=args.envelope)
    elif args.approach == 2:
        runs = require(_load(args), ["flops", "params", "loss"], "approach 2")
        frontier = optimal.approach2(runs)
    else:
        runs = require(_load(args), ["params", "tokens", "loss"], "approach 3 (chinchilla fit)")
        what = f"fitting chinchilla on {len(runs)} runs"
        if args.bootstrap:
            what += f" with {args.bootstrap} bootstrap resamples of {_groups_text(runs)}"
        progress(what + " ...")
        started = time.perf_counter()
        result = fit_frame(
            runs,
            "chinchilla",
            bootstrap=args.bootstrap,
            seed=args.seed,
            level=args.level,
            delta=args.delta,
        )
        progress(f"done in {time.perf_counter() - started:.1f} s")
        frontier = optimal.approach3(result)
        if args.budget:
            ladder = sorted(runs["params"].unique())
            allocations = [optimal.allocate(c, result, ladder=ladder) for c in args.budget]
    if args.json:
        out = frontier.to_dict()
        if allocations is not None:
            out["allocations"] = [a.to_dict() for a in allocations]
        _print_json(out)
    else:
        print(format_frontier(frontier))
        for allocation in allocations or []:
            print(format_allocation(allocation))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from analysis.backtest import backtest
    from analysis.io import require

    df = _load_for_fit(args)
    needed = ["params", "tokens", "flops", "loss"] if args.law == "chinchilla" else [args.x, args.y]
    used = require(df, needed, f"the {args.law} backtest")
    kw: dict[str, Any] = {"bootstrap": args.bootstrap, "seed": args.seed}
    if args.law != "power":
        kw["delta"] = args.delta
    result = backtest(used, args.law, k=args.k, x=args.x, y=args.y, **kw)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_backtest(result))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from analysis.plots import plot_all

    runs, curves = _load_runs_and_curves(args)
    out = args.out or _default_out(args.path, "plots")
    title = args.title if args.title is not None else _sweep_title(runs)
    written = plot_all(
        runs,
        curves,
        out,
        formats=tuple(args.format),
        bootstrap=args.bootstrap,
        seed=args.seed,
        convention=_convention(args, runs),
        title=title,
        progress=progress,
    )
    # fine-tuning and compression records beside the sweep, when there are some
    from analysis.downstream import plot_downstream

    written += plot_downstream(
        args.path,
        out,
        tuple(args.format),
        params=args.params,
        bootstrap=args.bootstrap,
        seed=args.seed,
        title=title,
        progress=progress,
    )
    if args.json:
        _print_json({"files": [str(p) for p in written]})
    else:
        for path in written:
            print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report

    runs, curves = _load_runs_and_curves(args)
    out = args.out or _default_out(args.path, "report.md")
    figures = out.parent / "plots" if args.out else _default_out(args.path, "plots")
    path = write_report(
        runs,
        curves,
        out,
        figures_dir=figures,
        source=str(args.path),
        convention=_convention(args, runs),
        bootstrap=args.bootstrap,
        seed=args.seed,
        k=args.k,
        progress=progress,
    )
    if args.json:
        _print_json({"report": str(path)})
    else:
        print(path)
    return 0


# --------------------------------------------------------------------------------------
# Loading


def _mapping(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "params": args.params,
        "where": args.where,
        "params_col": args.params_col,
        "tokens_col": args.tokens_col,
        "flops_col": args.flops_col,
        "loss_col": args.loss_col,
        "run_col": args.run_col,
        "trunk_col": args.trunk_col,
        "n_params": args.n_params,
        "tokens_per_step": args.tokens_per_step,
    }


def _load(args: argparse.Namespace, kind: str = "runs") -> pd.DataFrame:
    from analysis.io import load

    return load(args.path, kind=kind, **_mapping(args))


def _load_for_fit(args: argparse.Namespace) -> pd.DataFrame:
    """Final points of the runs; the curves with --curves, or when there is a single run
    (a trainer_state.json, one TensorBoard run): its learning curve is then the data."""
    if args.curves:
        return _load(args, kind="curves")
    runs = _load(args)
    if len(runs) == 1:
        curves = _load(args, kind="curves")
        if len(curves) > 1:
            progress(f"one run: fitting its learning curve ({len(curves)} evaluations)")
            return curves
    return runs


def _load_runs_and_curves(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Runs, and curves when the source has them (a plain table has none)."""
    runs = _load(args)
    curves = _load(args, kind="curves")
    if "step" not in curves.columns:
        curves = None
    return runs, curves


def _fit_columns(law: str, x: str | None, y: str | None) -> tuple[list[str], str]:
    if law == "chinchilla":
        if x is not None:
            raise ValueError("--x does not apply to chinchilla, which uses params and tokens")
        return ["params", "tokens"], y or "loss"
    if law == "power":
        return [x or "params"], y or "flops"
    return [x or "params"], y or "loss"


def _groups_text(df: pd.DataFrame) -> str:
    """What the bootstrap will draw from ``df``, e.g. ``"12 trunks"``."""
    from analysis.resample import bootstrap_groups

    labels, kind = bootstrap_groups(df)
    count = len(df) if labels is None else int(labels.max()) + 1
    return f"{count} {kind}"


def _bootstrap_for(law: str, asked: int | None) -> int:
    """Resamples for a fit: as asked, else none for power (its t-intervals are exact for a
    straight line in log-log with normal errors) and DEFAULT_BOOTSTRAP for the others."""
    if asked is not None:
        if asked < 0:
            raise ValueError(f"--bootstrap must be >= 0, got {asked}")
        return asked
    return 0 if law == "power" else DEFAULT_BOOTSTRAP


def _default_out(path: Path, name: str) -> Path:
    """Inside a sweep directory; for an imported file, in the current directory (the
    file may sit somewhere read-only, and is not ours to write next to)."""
    if path.is_dir():
        return path / name
    return Path.cwd() / f"{path.stem}_{name}"


def _sweep_title(runs: pd.DataFrame) -> str | None:
    if "sweep" in runs.columns and runs["sweep"].nunique() == 1:
        return str(runs["sweep"].iloc[0])
    return None


def _convention(args: argparse.Namespace, df: pd.DataFrame) -> str | None:
    """The parameter convention behind ``params``: ours for run records, else unknown."""
    if "params_nonembed" in df.columns and args.params_col is None:
        return args.params
    return None


def _convention_note(args: argparse.Namespace, df: pd.DataFrame) -> str | None:
    convention = _convention(args, df)
    names = {"nonembed": "non-embedding", "matmul": "non-embedding + LM head", "total": "total"}
    return names[convention] if convention else None


# --------------------------------------------------------------------------------------
# Human-readable output


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
    if result.law == "chinchilla":
        lines.append("")
        lines.append("  a, b: exponents of the compute-optimal N_opt ∝ C^a and D_opt ∝ C^b")
    lines.append("")
    lines.append(
        f"objective {result.objective:.6g}, converged: {'yes' if result.converged else 'NO'}"
    )
    if result.resampling():
        lines.append(f"bootstrap: {result.resampling()}")
    if not result.intervals:
        lines.append("no intervals: use --bootstrap N")
    return "\n".join(lines)


def format_frontier(frontier: Any, max_rows: int = 12) -> str:
    """The exponent with its interval, then (up to ``max_rows``, evenly spaced) its points."""
    import numpy as np

    name = {1: "envelope of the learning curves", 2: "IsoFLOP parabolas", 3: "chinchilla fit"}
    lines = [f"approach {frontier.approach} ({name[frontier.approach]}): N_opt ∝ C^a"]
    interval = frontier.interval
    a = f"  a = {_num(frontier.a)}"
    if interval is not None:
        a += f"   [{_num(interval[0])}, {_num(interval[1])}]"
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
        rows = [tuple(str(c) for c in shown.columns)]
        rows += [tuple(_num(v) for v in row) for row in shown.itertuples(index=False)]
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
    if grouping == "flops_target":
        return "IsoFLOP groups: runs grouped by the asked compute budget (flops_target)"
    if grouping == "flops_tolerance":
        return "IsoFLOP groups: runs grouped by the compute they achieved (no flops_target)"
    if grouping:
        return f"IsoFLOP groups: runs grouped by the column {grouping!r}"
    resampled = getattr(frontier, "resampled", None)
    if resampled:
        return f"interval: bootstrap of the chinchilla fit, resampling {frontier.n_groups} {resampled}"
    return ""


def format_allocation(allocation: Any) -> str:
    text = (
        f"budget C = {_num(allocation.flops)} FLOP: N = {_num(allocation.params)}, "
        f"D = {_num(allocation.tokens)} tokens, predicted loss {_num(allocation.loss)}"
    )
    if allocation.nearest:
        n = allocation.nearest
        text += (
            f"\n  nearest size in the ladder: N = {_num(n['params'])}, "
            f"D = C/(6N) = {_num(n['tokens'])}, predicted loss {_num(n['loss'])}"
        )
    return text


def format_backtest(result: Any) -> str:
    lines = [
        f"{result.law} fitted on all but the {result.k} largest run(s):",
        f"  {result.fit.formula()}",
        "",
    ]
    if result.fit.resampling():
        lines[-1:-1] = [f"  bootstrap: {result.fit.resampling()}"]
    table = result.table
    columns = [
        c
        for c in ("run", "params", "tokens", "flops", "loss", "predicted", "rel_error")
        if c in table
    ]
    rows = [tuple(columns)]
    for row in table[columns].itertuples(index=False):
        rows.append(tuple(_num(v) if not isinstance(v, str) else v for v in row))
    lines += _table(rows)
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


if __name__ == "__main__":
    sys.exit(main())
