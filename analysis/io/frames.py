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

from analysis.io.errors import DataError, DataWarning

log = logging.getLogger("analysis.io")

#: The columns every loader provides, in this order.
CANONICAL = ("run", "params", "tokens", "flops", "loss")


def derive_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Fill whichever of params, tokens, flops is missing from the other two (C = 6·N·D).

    Returns a copy; a column that is present is never overwritten, and NaN stays NaN.
    """
    df = df.copy()
    have = {c for c in ("params", "tokens", "flops") if c in df.columns and df[c].notna().any()}
    if have == {"params", "flops"}:
        df["tokens"] = df["flops"] / (6.0 * df["params"])
        log.info("tokens derived as flops / (6 * params)")
    elif have == {"params", "tokens"}:
        df["flops"] = 6.0 * df["params"] * df["tokens"]
        log.info("flops derived as 6 * params * tokens")
    elif have == {"tokens", "flops"}:
        df["params"] = df["flops"] / (6.0 * df["tokens"])
        log.info("params derived as flops / (6 * tokens)")
    return df


def final_points(curves: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run of a long-form curves frame."""
    if "step" not in curves.columns:
        return curves
    order = curves.sort_values(["run", "step"])
    return order.groupby("run", sort=False).tail(1).reset_index(drop=True)


def apply_where(df: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """Apply a pandas query (``df.query``) and fail clearly on a bad or empty result.

    Column names with spaces go in backticks: ``"`Model Size` > 1e9"``.
    """
    if expr is None or not expr.strip():
        return df
    try:
        out = df.query(expr)
    except Exception as err:  # pandas raises SyntaxError, NameError, TypeError, ValueError...
        columns = ", ".join(str(c) for c in df.columns)
        raise DataError(
            f"--where {expr!r} failed: {type(err).__name__}: {err}. "
            f"Available columns: {columns} (quote names with spaces in backticks)"
        ) from None
    if not isinstance(out, pd.DataFrame):
        raise DataError(f"--where {expr!r} is not a row filter (expected e.g. 'loss < 3.44')")
    if out.empty:
        raise DataError(f"--where {expr!r} left no rows (of {len(df)})")
    out = out.reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def require(df: pd.DataFrame, columns: Iterable[str], purpose: str) -> pd.DataFrame:
    """Check that ``df`` has the columns a use needs; drop (with a warning) incomplete rows.

    Raises
    ------
    DataError
        When a column is absent or entirely unknown, with a hint on how to map it.
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
