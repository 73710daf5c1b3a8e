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

Every command reads the same inputs (run records, CSV/TSV/JSONL, Hugging Face run
directories, TensorBoard and W&B logs; see :mod:`analysis.io`). Results go to stdout (``--json`` for
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
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd

    from analysis.fit import FitResult

PROG = "scaling-analyze"
#: Default bootstrap resamples: enough for stable 95 % percentile intervals (the 2.5 %
#: tail holds 5 samples) while keeping a chinchilla fit to seconds.
DEFAULT_BOOTSTRAP = 200
LAWS = (
    "power",
    "saturating",
    "chinchilla",
    "bnsl",
    "bnsl2",
    "kaplan",
    "overtraining",
    "data_constrained",
)
# laws of several inputs that read fixed columns (analysis.fit.fit_frame): no --x
TWO_INPUT_LAWS = ("chinchilla", "kaplan", "overtraining", "data_constrained")


# --------------------------------------------------------------------------------------
# Argument parsing


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scaling-analyze`` (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    data = common.add_argument_group("input")
    data.add_argument(
        "path",
        type=Path,
        help="a run, sweep or results dir; a .csv/.tsv/.jsonl table (or a W&B runs or "
        "history export); a trainer_state.json or a directory of Hugging Face run dirs; "
        "W&B offline runs; or TensorBoard event files",
    )
    data.add_argument(
        "--params",
        choices=("nonembed", "matmul", "total"),
        default="nonembed",
        action=_Convention,
        help="parameter convention of run records used as N (default: nonembed, Kaplan's N); "
        "for a table, its params_<convention> column",
    )
    for name, what in (
        (
            "params",
            "parameter counts N (for training logs: the hparam, tag or config key, or the "
            "--params-map file's column)",
        ),
        ("tokens", "training tokens D (or TensorBoard tag)"),
        ("flops", "training compute C"),
        ("loss", "the loss (or TensorBoard tag / trainer_state key)"),
        ("run", "run names"),
        (
            "trunk",
            "the training trajectory (trunk) of each row; the bootstrap draws a trunk's rows together",
        ),
    ):
        data.add_argument(f"--{name}-col", metavar="COL", help=f"source column holding {what}")
    data.add_argument(
        "--where", metavar="EXPR", help="row filter (column names, numbers, comparisons, and/or/not; no code), e.g. 'loss < 3.44'"
    )
    data.add_argument(
        "--n-params",
        type=_positive_number,
        metavar="N",
        help="one parameter count for every run of a training log (trainer_state, "
        "TensorBoard, W&B)",
    )
    data.add_argument(
        "--params-map",
        type=Path,
        metavar="FILE",
        help="CSV run,params: the parameter count of each run of a training log (every "
        "run must be listed; --params-col names another count column)",
    )
    data.add_argument(
        "--tokens-per-step",
        type=_positive_number,
        metavar="T",
        help="tokens per optimiser step when the log does not count tokens",
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    common.add_argument(
        "--quiet",
        action=_Quiet,
        help="no progress bars (they are shown only on a terminal anyway)",
    )

    boot = _fit_options(DEFAULT_BOOTSTRAP)

    parser = _Parser(
        prog=PROG,
        description="Fit scaling laws to run records or imported logs.",
        epilog=f"Run '{PROG} COMMAND -h' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "fit",
        parents=[common, _fit_options(None)],
        help="fit a law and print it with intervals",
        **_explained(
            "Fit a scaling law to the rows of PATH and print its parameters with bootstrap "
            "intervals, its residuals and whether the data pin it down (identified). Without "
            "--law, the law the data can tell is chosen and the choice said on one line: "
            "Chinchilla's L(N, D) when N and D vary independently, else L(N).",
            "scaling-analyze fit results/demo --law chinchilla",
            "scaling-analyze fit results/demo --law power --x params --y flops",
            "scaling-analyze fit runs.csv --law saturating --x flops --where 'loss < 3.44' --json",
        ),
    )
    _add_law_options(p)
    p.add_argument(
        "--fix",
        action="append",
        metavar="NAME=VALUE",
        help="hold a parameter at a value, e.g. --fix E=1.69 (repeatable); it gets no interval",
    )
    p.add_argument(
        "--tie",
        action="append",
        metavar="NAME=NAME",
        help="set the second parameter equal to the first, e.g. --tie alpha=beta "
        "(repeatable); only the first gets an interval",
    )
    p.set_defaults(handler=cmd_fit)

    p = sub.add_parser(
        "predict",
        parents=[_predict_common(common), _fit_options(None)],
        conflict_handler="resolve",  # --params: sizes here (see _SizesOrConvention)
        help="predict the loss at given N and D, a compute budget or a ladder, with bands",
        **_explained(
            "Fit the law as fit does, then evaluate it: at --params N --tokens D (two of "
            "--params, --tokens, --flops fix the third by C = 6ND), at a compute budget "
            "--flops C on the compute-optimal frontier, or for each size of a --ladder "
            "trained on that budget. Each prediction has its bootstrap band, its tokens per "
            "parameter and how far past the data it reaches.",
            "scaling-analyze predict results/demo --flops 1e14",
            "scaling-analyze predict results/demo --params 1e6 --tokens 2e7",
            "scaling-analyze predict results/demo --flops 1e15 --ladder 1e5 1e6 1e7 --json",
        ),
    )
    _add_law_options(p)
    p.add_argument(
        "--params",
        nargs="+",
        action=_SizesOrConvention,
        dest="at_params",
        metavar="N",
        help="model sizes to predict at (a convention name nonembed|matmul|total still "
        "sets the parameter convention of run records)",
    )
    p.set_defaults(params="nonembed")
    p.add_argument(
        "--tokens", nargs="+", type=float, metavar="D", help="token counts to predict at"
    )
    p.add_argument(
        "--flops",
        nargs="+",
        type=float,
        metavar="C",
        help="compute budgets (C = 6ND): alone, the compute-optimal point of each (chinchilla); "
        "with --params or --tokens, the other follows from C",
    )
    p.add_argument(
        "--ladder",
        nargs="*",
        type=float,
        metavar="N",
        help="with --flops: each of these sizes trained on the whole budget (no sizes: the "
        "data's own)",
    )
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "frontier",
        parents=[common, boot],
        help="compute-optimal frontier N_opt ∝ C^a",
        **_explained(
            "Find the compute-optimal frontier N_opt ∝ C^a and D_opt ∝ C^b by one of "
            "Chinchilla's three approaches: the envelope of the learning curves (1), "
            "IsoFLOP parabolas (2) or the L(N, D) fit (3, the default), with bootstrap "
            "intervals; --budget C also recommends N, D and the nearest run size for it.",
            "scaling-analyze frontier results/demo --approach 3 --budget 1e18",
            "scaling-analyze frontier results/isoflop --approach 2",
        ),
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
        "--method",
        choices=("porian", "hoffmann"),
        default="porian",
        help="approach 2: porian (default): a parabola through the sizes within 4x of each "
        "profile's lowest run, its vertex's spread by bootstrap, a weighted regression; "
        "hoffmann: one parabola over every size, an unweighted regression",
    )
    p.add_argument(
        "--budget",
        type=_positive_number,
        action="append",
        metavar="C",
        help="also recommend N, D and the nearest run size for this compute (FLOP); repeatable; approach 3",
    )
    _add_strict(p)
    p.set_defaults(handler=cmd_frontier)

    p = sub.add_parser(
        "backtest",
        parents=[common, _fit_options(None)],
        help="fit on smaller runs, predict the largest, with prediction intervals",
        **_explained(
            "Check a law by what it would have predicted: hold out the --k largest rows (by "
            "compute C for L(N, D), by --x otherwise) or those matching --test-where, fit "
            "the rest, and print each held-out row's 95 % prediction interval and whether "
            "the actual value fell inside.",
            "scaling-analyze backtest results/demo --k 2",
            "scaling-analyze backtest runs.csv --law saturating --test-where 'split == \"test\"'",
        ),
    )
    _add_law_options(p, curves_help="e.g. --x tokens predicts the end of a curve from its start")
    p.add_argument(
        "--k",
        type=int,
        default=1,
        help="how many of the largest rows to hold out (default 1): largest compute C for "
        "chinchilla, largest --x otherwise",
    )
    p.add_argument(
        "--test-where",
        metavar="EXPR",
        help="hold out the rows matching this row filter (as --where) instead (e.g. a benchmark's own "
        "split column: 'split == \"test\"'); fit on the others",
    )
    p.set_defaults(handler=cmd_backtest)

    p = sub.add_parser(
        "plot",
        parents=[common, boot],
        help="draw every figure (PNG and SVG)",
        **_explained(
            "Draw every figure of PATH into --out: the learning curves, the fitted law "
            "against the data, the compute-optimal frontier, IsoFLOP profiles when the "
            "runs have them, residuals, and the downstream figures when fine-tuning or "
            "compression records lie beside the sweep.",
            "scaling-analyze plot results/demo --out results/demo/plots",
            "scaling-analyze plot runs.csv --format png --title 'my sweep'",
        ),
    )
    p.add_argument(
        "--out", type=Path, help="output dir (default: <sweep>/plots, or ./<file stem>_plots)"
    )
    p.add_argument(
        "--format", nargs="+", default=["png", "svg"], help="file formats (default png svg)"
    )
    p.add_argument("--title", help="prefix of every figure title (default: the sweep's name)")
    p.add_argument(
        "--law",
        choices=("saturating", "chinchilla"),
        default=None,
        help="law of the loss fitted over the runs: chinchilla L(N, D) or saturating "
        "L(N) (default: chinchilla when N and D vary independently, else saturating; the "
        "choice and its reason are printed)",
    )
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser(
        "report",
        parents=[common, boot],
        help="write a Markdown report of one sweep",
        **_explained(
            "Write a Markdown report of one sweep: its runs, the fitted law with intervals, "
            "the frontier, a backtest of the --k largest runs, and the figures, drawn "
            "beside the report.",
            "scaling-analyze report results/demo",
            "scaling-analyze report results/demo --out docs/demo-report.md --k 2",
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        help="report file (default: <sweep>/report.md, or ./<file stem>_report.md)",
    )
    p.add_argument("--k", type=int, default=1, help="runs held out by the backtest (default 1)")
    p.add_argument(
        "--law",
        choices=("saturating", "chinchilla"),
        default=None,
        help="law of the loss fitted over the runs and backtested: chinchilla L(N, D) or "
        "saturating L(N) (default: chinchilla when N and D vary independently, else "
        "saturating; the choice and its reason are printed)",
    )
    p.set_defaults(handler=cmd_report)

    from analysis.downstream import add_parser as add_downstream

    add_downstream(sub, _fit_options(DEFAULT_BOOTSTRAP))
    downstream = sub.choices["downstream"]
    downstream.epilog = _explained("", "scaling-analyze downstream results/demo")["epilog"]
    downstream.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


class _Quiet(argparse.Action):
    """``--quiet``: turns the progress bars off as it is parsed (analysis/progress.py)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        from analysis import progress

        progress.set_quiet(True)
        setattr(namespace, self.dest, True)


def _explained(description: str, *examples: str) -> dict[str, Any]:
    """A sub-parser's description paragraph and its examples, laid out as written."""
    import textwrap

    lines = "\n".join(f"  {e}" for e in examples)
    return {
        "description": textwrap.fill(description, width=88),
        "epilog": f"examples:\n{lines}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line, as those of the data are (argparse prints the
    whole usage first); ``-h`` shows the usage. Subcommands' parsers are of this class
    too (``add_subparsers`` makes them of its parser's)."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} -h')\n")


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


def _add_law_options(p: argparse.ArgumentParser, curves_help: str = "") -> None:
    """--law, --x, --y, --curves and --strict: what a command that fits a law takes."""
    p.add_argument(
        "--law",
        choices=LAWS,
        default=None,
        help="power: y = a x^k; saturating: y = E + A x^-alpha; chinchilla: L = E + A/N^alpha "
        "+ B/D^beta; bnsl, bnsl2: broken power laws with 1 or 2 breaks; kaplan: L = "
        "[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D; overtraining: L = E + (A M^eta + "
        "B M^-eta) C^-eta with M = tokens/params (Gadre et al.); data_constrained: chinchilla "
        "in effective N', D' of repeated data, from the unique_tokens column (Muennighoff et "
        "al.) (default: chinchilla where N and D vary independently, else saturating)",
    )
    p.add_argument("--x", metavar="COL", help="input column for power/saturating (default params)")
    p.add_argument(
        "--y", metavar="COL", help="target column (default: flops for power, loss otherwise)"
    )
    p.add_argument(
        "--curves",
        action="store_true",
        help="fit every evaluation of the learning curves, not each run's final point "
        "(automatic for a log of a single run)" + (f": {curves_help}" if curves_help else ""),
    )
    _add_strict(p)


def _add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 2 when the fit is not identified (instead of a warning)",
    )


def _predict_common(common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A copy of the common options for ``predict``, whose own ``--params`` (sizes)
    replaces the convention option: resolving the clash edits the parent's action
    objects, so they must not be the ones the other commands share."""
    import copy

    return copy.deepcopy(common)


class _Convention(argparse.Action):
    """``--params CONVENTION``, remembering that it was given: a table then takes its
    ``params_<convention>`` column, or refuses (the default leaves a table as it is)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.params_given = True


def _positive_number(text: str) -> float:
    """An option's number: finite and > 0 (a budget, a count), as the data must be."""
    from analysis.io.checks import POSITIVE, expectation, problem

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if math.isnan(value) or problem(value, POSITIVE) is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expectation(POSITIVE)}, e.g. 1e21")
    return value


class _SizesOrConvention(argparse.Action):
    """``predict --params``: numbers are sizes to predict at; a convention name
    (nonembed, matmul, total) sets ``params`` as in the other commands."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sizes = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            if value in ("nonembed", "matmul", "total"):
                namespace.params = value
                namespace.params_given = True
                continue
            try:
                sizes.append(float(value))
            except ValueError:
                parser.error(
                    f"argument --params: {value!r} is neither a size nor a parameter "
                    "convention (nonembed, matmul, total)"
                )
        setattr(namespace, self.dest, sizes or None)


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


def _law_for(args: argparse.Namespace, df: pd.DataFrame) -> tuple[str, str | None, str]:
    """The law, its input column and why, in one line: the law as asked, else as
    :func:`analysis.choice.choose_law` finds the data can tell. The column is ``--x``
    as given for chinchilla (None: params and tokens; a name is refused later)."""
    from analysis.choice import choose_law

    if args.law is None and args.x is not None:
        law, why = "saturating", f"law: saturating (--x {args.x} names one variable)"
    else:
        law, why = choose_law(df, args.law)
    x = args.x
    if law not in TWO_INPUT_LAWS and x is None:
        x = "params"
        single = "params" in df.columns and df["params"].nunique() == 1
        if args.law is None and single and "tokens" in df.columns and df["tokens"].nunique() > 1:
            # One model size (a single run's curve): only D varies, so L(D) is what it tells.
            x = "tokens"
            why = (
                f"law: saturating L(D) = E + A/D^alpha, because there is one model size "
                f"(N = {_num(df['params'].iloc[0])}) and only D varies; --law to choose another"
            )
    return law, x, why


def _fit_law(
    args: argparse.Namespace, df: pd.DataFrame, law: str, x: str | None, y: str
) -> FitResult:
    """Fit ``law`` to ``df`` with the command's options, saying what and how long."""
    from analysis.fit import fit_frame

    started = time.perf_counter()
    n_boot = _bootstrap_for(law, args.bootstrap)
    what = f"fitting {law} on {len(df)} points"
    if n_boot:
        what += f" with {n_boot} bootstrap resamples of {_groups_text(df)}"
    progress(what + " ...")
    kw: dict[str, Any] = {"bootstrap": n_boot, "seed": args.seed, "level": args.level}
    if law != "power":
        kw["delta"] = args.delta
    # --fix and --tie are options of `fit` alone; other commands have no such attribute.
    kw["fix"], kw["tie"] = getattr(args, "fix", None), getattr(args, "tie", None)
    if law in TWO_INPUT_LAWS:
        result = fit_frame(df, law, y=y, **kw)
    else:
        result = fit_frame(df, law, x=x, y=y, **kw)
    progress(f"done in {time.perf_counter() - started:.1f} s")
    return result


def _check_identified(args: argparse.Namespace, result: FitResult, what: str) -> None:
    """Warn (with --strict: fail) when the data do not identify ``result``."""
    if result.identified:
        return
    from analysis.io import DataWarning

    text = f"{what} is not identified: " + "; ".join(result.identification)
    if getattr(args, "strict", False):
        raise ValueError(f"{text} (--strict)")
    warnings.warn(text + "; what is derived from it is marked so", DataWarning, stacklevel=2)


def cmd_fit(args: argparse.Namespace) -> int:
    from analysis.io import require

    df = _load_for_fit(args)
    law, x_col, why = _law_for(args, df)
    progress(why)
    x, y = _fit_columns(law, x_col, args.y)
    used = require(df, x + [y], f"the {law} fit")
    result = _fit_law(args, used, law, x_col, y)
    _check_identified(args, result, f"the {law} fit")
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_fit(result, source=str(args.path), convention=_convention_note(args, df)))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from analysis.io import require
    from analysis.predict import predict

    df = _load_for_fit(args)
    law, x_col, why = _law_for(args, df)
    progress(why)
    x, y = _fit_columns(law, x_col, args.y)
    used = require(df, x + [y], f"the {law} fit")
    ladder = args.ladder
    if ladder is not None and not ladder:
        ladder = sorted(used["params"].unique())
    # Check the request before the minutes a bootstrap can take.
    if not any(v is not None for v in (args.at_params, args.tokens, args.flops)):
        raise ValueError("nothing to predict: give --params N --tokens D, --flops C, or both")
    result = _fit_law(args, used, law, x_col, y)
    _check_identified(args, result, f"the {law} fit")
    predictions = predict(
        result, params=args.at_params, tokens=args.tokens, flops=args.flops, ladder=ladder
    )
    if args.json:
        _print_json(predictions.to_dict())
    else:
        print(format_predictions(predictions, source=str(args.path)))
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
    if args.method != "porian" and args.approach != 2:
        raise ValueError("--method applies to --approach 2 (how IsoFLOP profiles are read)")
    if args.approach == 1:
        curves = require(_load(args, kind="curves"), ["flops", "params", "loss"], "approach 1")
        frontier = optimal.approach1(curves, points=args.envelope)
    elif args.approach == 2:
        runs = require(_load(args), ["flops", "params", "loss"], "approach 2")
        if args.method == "porian" and args.bootstrap < 20:
            raise ValueError(
                f"--bootstrap {args.bootstrap}: approach 2 by Porian et al.'s method draws "
                "at least 20 resamples per IsoFLOP group; ask for more, or --method hoffmann"
            )
        frontier = optimal.approach2(
            runs, method=args.method, bootstrap=args.bootstrap, seed=args.seed
        )
    else:
        runs = require(_load(args), ["params", "tokens", "loss"], "approach 3 (chinchilla fit)")
        progress("law: chinchilla L(N, D) (approach 3 solves its compute-optimal closed form)")
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
        _check_identified(args, result, "the chinchilla fit")
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
    law, x_col, why = _law_for(args, df)
    progress(why)
    columns, y = _fit_columns(law, x_col, args.y)
    x = columns[0]
    needed = [*columns, y]
    used = require(df, needed, f"the {law} backtest")
    kw: dict[str, Any] = {
        "bootstrap": _bootstrap_for(law, args.bootstrap),
        "seed": args.seed,
        "level": args.level,
    }
    if law != "power":
        kw["delta"] = args.delta
    result = backtest(used, law, k=args.k, x=x, y=y, test_where=args.test_where, **kw)
    _check_identified(args, result.fit, f"the {law} fit on the rows not held out")
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
        law=args.law,
        progress=progress,
    )
    # fine-tuning and compression records beside the sweep, when there are some
    from analysis.plots.downstream import plot_downstream

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
        law=args.law,
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
    """The loading options of a command. ``params`` only when given: the default
    convention applies to run records, while a table keeps its own column."""
    return {
        "params": args.params if getattr(args, "params_given", False) else None,
        "where": args.where,
        "params_col": args.params_col,
        "tokens_col": args.tokens_col,
        "flops_col": args.flops_col,
        "loss_col": args.loss_col,
        "run_col": args.run_col,
        "trunk_col": args.trunk_col,
        "n_params": args.n_params,
        "tokens_per_step": args.tokens_per_step,
        "params_map": args.params_map,
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
    if law in TWO_INPUT_LAWS:
        columns = {
            "overtraining": ["flops", "tokens"],
            "data_constrained": ["params", "tokens", "unique_tokens"],
        }.get(law, ["params", "tokens"])
        if x is not None:
            raise ValueError(f"--x does not apply to {law}, which uses {' and '.join(columns)}")
        if law == "overtraining":
            columns.append("params")  # M = tokens / params
        return columns, y or "loss"
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

    name = {1: "envelope of the learning curves", 2: "IsoFLOP parabolas", 3: "chinchilla fit"}
    lines = [f"approach {frontier.approach} ({name[frontier.approach]}): N_opt ∝ C^a"]
    interval = frontier.interval
    a = f"  a = {_num(frontier.a)}"
    if interval is not None:
        a += f"   [{_num(interval[0])}, {_num(interval[1])}]"
    if not getattr(frontier, "identified", True):
        a += "   (from an unidentified fit: not an estimate)"
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
            text += "; parabolas near each minimum, regression weighted by their spread (Porian et al.)"
        elif method == "hoffmann":
            text += "; one parabola over every size, unweighted regression (Hoffmann et al.)"
        return text
    resampled = getattr(frontier, "resampled", None)
    if resampled:
        return f"interval: bootstrap of the chinchilla fit, resampling {frontier.n_groups} {resampled}"
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


if __name__ == "__main__":
    sys.exit(main())
