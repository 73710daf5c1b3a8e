"""The canonical frame every loader returns, and what all of them do to it.

Columns ``run, params, tokens, flops, loss`` first (NaN where unknown), mapping a
source's columns onto them, dropping duplicates, filtering with ``--where``, checking
that a use has the columns it needs.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.io.checks import (
    COUNTS_FROM_START,
    POSITIVE,
    STEP,
    check_values,
    numbers,
    origins_of,
)
from analysis.io.errors import DataError, DataWarning

log = logging.getLogger("analysis.io")

#: The columns every loader provides, in this order.
CANONICAL = ("run", "params", "tokens", "flops", "loss")


def derive_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Fill whichever of params, tokens, flops is missing from the other two (C = 6·N·D).

    Returns a copy; a column that is present is never overwritten, and NaN stays NaN.
    ``df.attrs["derived"]`` records which column was derived and how (for messages).
    """
    df = df.copy()
    have = {c for c in ("params", "tokens", "flops") if c in df.columns and df[c].notna().any()}
    formulas = {
        "tokens": ("flops / (6 · params)", lambda: df["flops"] / (6.0 * df["params"])),
        "flops": ("6 · params · tokens", lambda: 6.0 * df["params"] * df["tokens"]),
        "params": ("flops / (6 · tokens)", lambda: df["flops"] / (6.0 * df["tokens"])),
    }
    missing = {"params", "tokens", "flops"} - have
    if len(have) == 2:
        (column,) = missing
        formula, compute = formulas[column]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            df[column] = compute()  # an overflow is refused by the checks, with its line
        df.attrs["derived"] = {**df.attrs.get("derived", {}), column: f"derived as {formula}"}
        log.info(f"{column} derived as {formula.replace('·', '*')}")
    return df


def final_points(curves: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run of a long-form curves frame."""
    if "step" not in curves.columns:
        return curves
    order = curves.sort_values(["run", "step"])
    return order.groupby("run", sort=False).tail(1).reset_index(drop=True)


def apply_where(df: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """Keep the rows matching ``expr`` and fail clearly on a bad or empty result.

    ``expr`` is read by :func:`analysis.query.query`, a safe subset of pandas' query
    syntax that runs no code. Column names with spaces go in backticks:
    ``"`Model Size` > 1e9"``.
    """
    from analysis.query import query

    if expr is None or not expr.strip():
        return df
    try:
        out = query(df, expr)
    except ValueError as err:
        columns = ", ".join(str(c) for c in df.columns)
        raise DataError(
            f"--where {expr!r} failed: {err}. "
            f"Available columns: {columns} (quote names with spaces in backticks)"
        ) from None
    if not isinstance(out, pd.DataFrame):
        raise DataError(f"--where {expr!r} is not a row filter (expected e.g. 'loss < 3.44')")
    if out.empty:
        raise DataError(f"--where {expr!r} left no rows (of {len(df)})")
    out = out.reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


#: Columns of names, not numbers: :func:`require` checks only that they are there.
_TEXT_COLUMNS = ("run", "trunk", "sweep", "schedule", "phase", "family", "path", "origin")


def require(df: pd.DataFrame, columns: Iterable[str], purpose: str) -> pd.DataFrame:
    """Check that ``df`` has the columns a use needs, and that they can go on log axes.

    Every use (fits, frontiers, figures) takes logs of the numbers it needs, so each
    needed numeric column goes through the rules of :mod:`analysis.io.checks` with its
    rows' ``origin`` (file and line) in the message: a number (no text, no booleans),
    finite, > 0 and within range (steps: whole numbers). Rows where one is unknown
    (NaN) are dropped with a warning, as are the points of a curve at 0 tokens or FLOPs
    (its start, before any training). The source's own columns (``--x d_model``) get
    the same rules as the canonical ones.

    Raises
    ------
    DataError
        When a column is absent or entirely unknown, with a hint on how to map it; when
        a value breaks a rule, naming where it was read.
    """
    columns = list(columns)
    missing = [c for c in columns if c not in df.columns or df[c].isna().all()]
    if missing:
        hint = ""
        if {"params", "tokens", "flops"} & set(missing):
            hint = (
                " (map the source's columns with --params-col/--tokens-col/--flops-col: any "
                "two of params, tokens, flops give the third through C = 6ND; a training "
                "log that does not record the model size needs --params-map FILE, a CSV "
                "run,params, or --n-params N)"
            )
        elif "loss" in missing:
            hint = " (name the loss column with --loss-col)"
        raise DataError(
            f"{purpose} needs the column(s) {', '.join(columns)}; missing or empty: "
            f"{', '.join(missing)}{hint}. Columns present: {', '.join(map(str, df.columns))}"
        )
    incomplete = df[columns].isna().any(axis=1)
    if incomplete.any():
        names = ", ".join(map(str, df.loc[incomplete, "run"].head(10))) if "run" in df else ""
        warnings.warn(
            f"{purpose}: dropped {int(incomplete.sum())} row(s) without "
            f"{', '.join(columns)}: {names}",
            DataWarning,
            stacklevel=2,
        )
        df = df[~incomplete].reset_index(drop=True)
    return _loggable(df, [c for c in columns if c not in _TEXT_COLUMNS], purpose)


def _loggable(df: pd.DataFrame, columns: list[str], purpose: str) -> pd.DataFrame:
    """``df`` with the needed numeric columns checked; zero counts of curves dropped."""
    origins = origins_of(df)
    df = df.copy()
    for column in columns:
        if not pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column]):
            # text that reads as a number (a CSV cell) is that number, as when loading
            df[column] = numbers(df[column], origins, column, POSITIVE, text=True)
    zero = pd.Series(False, index=df.index)
    for column in columns:
        if column in COUNTS_FROM_START and "step" in df.columns:
            zero |= df[column] == 0
    if zero.any():
        runs = sorted(set(map(str, df.loc[zero, "run"]))) if "run" in df.columns else []
        shown = ", ".join(runs[:10]) + (", ..." if len(runs) > 10 else "")
        warnings.warn(
            f"{purpose}: left out {int(zero.sum())} point(s) at 0 tokens or FLOPs (the "
            f"start of a curve: a log axis has no place for it){': ' + shown if shown else ''}",
            DataWarning,
            stacklevel=3,
        )
        df = df[~zero].reset_index(drop=True)
        origins = origins_of(df)
    derived = df.attrs.get("derived", {})
    for column in columns:
        rule = STEP if column == "step" else POSITIVE
        check_values(df[column], origins, column, rule, derived=derived.get(column))
    return df


def _apply_mapping(
    df: pd.DataFrame, mapping: Mapping[str, str | None], source: str
) -> pd.DataFrame:
    """Copy each mapped source column into its canonical name.

    A canonical column that already existed (and is not the source) is kept as
    ``<name>_original`` so nothing is silently lost.
    """
    df = df.copy()
    for option, column in mapping.items():
        if column is None:
            continue
        if not option.endswith("_col"):
            raise DataError(f"unknown option {option!r}")
        target = option[: -len("_col")]
        if column not in df.columns:
            shown = ", ".join(str(c) for c in df.columns if c != "_line")
            raise DataError(f"{source}: no column {column!r} (given as {option}); columns: {shown}")
        if column == target:
            continue
        if target in df.columns:
            df[f"{target}_original"] = df[target]
        df[target] = df[column]
    return df


def _drop_duplicates(df: pd.DataFrame, source: str, ignore: tuple[str, ...] = ()) -> pd.DataFrame:
    subset = df[[c for c in df.columns if c not in ignore]].copy()
    # Unhashable cells (lists from JSON) would break duplicated(); compare them as text.
    for column in [c for c in subset.columns if pd.api.types.is_object_dtype(subset[c])]:
        subset[column] = subset[column].map(
            lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
        )
    dup = subset.duplicated()
    if dup.any():
        where = ""
        if "_line" in df.columns:
            lines = ", ".join(map(str, df.loc[dup, "_line"].head(10)))
            where = f" (line {lines}{', ...' if dup.sum() > 10 else ''})"
        warnings.warn(
            f"{source}: dropped {int(dup.sum())} exact duplicate row(s){where}",
            DataWarning,
            stacklevel=3,
        )
        df = df[~dup]
    return df


def _order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns first (added as NaN where unknown), then ``step``, then the rest."""
    df = df.copy()
    for column in CANONICAL:
        if column not in df.columns:
            df[column] = np.nan
    first = [*CANONICAL, *(["step"] if "step" in df.columns else [])]
    return df[first + [c for c in df.columns if c not in first]]
