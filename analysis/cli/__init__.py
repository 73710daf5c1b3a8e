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

The package holds :mod:`~analysis.cli.parser` (the options), :mod:`~analysis.cli.commands`
(what each subcommand does), :mod:`~analysis.cli.text` (what it prints) and
:mod:`~analysis.cli.options` (what they share); this module is the entry point.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence

from analysis.cli.options import PROG, progress
from analysis.cli.parser import build_parser
from analysis.cli.text import format_backtest, format_fit, format_frontier, format_predictions

__all__ = [
    "build_parser",
    "format_backtest",
    "format_fit",
    "format_frontier",
    "format_predictions",
    "main",
    "progress",
]


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
