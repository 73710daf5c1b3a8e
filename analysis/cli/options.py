"""What every ``scaling-analyze`` command shares: the program's name and defaults, the
argparse options and actions, and the progress line."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

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


def progress(text: str) -> None:
    """A line of progress on stderr (stdout is kept for results)."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


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
