"""The rules every number read from a source goes through, and the identity of curves.

Every reader (run records, tables, trainer states, TensorBoard, W&B) converts what it
reads with :func:`number` (one value of a JSON-like source) or :func:`numbers` (a column
of a table), then hands its frame to :func:`check_frame`; a reader added later gets the
same rules by doing the same. The rules:

* **type**: a number; not a boolean (JSON ``true`` is not 1.0) and not text (JSON
  ``"3.2"`` is not 3.2; a CSV cell is text by nature and is parsed as a number);
* **finite**: no infinity; NaN is read as *unknown*, allowed where a value may be missing
  (an empty cell) and left to :func:`analysis.io.require` to drop, with a warning;
* **range**: every quantity lies within ``[TINY, LIMIT]`` in magnitude (far beyond any
  real run, far enough inside the float range that 6·N·D, powers of N in the fits and
  the log-axis margins of the figures stay finite); those of which logs are taken
  (parameters, losses) are > 0; counts (tokens, FLOPs, seconds) are >= 0, zero only at
  the start of a curve;
* **integrality**: a step is a whole number >= 0 (exact in a float: below 2^53);
* **curves**: within a run the steps neither repeat nor go backwards
  (:func:`check_steps`).

A value that breaks a rule raises :class:`DataError` naming where it was read (file and
line, or run directory and field) and how to fix it. Each row of a loader's frame says
where it was read in its ``origin`` column, so a use of any column can name the line too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.io.errors import DataError, DataWarning

#: The largest magnitude any quantity may have: 1e100 FLOP is ~74 orders of magnitude
#: past the largest training run, and squares, products and axis margins of it stay far
#: below the float maximum (1.8e308).
LIMIT = 1e100
#: The smallest magnitude of a nonzero quantity (its inverse powers must stay finite too).
TINY = 1e-100
#: Steps are integers; floats hold them exactly up to here.
MAX_STEP = 2**53

#: Rules: ``positive`` (> 0: logs are taken), ``count`` (>= 0: tokens, FLOPs, seconds),
#: ``step`` (an integer >= 0), ``finite`` (any sign).
POSITIVE, COUNT, STEP, FINITE = "positive", "count", "step", "finite"
RULES = (POSITIVE, COUNT, STEP, FINITE)

#: The rule of each column a loader may carry; columns not listed are the source's own
#: and are checked when a use needs them (:func:`analysis.io.require`).
FIELD_RULES: dict[str, str] = {
    "params": POSITIVE,
    "params_nonembed": POSITIVE,
    "params_matmul": POSITIVE,
    "params_total": POSITIVE,
    "tokens": COUNT,
    "flops": COUNT,
    "loss": POSITIVE,
    "step": STEP,
    "train_loss": POSITIVE,
    "best_val_loss": POSITIVE,
    "flops_target": POSITIVE,
    "flops_per_token": POSITIVE,
    "unique_tokens": POSITIVE,
    "epochs": POSITIVE,
    "total_flos": COUNT,
    "lr": COUNT,
    "elapsed_s": COUNT,
}
#: Columns that are counts from the start of training: 0 is their value at step 0.
COUNTS_FROM_START = ("tokens", "flops", "total_flos", "elapsed_s")

_EXPECTED = {
    POSITIVE: f"a number > 0 and between {TINY:g} and {LIMIT:g}",
    COUNT: f"a number >= 0 and at most {LIMIT:g}",
    STEP: f"a whole number >= 0 (below {MAX_STEP})",
    FINITE: f"a finite number of magnitude at most {LIMIT:g}",
}


def expectation(rule: str) -> str:
    """What a value under ``rule`` must be, in words."""
    return _EXPECTED[rule]


def problem(value: float, rule: str) -> str | None:
    """Why the float ``value`` breaks ``rule`` (NaN is unknown, never a problem), or None."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "infinite"
    if rule == STEP:
        if value < 0 or value >= MAX_STEP:
            return "out of range"
        return None if value == int(value) else "not a whole number"
    size = abs(value)
    if size > LIMIT:
        return "too large"
    if rule == POSITIVE and value <= 0:
        return "not > 0"
    if rule == COUNT and value < 0:
        return "negative"
    if value != 0 and size < TINY:
        return "too small"
    return None


def _fix(why: str, rule: str, *, empty_cell: bool) -> str:
    """How to fix a value that breaks a rule for ``why``."""
    if why in ("too large", "too small", "out of range"):
        fix = "check its units and correct it"
    elif why == "not > 0" and rule == POSITIVE:
        fix = "the fits and figures take its logarithm: correct it"
    else:
        fix = "correct it"
    if empty_cell:
        fix += ", or empty the cell (unknown: the row is left out, with a warning)"
    else:
        fix += ", or remove the entry"
    return fix


def number(
    value: Any,
    where: str,
    field: str,
    rule: str = POSITIVE,
    *,
    required: bool = True,
) -> float:
    """A value of a JSON-like source as a float, checked against ``rule``.

    Parameters
    ----------
    value
        The value as parsed (JSON, a protocol buffer, a Python literal).
    where
        Where it was read, e.g. ``"runs/x/summary.json"`` or ``"m.jsonl, line 4"``.
    field
        Its field (key) name, for the message.
    rule
        One of :data:`RULES`.
    required
        When False, a missing value (None, or NaN) is NaN rather than an error.

    Raises
    ------
    DataError
        A boolean, text, a missing value that is required, infinity or a value out of
        the rule's range; the message names ``where`` and ``field`` and the fix.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if not required:
            return math.nan
        got = "missing" if value is None else "NaN"
        raise DataError(f"{where}: field {field!r} is {got}; expected {expectation(rule)}")
    if isinstance(value, (bool, np.bool_)):
        raise DataError(
            f"{where}: field {field!r} is {value!r}; expected {expectation(rule)} "
            "(a boolean is not a number: write the number itself)"
        )
    if isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} is {value!r}; expected {expectation(rule)} "
            "(text is not a number: write it without quotes)"
        )
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(f"{where}: field {field!r} is {value!r}; expected {expectation(rule)}")
    try:
        why = problem(float(value), rule)
    except OverflowError:  # an integer too large for a float
        why = "too large"
    if why is not None:
        raise DataError(
            f"{where}: field {field!r} is {value!r} ({why}); expected {expectation(rule)}; "
            + _fix(why, rule, empty_cell=False)
        )
    return float(value)


def numbers(
    values: pd.Series,
    origins: pd.Series,
    column: str,
    rule: str = POSITIVE,
    *,
    text: bool = False,
) -> pd.Series:
    """A column of a table as floats, each cell checked as :func:`number` checks a value.

    Parameters
    ----------
    values
        The cells as read.
    origins
        Where each cell was read (``"runs.csv, line 4"``), aligned with ``values``.
    column
        The column's name, for the message.
    rule
        One of :data:`RULES`.
    text
        True for a text format (CSV, TSV): a cell holding a number written as text is
        that number. False for JSON Lines: text is refused as it is in a JSON record.
        Booleans are refused either way; missing cells are NaN.
    """
    out = np.full(len(values), np.nan)
    for i, (cell, origin) in enumerate(zip(values, origins, strict=True)):
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            continue
        if isinstance(cell, (bool, np.bool_)):
            raise DataError(
                f"{origin}: column {column!r} is {cell!r}; expected {expectation(rule)} "
                "(a boolean is not a number: write the number itself)"
            )
        if isinstance(cell, str):
            parsed = pd.to_numeric(cell.strip(), errors="coerce") if text else math.nan
            if (not text) or pd.isna(parsed) or cell.strip().lower() in ("true", "false"):
                raise DataError(
                    f"{origin}: column {column!r} is {cell!r}; expected a number"
                    + ("" if text else " (text is not a number: write it without quotes)")
                )
            cell = parsed
        if not isinstance(cell, (int, float, np.integer, np.floating)):
            raise DataError(f"{origin}: column {column!r} is {cell!r}; expected a number")
        try:
            out[i] = float(cell)
        except OverflowError:
            out[i] = math.inf
    result = pd.Series(out, index=values.index, name=values.name)
    check_values(result, origins, column, rule, empty_cell=text)
    return result


def check_values(
    values: pd.Series,
    origins: pd.Series,
    column: str,
    rule: str,
    *,
    empty_cell: bool = True,
    zero_ok: bool = True,
    derived: str | None = None,
) -> None:
    """Raise a :class:`DataError` at the first float of ``values`` that breaks ``rule``.

    ``zero_ok=False`` refuses 0 for a ``count`` (a run's total, not a curve's start);
    ``derived`` says where a column's values come from when that is not the column of
    its name (``"derived as 6 · params · tokens"``, ``"taken from the column 'N'"``).
    """
    array = np.asarray(values, dtype=float)
    bad = ~np.isnan(array) & ~_within(array, rule)
    if rule == COUNT and not zero_ok:
        bad |= array == 0
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    value = float(array[i])
    why = problem(value, rule) or "zero"
    origin = origins.iloc[i]
    how = f", {derived}" if derived else ""
    expected = expectation(rule) if why != "zero" else "a number > 0 (a run's total)"
    if derived and derived.startswith("derived"):
        fix = "correct the values it is derived from"
    else:
        fix = _fix(why, rule, empty_cell=empty_cell)
    raise DataError(
        f"{origin}: column {column!r} is {value:g} ({why}{how}); expected {expected}; {fix}"
    )


def _within(array: np.ndarray, rule: str) -> np.ndarray:
    """Which values of a float array keep ``rule`` (NaN counted as keeping it)."""
    with np.errstate(invalid="ignore"):
        if rule == STEP:
            return (array >= 0) & (array < MAX_STEP) & (array == np.floor(array))
        size = np.abs(array)
        ok = np.isfinite(array) & (size <= LIMIT) & ((array == 0) | (size >= TINY))
        if rule == POSITIVE:
            ok &= array > 0
        elif rule == COUNT:
            ok &= array >= 0
    return ok


def origins_of(df: pd.DataFrame) -> pd.Series:
    """Where each row of ``df`` was read: its ``origin`` column, else ``row <i>``."""
    if "origin" in df.columns:
        return df["origin"].astype(str)
    return pd.Series([f"row {i}" for i in range(len(df))], index=df.index)


def check_frame(
    df: pd.DataFrame,
    *,
    rules: Mapping[str, str] | None = None,
    derived: Mapping[str, str] | None = None,
) -> None:
    """Check every known numeric column of a loader's frame (:data:`FIELD_RULES`).

    Counts (tokens, FLOPs) may be 0 only on rows that carry a step (the start of a
    curve): a run's total of 0 tokens is refused. Messages name each row's ``origin``.

    Parameters
    ----------
    df
        The frame, with an ``origin`` column.
    rules
        Extra or other rules for this frame's columns.
    derived
        Column -> where its values come from when not from the column of its name
        (``"derived as 6 · params · tokens"``), for the message; by default
        ``df.attrs["derived"]``.
    """
    origins = origins_of(df)
    derived = dict(derived or df.attrs.get("derived", {}))
    has_step = "step" in df.columns and df["step"].notna().any()
    for column, rule in {**FIELD_RULES, **(rules or {})}.items():
        if column not in df.columns:
            continue
        values = pd.to_numeric(df[column], errors="coerce")
        zero_ok = rule != COUNT or has_step or column not in COUNTS_FROM_START
        check_values(values, origins, column, rule, zero_ok=zero_ok, derived=derived.get(column))


def check_steps(
    df: pd.DataFrame,
    source: str,
    *,
    backwards: str = "error",
    run_column: str = "run",
) -> None:
    """Refuse a curve whose steps repeat, and refuse or warn when they go backwards.

    Rows are taken in the order they were read (file order). Two rows of one run at one
    step claim the same point of its curve (two runs under one name, a log appended
    twice): a :class:`DataError` names both. A step below the one before it (a restart
    logged into the same file) is an error with ``backwards="error"``, else a
    :class:`DataWarning` (the curve is then read in step order).
    """
    if "step" not in df.columns or df.empty:
        return
    origins = origins_of(df)
    runs = df[run_column] if run_column in df.columns else pd.Series([""] * len(df))
    seen: dict[tuple[Any, float], str] = {}
    last: dict[Any, tuple[float, str]] = {}
    warned: list[str] = []
    for run, step, origin in zip(runs, df["step"], origins, strict=True):
        if pd.isna(step):
            continue
        key = (run, float(step))
        name = f"run {run!r}" if run != "" else "the curve"
        if key in seen:
            raise DataError(
                f"{origin}: {name} has step {step:g} again (first at {seen[key]}): two "
                "rows claim one point of its curve (two runs under one name, or a log "
                "written twice); remove one, or give the runs names of their own"
            )
        seen[key] = origin
        if run in last and float(step) < last[run][0]:
            before, where = last[run]
            text = (
                f"{origin}: the steps of {name} go backwards ({step:g} after {before:g} at "
                f"{where}): a restart logged into the same file?"
            )
            if backwards == "error":
                raise DataError(text + " Keep one attempt's lines, in step order")
            warned.append(text)
        last[run] = (float(step), origin)
    if warned:
        more = f" (and {len(warned) - 1} more)" if len(warned) > 1 else ""
        warnings.warn(f"{source}: {warned[0]}{more}; read in step order", DataWarning, stacklevel=3)
