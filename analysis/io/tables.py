"""Tables of runs or of curve points: CSV, TSV and JSONL, with a column mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io.checks import FIELD_RULES, check_frame, check_steps, numbers
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
    params: str | None = None,
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
        A row filter (:func:`analysis.query.query`) applied at the end, on the canonical (and original) column names.
    params
        A parameter convention (``nonembed``, ``matmul``, ``total``): the table's
        ``params_<convention>`` column becomes ``params`` (a runs table written from our
        records has all three). None: the ``params`` column (or ``params_col``) is taken
        as given. A table without that column is an error, not a convention ignored.

    Every number goes through the rules of :mod:`analysis.io.checks` (no booleans, no
    text, finite, in range, whole steps); errors name the file and line. Rows of one run
    (``run`` column) at one ``step`` are refused; steps going backwards are warned about.

    Returns
    -------
    pandas.DataFrame
        The canonical columns first, then the source's own columns. When only two of
        ``params``, ``tokens``, ``flops`` are given the third is derived from
        C = 6·N·D. Without a run column each row is its own run, named
        ``<file stem>:<line>``. Exact duplicate rows are dropped with a warning.
        ``origin`` says where each row was read (``runs.csv, line 4``); a column of the
        source called ``origin`` is kept as ``origin_original``.
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
    if "origin" in df.columns:
        df = df.rename(columns={"origin": "origin_original"})
    df["origin"] = [f"{path}, line {line}" for line in df["_line"]]
    params_col = _convention_column(df, path, params, params_col)
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
    text = suffix in _TABLE_SUFFIXES  # CSV cells are text; JSON values have types
    mapped = {k[: -len("_col")]: v for k, v in mapping.items() if v is not None}
    for column in ("params", "tokens", "flops", "loss", "step"):
        if column in df.columns:
            rule = FIELD_RULES[column]
            name = mapped.get(column, column)  # the source's name, as the user knows it
            df[column] = numbers(df[column], df["origin"], name, rule, text=text)
    df = _drop_duplicates(df, source=str(path), ignore=("_line", "origin"))
    if "step" in df.columns and df["step"].notna().any():
        check_steps(df, str(path), backwards="warn")
    df = derive_missing(df)
    _check_quantities(df, path)
    if "run" not in df.columns:
        df["run"] = [f"{path.stem}:{line}" for line in df["_line"]]
    df = _order_columns(df.drop(columns="_line")).reset_index(drop=True)
    check_frame(df)
    return apply_where(df, where)


def _check_quantities(df: pd.DataFrame, path: Path) -> None:
    """Refuse a table without a single value of params, tokens, flops or loss: every
    use needs two of them at least, so no mapping later can make it useful as read."""
    quantities = ("params", "tokens", "flops", "loss")
    if any(c in df.columns and df[c].notna().any() for c in quantities):
        return
    shown = ", ".join(str(c) for c in df.columns if c not in ("_line", "origin")) or "none"
    raise DataError(
        f"{path}: no values of params, tokens, flops or loss in any row (columns: {shown}); "
        "name the source's columns with --params-col/--tokens-col/--flops-col/--loss-col"
    )


def _convention_column(
    df: pd.DataFrame, path: Path, params: str | None, params_col: str | None
) -> str | None:
    """The column a parameter convention names in a table (None: take it as given)."""
    if params is None:
        return params_col
    from analysis.io.records import _check_convention

    _check_convention(params)
    column = f"params_{params}"
    if params_col is not None:
        raise DataError(
            f"{path}: --params {params} and --params-col {params_col!r} both choose the "
            "parameter column; give one of them"
        )
    if column not in df.columns:
        shown = ", ".join(str(c) for c in df.columns if c not in ("_line", "origin"))
        raise DataError(
            f"{path}: --params {params} picks a parameter convention of run records, and "
            f"this table has no {column!r} column: its parameter column is taken as given. "
            f"Leave --params out, or choose another column with --params-col COL "
            f"(columns: {shown})"
        )
    return column


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    _check_fields(path, sep)
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


_NAMES = {",": "comma", "\t": "tab", ";": "semicolon"}


def _check_fields(path: Path, sep: str) -> None:
    """Refuse a header that names a column twice, a header that is one column holding
    another delimiter, and a row with fewer or more fields than the header.

    pandas renames a repeated column (``params.1``) and pads a short row with empty
    cells: the values would be read from another column than the one meant, or the row
    dropped as if its cells were unknown.
    """
    import csv

    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=sep)
            header = next(reader, None)
            if header is None:
                return  # empty: pandas says so
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise DataError(
                    f"{path}, line 1: the header names column(s) {', '.join(map(repr, repeated))} "
                    "more than once; rename or remove the copies"
                )
            others = [d for d in _NAMES if d != sep and len(header) == 1 and d in header[0]]
            if others:
                raise DataError(
                    f"{path}, line 1: the header is one column {header[0]!r}: the file looks "
                    f"{_NAMES[others[0]]}-separated, and a {path.suffix} is read "
                    f"{_NAMES[sep]}-separated; convert it or rename it to match"
                )
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                # more fields: pandas would take the first column for an index
                extra = len(row) > len(header) and any(c.strip() for c in row[len(header) :])
                if len(row) < len(header) or extra:
                    why = "a row cut short" if len(row) < len(header) else "a field too many"
                    raise DataError(
                        f"{path}, line {reader.line_num}: {len(row)} field(s), the header has "
                        f"{len(header)}: {why}, or a row written with another delimiter "
                        f"(a {path.suffix} is {_NAMES[sep]}-separated); correct it"
                    )
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{path}: malformed table: {err}") from None
