"""`scaling-analyze downstream`: its options, and the command that fits, prints and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis.compression.pretrain import load_pretrain
from analysis.downstream import (
    compute_downstream_fits,
    fits_to_dict,
    format_downstream,
    plot_downstream,
)
from analysis.error_map import LINKS
from analysis.io import PARAM_CONVENTIONS, DataError
from analysis.io.downstream import (
    COMPRESS_SUFFIX,
    FINETUNE_SUFFIX,
    downstream_dirs,
    load_compress,
    load_finetune,
)

# --------------------------------------------------------------------------------------
# `scaling-analyze downstream`


def add_parser(sub: Any, fit_options: Any) -> None:
    """Add the ``downstream`` command to ``scaling-analyze``'s subparsers.

    Parameters
    ----------
    sub
        The subparsers object of ``analysis.cli.build_parser``.
    fit_options
        The shared parser of ``--bootstrap``, ``--seed``, ``--level``, ``--delta``.
    """
    p = sub.add_parser(
        "downstream",
        parents=[fit_options],
        help="fit and plot fine-tuned accuracy and compression cost against model size",
        description="Print the downstream laws (task error vs N, the two-step law L -> Err, "
        "compression dL vs N) of a sweep's fine-tuning and compression records, found in "
        "<sweep>-finetune/ and <sweep>-compress/ beside it, and draw their figures.",
    )
    p.add_argument("path", type=Path, help="the pretraining sweep dir (or its -finetune dir)")
    p.add_argument(
        "--params",
        choices=PARAM_CONVENTIONS,
        default="nonembed",
        help="parameter convention used as N (default: nonembed)",
    )
    p.add_argument(
        "--link",
        choices=tuple(LINKS),
        default="exponential",
        help="step 2's form, task error from pretraining loss: exponential "
        "(Gadre et al. 2024, default) or sigmoid (Bhagia et al. 2024, OLMo's ladder)",
    )
    p.add_argument("--out", type=Path, help="figures dir (default: <sweep>/plots)")
    p.add_argument(
        "--format", nargs="+", default=["png", "svg"], help="file formats (default png svg)"
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    p.set_defaults(handler=cmd_downstream)


def cmd_downstream(args: Any) -> int:
    """Fit, print and plot; exit status 2 (through the CLI) when there are no records."""
    ft_dir, comp_dir = downstream_dirs(args.path)
    if ft_dir is None and comp_dir is None:
        raise DataError(
            f"{args.path}: no fine-tuning or compression records beside it (expected "
            f"{args.path.name}{FINETUNE_SUFFIX}/ or {args.path.name}{COMPRESS_SUFFIX}/)"
        )
    finetune = load_finetune(ft_dir, args.params) if ft_dir else None
    compress = load_compress(comp_dir, args.params) if comp_dir else None
    pretrain, why = None, ""
    if compress is not None:
        # the critical D needs the Chinchilla fit of the sweep the models came from
        try:
            pretrain = load_pretrain(args.path, args.params)
        except DataError as e:
            why = f"no pretraining records to fit L(N, D) on: {e}"
    fits = compute_downstream_fits(
        finetune,
        compress,
        bootstrap=args.bootstrap,
        seed=args.seed,
        link=args.link,
        pretrain=pretrain,
        level=args.level,
    )
    if why and fits.quantization:
        fits.notes["pretrain_law"] = why
    out = args.out or Path(args.path) / "plots"
    written = plot_downstream(
        args.path,
        out,
        formats=tuple(args.format),
        params=args.params,
        fits=fits,
        title=args.path.name,
    )
    if args.json:
        print(json.dumps({**fits_to_dict(fits), "files": [str(p) for p in written]}, indent=2))
    else:
        print(format_downstream(fits))
        print()
        for path in written:
            print(path)
    return 0
