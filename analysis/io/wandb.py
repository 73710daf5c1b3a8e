"""Weights & Biases: CSV exports of runs and histories, and offline run directories.

Exports (read without the ``wandb`` package):

* the runs table, one row per run, in either of two layouts: the one the W&B docs'
  "querying multiple runs" script writes (columns ``summary``, ``config``, ``name``, each
  cell a dict as pandas writes it), or the web app's runs-table export (``Name``,
  ``State``, ..., then one column per config key and per summary key);
* the history, one row per logged step of each run, as
  ``api.runs(path).histories(format="pandas").to_csv(...)`` writes it (``run_id``,
  ``_step``, ``_runtime``, ``_timestamp`` and the logged keys).

An offline run directory (``wandb/offline-run-<time>-<id>/`` as ``wandb.init(mode=
"offline")`` leaves it, or a directory of several) holds ``run-<id>.wandb``, a log of
protocol-buffer records: it needs ``pip install "scaling-lab[wandb]"`` for their schema.

Each run's parameter count: a mapping file or ``--n-params``, else the config of a
Hugging Face model of a family we know (which W&B's callback logs into the run's config),
else a config or summary key (:data:`analysis.io.logs.PARAM_KEYS`, or ``--params-col``).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.io.errors import DataError, DataWarning, OptionalDependencyError
from analysis.io.frames import _order_columns, apply_where
from analysis.io.logs import (
    LOSS_TAGS,
    TOKEN_TAGS,
    TRAIN_LOSS_TAGS,
    _finish_curve,
    first_key,
    read_params_map,
    resolve_params,
    scalar_curve,
    stack,
)
from analysis.io.model_config import flops_per_token, param_counts, shape_from_config

log = logging.getLogger("analysis.io")

#: The web app's runs-table export starts with these columns.
APP_COLUMNS = ("Name", "State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep")
#: The state of a run whose summary is its final one.
FINISHED = "finished"
_RUN_COLUMNS = ("run_id", "name", "Name", "run", "id", "ID")
_STEP_COLUMNS = ("_step", "Step", "step")

# The record log (leveldb's log format, as W&B writes it): a 7-byte file header, then
# 32 KiB blocks of records, each a 7-byte header (CRC-32 of type + data, length, type)
# and data; a record that does not fit a block is split FIRST, MIDDLE..., LAST.
_FILE_HEADER = struct.Struct("<4sHB")
_RECORD_HEADER = struct.Struct("<IHB")
_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


# --------------------------------------------------------------------------------------
# CSV exports


def csv_layout(path: str | Path) -> str | None:
    """``"runs"`` or ``"history"`` for a W&B CSV export, None for any other table."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError):
        return None
    columns = set(map(str, header))
    if {"summary", "config", "name"} <= columns or {"Name", "State"} <= columns:
        return "runs"
    if "_step" in columns and ("run_id" in columns or "_runtime" in columns):
        return "history"
    return None


def load_wandb_runs(
    path: str | Path,
    *,
    params: str = "nonembed",
    params_col: str | None = None,
    tokens_col: str | None = None,
    flops_col: str | None = None,
    loss_col: str | None = None,
    run_col: str | None = None,
    params_map: str | Path | None = None,
    n_params: float | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """One row per run from a W&B runs-table CSV export (either layout).

    The loss is the summary's ``eval/loss`` (or another of the known loss names, or
    ``loss_col``), tokens its ``train/num_input_tokens_seen`` (or ``tokens_col``); FLOPs
    are ours (attention included) where the config is a Hugging Face model of a family we
    know, else ``flops_col`` or 6·N·D. Runs whose ``State`` is not ``finished`` are left
    out with a :class:`DataWarning` (their summary is not final).
    """
    path = Path(path)
    table = _read_csv(path)
    if {"summary", "config", "name"} <= set(table.columns):
        rows = [_script_row(row, path, line) for line, row in _lines(table)]
    else:
        rows = [_app_row(row, table.columns) for _, row in _lines(table)]
    excluded = [r for r in rows if r.get("state") not in (None, FINISHED)]
    if excluded:
        warnings.warn(
            f"{path}: left out {len(excluded)} run(s) that did not finish: "
            + "; ".join(f"{r['run']} ({r['state']})" for r in excluded),
            DataWarning,
            stacklevel=2,
        )
    rows = [r for r in rows if r.get("state") in (None, FINISHED)]
    if not rows:
        raise DataError(f"{path}: no finished runs")
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    key = None if params_map is not None else params_col
    out = []
    for row in rows:
        values: dict[str, Any] = {**row["config"], **row["summary"]}
        if run_col is not None and run_col not in values:
            raise DataError(f"{path}: run {row['run']!r} has no column {run_col!r} (run_col)")
        run = str(values[run_col]) if run_col is not None else row["run"]
        record = _run_values(
            run, values, path, params, key, mapping, params_map, n_params, loss_col, tokens_col
        )
        if flops_col is not None:
            if flops_col not in values:
                raise DataError(f"{path}: run {run!r} has no column {flops_col!r} (flops_col)")
            record["flops"] = _float(values[flops_col], path, run, flops_col)
        out.append({**{k: v for k, v in values.items() if k not in record}, **record})
    df = _order_columns(pd.DataFrame(out))
    df.attrs["excluded"] = [{"run": r["run"], "status": r["state"]} for r in excluded]
    return apply_where(df, where)


def load_wandb_history(
    path: str | Path,
    *,
    loss_col: str | None = None,
    tokens_col: str | None = None,
    run_col: str | None = None,
    step_col: str | None = None,
    params_col: str | None = None,
    params_map: str | Path | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """Learning curves from a W&B history CSV export: one row per step of each run.

    Runs are told apart by ``run_id`` (or ``run_col``); a history carries no config, so
    parameter counts come from a mapping file keyed by that id, ``--n-params``, or a
    column (``params_col``) logged in the history.
    """
    path = Path(path)
    table = _read_csv(path)
    run_column = run_col or next((c for c in _RUN_COLUMNS if c in table.columns), None)
    step_column = step_col or next((c for c in _STEP_COLUMNS if c in table.columns), None)
    for what, column in (("run", run_column), ("step", step_column)):
        if column is None or column not in table.columns:
            raise DataError(
                f"{path}: no {what} column (tried {column or ', '.join(_RUN_COLUMNS)}); "
                f"name it with --{what}-col"
            )
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    key = None if params_map is not None else params_col
    frames = []
    for run, group in table.groupby(run_column, sort=True):
        run = str(run)
        steps = pd.to_numeric(group[step_column], errors="coerce")
        scalars: dict[str, dict[int, float]] = {}
        for column in group.columns:
            if column in (run_column, step_column):
                continue
            values = pd.to_numeric(group[column], errors="coerce")
            kept = values.notna() & steps.notna()
            if kept.any():
                scalars[str(column)] = dict(
                    zip(steps[kept].astype(int), values[kept].astype(float), strict=True)
                )
        curve = scalar_curve(scalars, run, path, loss_col, tokens_col, what="column")
        logged = {tag: values[max(values)] for tag, values in scalars.items()}
        name = first_key(logged, key)
        count, _ = resolve_params(
            run,
            logged[name] if name else None,
            params_map=mapping,
            map_path=params_map,
            n_params=n_params,
            source=path,
        )
        frames.append(_finish_curve(curve, path, run, count, tokens_per_step, None))
    if not frames:
        raise DataError(f"{path}: no rows")
    return stack(frames, where)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a CSV table ({' '.join(str(err).split())})") from None
    if table.empty:
        raise DataError(f"{path}: no rows")
    return table.loc[:, [not str(c).startswith("Unnamed:") for c in table.columns]]


def _lines(table: pd.DataFrame) -> Iterator[tuple[int, pd.Series]]:
    for index, (_, row) in enumerate(table.iterrows()):
        yield index + 2, row  # line 1 is the header


def _script_row(row: pd.Series, path: Path, line: int) -> dict[str, Any]:
    """A row of the docs' export script: ``summary`` and ``config`` dicts, ``name``."""
    parsed = {}
    for column in ("summary", "config"):
        cell = row[column]
        value: Any = {}
        if isinstance(cell, str) and cell.strip():
            try:
                value = ast.literal_eval(cell)  # pandas writes a dict as Python's repr
            except (ValueError, SyntaxError):
                try:
                    value = json.loads(cell)
                except json.JSONDecodeError:
                    value = None
        if not isinstance(value, dict):
            raise DataError(
                f"{path}, line {line}: column {column!r} is not a dict ({str(cell)[:60]!r}); "
                "expected the runs export of W&B's public API"
            )
        parsed[column] = _flatten(value)
    out = {"run": str(row["name"]), **parsed}
    for extra in ("id", "state"):
        if extra in row.index and isinstance(row[extra], str):
            out[extra] = row[extra]
    return out


def _app_row(row: pd.Series, columns: pd.Index) -> dict[str, Any]:
    """A row of the web app's export: fixed columns, then config and summary keys."""
    values = {str(c): row[c] for c in columns if c not in APP_COLUMNS and pd.notna(row[c])}
    state = row["State"] if isinstance(row.get("State"), str) else None
    # The app's export does not say which keys are config and which are summary.
    return {"run": str(row["Name"]), "state": state, "config": values, "summary": {}}


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config keys joined with ``.``, as W&B shows them; ``_wandb`` left out."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "_wandb":
            continue
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(_flatten(item, f"{name}."))
        else:
            out[name] = item
    return out


def _float(value: Any, path: Path, run: str, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: run {run!r}, {key!r} is {value!r}; expected a number") from None
    return number


def _run_values(
    run: str,
    values: Mapping[str, Any],
    path: Path,
    params: str,
    key: str | None,
    mapping: dict[str, float] | None,
    map_path: str | Path | None,
    n_params: float | None,
    loss_col: str | None,
    tokens_col: str | None,
) -> dict[str, Any]:
    """The canonical columns of one run from its config and summary values."""
    loss_key = loss_col or next((k for k in LOSS_TAGS if k in values), None)
    if loss_key is None:
        loss_key = next((k for k in TRAIN_LOSS_TAGS if k in values), None)
        if loss_key is not None:
            warnings.warn(
                f"{path}: run {run!r} has no evaluation loss; using {loss_key!r}",
                DataWarning,
                stacklevel=4,
            )
    if loss_key is None or loss_key not in values:
        raise DataError(
            f"{path}: run {run!r} has no loss {loss_key or ''!r} (tried "
            f"{', '.join(LOSS_TAGS + TRAIN_LOSS_TAGS)}); keys: {sorted(values)[:20]}. "
            "Name it with --loss-col"
        )
    token_key = tokens_col or next((k for k in TOKEN_TAGS if k in values), None)
    tokens = _float(values[token_key], path, run, token_key) if token_key in values else math.nan
    shape, _ = shape_from_config(values)
    found = None
    name = first_key(values, key)
    if key is not None and name is None and mapping is None and not n_params:
        raise DataError(f"{path}: run {run!r} has no key {key!r} (the parameter count)")
    record: dict[str, Any] = {}
    if name is not None and (key is not None or shape is None):
        found = _float(values[name], path, run, name)
    elif shape is not None:
        counts = param_counts(shape)
        found = float(counts[params])
        record.update({f"params_{c}": float(v) for c, v in counts.items()})
    count, origin = resolve_params(
        run, found, params_map=mapping, map_path=map_path, n_params=n_params, source=path
    )
    if origin != "log":
        record = {}
    record.update(
        run=run, params=count, tokens=tokens, loss=_float(values[loss_key], path, run, loss_key)
    )
    if shape is not None:
        record["flops"] = tokens * flops_per_token(shape)
        log.info(
            "flops of runs whose config is a model of a family we know: ours, attention included"
        )
    else:
        record["flops"] = 6.0 * count * tokens
    return record


# --------------------------------------------------------------------------------------
# Offline run directories


def find_run_files(path: str | Path) -> list[Path]:
    """The ``.wandb`` record logs under ``path`` (a file, a run dir or a ``wandb/`` dir);
    each once, though ``latest-run`` links to one of them."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".wandb" else []
    seen: dict[Path, Path] = {}
    for file in sorted(path.rglob("*.wandb")):
        parts = file.relative_to(path).parts
        if any(p.startswith(".") or p == "latest-run" for p in parts):
            continue
        seen.setdefault(file.resolve(), file)
    return sorted(seen.values())


def read_run_file(path: str | Path) -> dict[str, Any]:
    """The run id, name, config, summary, history and exit code of one ``.wandb`` file.

    Returns
    -------
    dict
        ``id``, ``name`` (the display name, else the id), ``config`` and ``summary``
        (flat dicts, nested keys joined with ``.``), ``history`` (a list of dicts, one per
        logged step, with ``_step``) and ``exit_code`` (None when the run has not
        finished).
    """
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as err:
        raise OptionalDependencyError(
            'reading W&B run files (.wandb) needs the wandb package: pip install "scaling-lab[wandb]"'
        ) from err
    path = Path(path)
    run: dict[str, Any] = {"id": None, "name": None, "config": {}, "summary": {}, "history": []}
    run["exit_code"] = None
    for data in _records(path):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(data)
        except Exception as err:  # protobuf's DecodeError, or worse
            raise DataError(f"{path}: a record is not a W&B record ({err})") from None
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"] = record.run.run_id or run["id"]
            run["name"] = record.run.display_name or run["name"]
            _update(run["config"], record.run.config.update, path)
        elif kind == "config":
            _update(run["config"], record.config.update, path)
        elif kind == "summary":
            _update(run["summary"], record.summary.update, path)
        elif kind == "history":
            row: dict[str, Any] = {}
            _update(row, record.history.item, path)
            row.setdefault("_step", record.history.step.num)
            run["history"].append(row)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    run["config"] = _flatten({k: v for k, v in run["config"].items()})
    run["name"] = run["name"] or run["id"] or path.stem
    return run


def _update(target: dict[str, Any], items: Any, path: Path) -> None:
    for item in items:
        key = item.key or ".".join(item.nested_key)
        try:
            target[key] = json.loads(item.value_json)
        except json.JSONDecodeError:
            raise DataError(
                f"{path}: key {key!r} holds {item.value_json[:60]!r}, not JSON"
            ) from None


def _records(path: Path) -> Iterator[bytes]:
    """The data of each record of a W&B record log."""
    blob = path.read_bytes()
    if len(blob) < _FILE_HEADER.size or _FILE_HEADER.unpack_from(blob) != (
        _IDENT,
        _MAGIC,
        _VERSION,
    ):
        raise DataError(f"{path}: not a W&B run file (no ':W&B' header of version 0)")
    pos, pending = _FILE_HEADER.size, b""
    while pos < len(blob):
        left = _BLOCK - pos % _BLOCK
        if left < _RECORD_HEADER.size:  # a block's tail too short for a header: padding
            pos += left
            continue
        if pos + _RECORD_HEADER.size > len(blob):
            break
        crc, length, kind = _RECORD_HEADER.unpack_from(blob, pos)
        if kind == 0 and length == 0:  # zero padding up to the block's end
            pos += left
            continue
        data = blob[pos + _RECORD_HEADER.size : pos + _RECORD_HEADER.size + length]
        if len(data) < length:
            warnings.warn(
                f"{path}: last record cut short at byte {pos} (a run still writing); skipped",
                DataWarning,
                stacklevel=3,
            )
            return
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise DataError(f"{path}: record at byte {pos} fails its checksum (file damaged)")
        pos += _RECORD_HEADER.size + length
        if kind == _FULL:
            yield data
        elif kind == _FIRST:
            pending = data
        elif kind == _MIDDLE:
            pending += data
        elif kind == _LAST:
            yield pending + data
            pending = b""
        else:
            raise DataError(f"{path}: record at byte {pos} has unknown type {kind}")


def load_wandb_offline(
    path: str | Path,
    *,
    params: str = "nonembed",
    loss_col: str | None = None,
    tokens_col: str | None = None,
    params_col: str | None = None,
    params_map: str | Path | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """Learning curves of the W&B runs written offline under ``path``.

    One curve per ``.wandb`` file: its history's steps (``_step``), loss and tokens as
    for TensorBoard (:func:`analysis.io.logs.scalar_curve`, ``loss_col``/``tokens_col``
    name history keys); the config's keys become columns. Runs that did not exit with
    code 0 are left out with a :class:`DataWarning`. A run is named by its display
    name (with its id where two share one).
    """
    path = Path(path)
    files = find_run_files(path)
    if not files:
        raise DataError(f"{path}: no W&B run files (*.wandb) found")
    runs = [read_run_file(f) for f in files]
    names = [r["name"] for r in runs]
    for run in runs:
        if names.count(run["name"]) > 1:
            run["name"] = f"{run['name']}-{run['id']}"
    unfinished = [r for r in runs if r["exit_code"] != 0]
    if unfinished:
        warnings.warn(
            f"{path}: left out {len(unfinished)} run(s) that did not finish: "
            + "; ".join(f"{r['name']} (exit code {r['exit_code']})" for r in unfinished),
            DataWarning,
            stacklevel=2,
        )
    runs = [r for r in runs if r["exit_code"] == 0]
    if not runs:
        raise DataError(f"{path}: no W&B run here finished (exit code 0)")
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    key = None if params_map is not None else params_col
    frames = []
    for run in runs:
        frames.append(
            _offline_curve(
                run,
                path,
                params,
                key,
                mapping,
                params_map,
                n_params,
                loss_col,
                tokens_col,
                tokens_per_step,
            )
        )
    return stack(frames, where)


def _offline_curve(
    run: dict[str, Any],
    path: Path,
    params: str,
    key: str | None,
    mapping: dict[str, float] | None,
    map_path: str | Path | None,
    n_params: float | None,
    loss_col: str | None,
    tokens_col: str | None,
    tokens_per_step: float | None,
) -> pd.DataFrame:
    name = run["name"]
    scalars: dict[str, dict[int, float]] = {}
    for row in run["history"]:
        step = int(row["_step"])
        for tag, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars.setdefault(tag, {})[step] = float(value)
    scalars.pop("_step", None)
    if not scalars:
        raise DataError(f"{path}: run {name!r} logged no history")
    curve = scalar_curve(scalars, name, path, loss_col, tokens_col, what="key")
    config, summary = run["config"], run["summary"]
    shape, _ = shape_from_config(config)
    values = {**summary, **config}
    found = None
    listed = first_key(values, key)
    if key is not None and listed is None and mapping is None and not n_params:
        raise DataError(
            f"{path}: run {name!r} has no config or summary key {key!r} (the parameter count)"
        )
    from_shape = listed is None or (key is None and shape is not None)
    if listed is not None and not from_shape:
        found = _float(values[listed], path, name, listed)
    elif shape is not None:
        found = float(param_counts(shape)[params])
    count, origin = resolve_params(
        name, found, params_map=mapping, map_path=map_path, n_params=n_params, source=path
    )
    if shape is not None and "tokens" in curve.columns:
        curve["flops"] = curve["tokens"] * flops_per_token(shape)
        log.info(
            "flops of runs whose config is a model of a family we know: ours, attention included"
        )
    if shape is not None and origin == "log" and from_shape:
        for convention, value in param_counts(shape).items():
            curve[f"params_{convention}"] = float(value)
    for column, value in config.items():
        if column not in curve.columns and np.isscalar(value):
            curve[column] = value
    curve["run_id"] = run["id"]
    return _finish_curve(curve, path, name, count, tokens_per_step, None)
