"""Reading JSON and JSON Lines files, with errors that name the file, line and field."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from analysis.io.errors import DataError, DataWarning


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _RepeatedKey as err:
        raise DataError(f"{path}: {err}") from None
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}, line {err.lineno} column {err.colno}: invalid JSON ({err.msg})"
        ) from None


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file.

    A last line that does not parse and has no newline is a write cut short (a run
    killed mid-append): it is skipped with a warning rather than failing the whole file,
    unless it is the only line (then nothing would be left: an error). An object naming
    a key twice is refused (``json`` would keep the last value silently).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except _RepeatedKey as err:
            raise DataError(f"{path}, line {number}: {err}") from None
        except json.JSONDecodeError as err:
            if number == len(lines) and not text.endswith("\n") and records:
                warnings.warn(
                    f"{path}, line {number}: incomplete last line skipped",
                    DataWarning,
                    stacklevel=3,
                )
                continue
            raise DataError(
                f"{path}, line {number}: invalid JSON ({err.msg} at column {err.colno}); "
                "expected one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path}, line {number}: expected a JSON object, got {type(record).__name__}"
            )
        records.append((number, record))
    return records


class _RepeatedKey(ValueError):
    """A JSON object that names one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(
                f"key {key!r} appears twice in one object ({out[key]!r}, then {value!r}); keep one"
            )
        out[key] = value
    return out
