"""What each ``scaling-analyze`` subcommand does: load, fit, print."""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli.options import (
    DEFAULT_BOOTSTRAP,
    TWO_INPUT_LAWS,
    progress,
)
from analysis.cli.text import (
    _num,
    _print_json,
    format_allocation,
    format_backtest,
    format_fit,
    format_frontier,
    format_predictions,
)

if TYPE_CHECKING:
    import pandas as pd

    from analysis.fit import FitResult
    from analysis.frontier import Frontier


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


def _check_identified(args: argparse.Namespace, result: FitResult | Frontier, what: str) -> None:
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
            "--budget needs --approach 3 (the allocation comes from the L(N, D) fit)"
        )
    if args.law != "chinchilla" and args.approach != 3:
        raise ValueError("--law applies to --approach 3 (the law whose optimum is solved)")
    if args.envelope != "auto" and args.approach != 1:
        raise ValueError("--envelope applies to --approach 1 (the envelope of the curves)")
    if args.method != "porian" and args.approach != 2:
        raise ValueError("--method applies to --approach 2 (how IsoFLOP profiles are read)")
    if args.approach == 1:
        curves = require(_load(args, kind="curves"), ["flops", "params", "loss"], "approach 1")
        frontier = optimal.approach1(curves, points=args.envelope)
        _check_identified(args, frontier, "approach 1's exponent")
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
        _check_identified(args, frontier, "approach 2's exponent")
    else:
        runs = require(_load(args), ["params", "tokens", "loss"], f"approach 3 ({args.law} fit)")
        progress(f"law: {args.law} L(N, D) (approach 3 solves its compute-optimal closed form)")
        what = f"fitting {args.law} on {len(runs)} runs"
        if args.bootstrap:
            what += f" with {args.bootstrap} bootstrap resamples of {_groups_text(runs)}"
        progress(what + " ...")
        started = time.perf_counter()
        result = fit_frame(
            runs,
            args.law,
            bootstrap=args.bootstrap,
            seed=args.seed,
            level=args.level,
            delta=args.delta,
        )
        progress(f"done in {time.perf_counter() - started:.1f} s")
        _check_identified(args, result, f"the {args.law} fit")
        frontier = optimal.approach3(result)
        if result.identified:  # else said above; the interval of a can still be too wide
            _check_identified(args, frontier, "approach 3's exponent")
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
