"""Tables of runs or of curve points: CSV, TSV and JSONL, with a column mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io.errors import DataError
from analysis.io.frames import (
    _apply_mapping,
    _drop_duplicates,
    _order_columns,
    apply_where,
    derive_missing,
)
from analysis.io.jsonfiles import _read_jsonl

_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


def load_table(
    path: str | Path,
    *,
    params_col: str | None = None,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    loss_col: str | None = None,
    run_col: str | None = None,
    step_col: str | None = None,
    trunk_col: str | None = None,
    where: str | None = None,
) -> pd.DataFrame:
    """Load a CSV, TSV or JSONL table of runs (or of points on curves).

    Parameters
    ----------
    path
        ``.csv``, ``.tsv``/``.tab`` or ``.jsonl``/``.ndjson`` (one JSON object per line).
    params_col, tokens_col, flops_col, loss_col, run_col, step_col
        The source column holding each canonical quantity; by default the column of the
        canonical name (``params``, ``tokens``, ...) is used when there is one.
    trunk_col
        The column naming the training trajectory each row comes from (default: a
        ``trunk`` column when there is one): rows of one trunk are resampled together
        by the bootstrap. Without one, each run (each row, without a run column) is
        resampled on its own.
    where
        A pandas query applied at the end, on the canonical (and original) column names.

    Returns
    -------
    pandas.DataFrame
        The canonical columns first, then the source's own columns. When only two of
        ``params``, ``tokens``, ``flops`` are given the third is derived from
        C = 6·N·D. Without a run column each row is its own run, named
        ``<file stem>:<line>``. Exact duplicate rows are dropped with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        records = _read_jsonl(path)
        df = pd.DataFrame([rec for _, rec in records])
        df["_line"] = [line for line, _ in records]
    elif suffix in _TABLE_SUFFIXES:
        df = _read_delimited(path, _TABLE_SUFFIXES[suffix])
        df["_line"] = np.arange(len(df)) + 2  # line 1 is the header
    else:
        raise DataError(f"{path}: unknown table format {suffix!r} (expected .csv, .tsv, .jsonl)")
    if df.empty:
        raise DataError(f"{path}: no rows")
    mapping = {
        "params_col": params_col,
        "tokens_col": tokens_col,
        "flops_col": flops_col,
        "loss_col": loss_col,
        "run_col": run_col,
        "step_col": step_col,
        "trunk_col": trunk_col,
    }
    df = _apply_mapping(df, mapping, source=str(path))
    for column in ("params", "tokens", "flops", "loss", "step"):
        if column in df.columns:
            df[column] = _to_numeric(df, column, path)
    df = _drop_duplicates(df, source=str(path), ignore=("_line",))
    df = derive_missing(df)
    if "run" not in df.columns:
        df["run"] = [f"{path.stem}:{line}" for line in df["_line"]]
    df = _order_columns(df.drop(columns="_line")).reset_index(drop=True)
    return apply_where(df, where)


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a header line and rows)") from None
    except pd.errors.ParserError as err:
        # pandas says e.g. "Error tokenizing data. C error: Expected 7 fields in line 5, saw 9"
        detail = str(err).replace("Error tokenizing data. C error: ", "").strip()
        raise DataError(f"{path}: malformed table: {detail}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _to_numeric(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        first = bad.idxmax()
        raise DataError(
            f"{path}, line {df.loc[first, '_line']}: column {column!r} is "
            f"{df.loc[first, column]!r}; expected a number"
        )
    return values.astype(float)
