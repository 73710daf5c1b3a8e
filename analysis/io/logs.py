"""What the imported training logs share: per-run parameter counts and finishing a curve.

A training log (trainer state, TensorBoard, W&B) is a learning curve per run; what it
often lacks is the model's size. Each run's parameter count comes, first found:

1. from a mapping file (``--params-map FILE``: a CSV with a ``run`` column and a
   ``params`` column, or the column named by ``--params-col``), which must list every
   run of the directory;
2. from ``--n-params`` (one number for every run);
3. from the log itself: the model config of a family we know, an hparam, a scalar tag
   or a config key (:data:`PARAM_KEYS`, or the one named by ``--params-col``).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.io.checks import POSITIVE, check_frame, expectation, problem
from analysis.io.errors import DataError, DataWarning
from analysis.io.frames import _order_columns, apply_where

log = logging.getLogger("analysis.io")

# Tag (or key) names tried, in order, when a log does not say which one is the loss. The
# "eval/..." and "train/..." forms are what Hugging Face's logging callbacks write.
LOSS_TAGS = ("eval/loss", "val_loss", "val/loss", "eval_loss", "validation/loss", "loss/val")
TRAIN_LOSS_TAGS = ("train/loss", "train_loss", "loss/train", "loss")
TOKEN_TAGS = ("train/num_input_tokens_seen", "num_input_tokens_seen", "tokens")
#: Names tried for a run's parameter count in hparams, scalar tags and configs
#: (``model/num_parameters`` is what Hugging Face's W&B callback puts in the config).
PARAM_KEYS = ("params", "n_params", "num_params", "num_parameters", "model/num_parameters")


def read_params_map(path: str | Path, column: str | None = None) -> dict[str, float]:
    """Run name -> parameter count, from a CSV with a ``run`` column and a count column.

    Parameters
    ----------
    path
        The CSV file, e.g. ``run,params`` then one line per run.
    column
        The column holding the counts (default ``params``).

    Raises
    ------
    DataError
        Missing file or column, a count that is not a positive number, or a run listed
        twice with different counts; the message names the file and line.
    """
    path = Path(path)
    column = column or "params"
    if not path.is_file():
        raise DataError(f"{path}: no such file (the parameter-count mapping, run,params)")
    try:
        table = pd.read_csv(path, dtype={"run": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())
        raise DataError(f"{path}: not a CSV table run,{column} ({detail})") from None
    for needed in ("run", column):
        if needed not in table.columns:
            raise DataError(
                f"{path}: no column {needed!r} (columns: {', '.join(map(str, table.columns))}); "
                f"expected a header line run,{column}"
            )
    counts: dict[str, float] = {}
    for index, (run, value) in enumerate(zip(table["run"], table[column], strict=True)):
        line = index + 2  # line 1 is the header
        number = (
            math.nan
            if isinstance(value, (bool, np.bool_))
            else pd.to_numeric(value, errors="coerce")
        )
        why = "missing" if pd.isna(number) else problem(float(number), POSITIVE)
        if pd.isna(run) or why is not None:
            raise DataError(
                f"{path}, line {line}: run {run!r}, {column} {value!r}; expected a run name "
                f"and a parameter count, {expectation(POSITIVE)}"
            )
        run = str(run)
        if run in counts and counts[run] != float(number):
            raise DataError(
                f"{path}, line {line}: run {run!r} listed again with another count "
                f"({value} after {counts[run]:g})"
            )
        counts[run] = float(number)
    return counts


def resolve_params(
    run: str,
    found: float | None,
    *,
    params_map: Mapping[str, float] | None,
    map_path: str | Path | None,
    n_params: float | None,
    source: str | Path,
) -> tuple[float, str]:
    """The parameter count of one run and where it came from (see the module docstring).

    Returns
    -------
    (float, str)
        The count (NaN when nothing gives one) and ``"map"``, ``"option"``, ``"log"``
        or ``""``.

    Raises
    ------
    DataError
        A mapping file is given and does not list the run: the message names both.
    """
    if params_map is not None:
        if run not in params_map:
            raise DataError(
                f"{map_path}: no line for run {run!r} of {source}; add '{run},<params>' "
                f"(runs listed: {', '.join(sorted(params_map)[:10]) or 'none'})"
            )
        return params_map[run], "map"
    if n_params:
        return float(n_params), "option"
    if found is not None and not math.isnan(found):
        why = problem(float(found), POSITIVE)
        if why is not None:
            raise DataError(
                f"{source}: run {run!r} logs {found!r} as its parameter count ({why}); "
                "expected a number > 0: give the counts with --params-map FILE (CSV "
                "run,params) or --n-params N"
            )
        return float(found), "log"
    return math.nan, ""


def first_key(values: Mapping[str, Any], asked: str | None) -> str | None:
    """The key holding a parameter count: the one asked for, else the first of
    :data:`PARAM_KEYS` present."""
    if asked is not None:
        return asked if asked in values else None
    return next((k for k in PARAM_KEYS if k in values), None)


def scalar_curve(
    scalars: dict[str, dict[int, float]],
    run: str,
    path: Path,
    loss_tag: str | None,
    tokens_tag: str | None,
    what: str = "tag",
) -> pd.DataFrame:
    """A run's curve from its scalars (tag -> step -> value): ``step, loss``, and
    ``train_loss`` and ``tokens`` where a tag holds them. ``what`` names a scalar in the
    messages (``tag`` for TensorBoard, ``key`` for W&B)."""
    tags = sorted(scalars)
    if loss_tag is not None:
        if loss_tag not in scalars:
            raise DataError(f"{path}: run {run!r} has no {what} {loss_tag!r}; {what}s: {tags}")
        chosen = loss_tag
    else:
        chosen = next((t for t in LOSS_TAGS if t in scalars), None)
        if chosen is None:
            chosen = next((t for t in TRAIN_LOSS_TAGS if t in scalars), None)
            if chosen is None:
                raise DataError(
                    f"{path}: run {run!r} has no loss {what} (tried "
                    f"{', '.join(LOSS_TAGS + TRAIN_LOSS_TAGS)}); {what}s: {tags}. "
                    f"Name the {what} with the loss column option"
                )
            warnings.warn(
                f"{path}: run {run!r} has no evaluation loss; using {chosen!r}",
                DataWarning,
                stacklevel=3,
            )
    df = pd.DataFrame({"step": list(scalars[chosen]), "loss": list(scalars[chosen].values())})
    train_tag = next((t for t in TRAIN_LOSS_TAGS if t in scalars and t != chosen), None)
    if train_tag is not None:
        df["train_loss"] = df["step"].map(scalars[train_tag])
    token_tag = _token_tag(scalars, tokens_tag)
    if token_tag is not None:
        df["tokens"] = df["step"].map(scalars[token_tag])
    df["run"] = run
    df.attrs["tags"] = {"loss": chosen, "tokens": token_tag}  # which scalars were read
    return df.sort_values("step")


def _token_tag(scalars: Mapping[str, Any], tag: str | None) -> str | None:
    """The tag counting tokens: the one asked for, else the first known name present."""
    if tag is not None:
        return tag if tag in scalars else None
    return next((t for t in TOKEN_TAGS if t in scalars), None)


def _finish_curve(
    df: pd.DataFrame,
    path: Path,
    run: str,
    n_params: float | None,
    tokens_per_step: float | None,
    where: str | None,
) -> pd.DataFrame:
    """Complete an imported curve: tokens from steps, params as given, flops 6ND where
    the curve has none of its own."""
    df = df.copy()
    derived = dict(df.attrs.get("derived", {}))
    if "tokens" not in df.columns or df["tokens"].isna().all():
        df["tokens"] = df["step"] * tokens_per_step if tokens_per_step else np.nan
        derived["tokens"] = "derived as step · tokens per step"
    params = float(n_params) if n_params and math.isfinite(n_params) else np.nan
    df["params"] = params
    if "flops" not in df.columns or df["flops"].isna().all():
        with np.errstate(over="ignore", invalid="ignore"):
            df["flops"] = 6.0 * df["params"] * df["tokens"]
        derived["flops"] = "derived as 6 · params · tokens"
    if df["flops"].isna().all():
        missing = "the model's parameter count" if np.isnan(params) else "token counts"
        log.info(f"{path}: no compute without {missing} (n_params, tokens_per_step)")
    df["run"] = run
    if "origin" not in df.columns:
        df["origin"] = [f"{path}, run {run!r}, step {step:g}" for step in df["step"]]
    df = _order_columns(df).reset_index(drop=True)
    df.attrs["derived"] = derived
    check_frame(df)
    return apply_where(df, where)


def stack(frames: list[pd.DataFrame], where: str | None) -> pd.DataFrame:
    """The curves of several runs as one frame, sorted by run and step, filtered."""
    df = pd.concat(frames, ignore_index=True)
    return apply_where(df.sort_values(["run", "step"], ignore_index=True), where)
