"""The ``scaling-analyze`` command line: one subcommand per kind of result."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.cli.commands import (
    cmd_backtest,
    cmd_fit,
    cmd_frontier,
    cmd_plot,
    cmd_predict,
    cmd_report,
)
from analysis.cli.options import (
    DEFAULT_BOOTSTRAP,
    PROG,
    _add_law_options,
    _add_strict,
    _Convention,
    _explained,
    _fit_options,
    _Parser,
    _positive_number,
    _predict_common,
    _Quiet,
    _SizesOrConvention,
)


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
        "--where",
        metavar="EXPR",
        help="row filter (column names, numbers, comparisons, and/or/not; no code), e.g. 'loss < 3.44'",
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
            "scaling-analyze frontier results/demo_seeds --approach 3 --law kaplan",
        ),
    )
    p.add_argument(
        "--approach",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="1: envelope of the learning curves; 2: IsoFLOP parabolas (grouped by the "
        "asked compute flops_target when the runs have one); 3: from the L(N, D) fit (default)",
    )
    p.add_argument(
        "--law",
        choices=("chinchilla", "kaplan"),
        default="chinchilla",
        help="approach 3: the L(N, D) whose closed-form optimum gives the frontier: "
        "chinchilla (default; additive, with a floor) or kaplan (its terms interact, no floor)",
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

    from analysis.cli.downstream import add_parser as add_downstream

    add_downstream(sub, _fit_options(DEFAULT_BOOTSTRAP))
    downstream = sub.choices["downstream"]
    downstream.epilog = _explained("", "scaling-analyze downstream results/demo")["epilog"]
    downstream.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser
