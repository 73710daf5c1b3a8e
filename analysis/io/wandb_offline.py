"""Weights & Biases offline run directories, read from their record logs.

An offline run directory (``wandb/offline-run-<time>-<id>/`` as ``wandb.init(mode=
"offline")`` leaves it, or a directory of several) holds ``run-<id>.wandb``, a log of
protocol-buffer records: it needs ``pip install "scaling-lab[wandb]"`` for their schema.
Each run's curve is read as a TensorBoard run's is (:func:`analysis.io.logs.scalar_curve`);
its parameter count as for the exports (:mod:`analysis.io.wandb`).
"""

from __future__ import annotations

import json
import logging
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.io.checks import POSITIVE, STEP, check_steps, number
from analysis.io.errors import DataError, DataWarning, OptionalDependencyError
from analysis.io.logs import (
    _finish_curve,
    first_key,
    read_params_map,
    resolve_params,
    scalar_curve,
    stack,
)
from analysis.io.model_config import flops_per_token, param_counts, shape_from_config
from analysis.io.wandb import _flatten, _float

log = logging.getLogger("analysis.io")

# The record log (leveldb's log format, as W&B writes it): a 7-byte file header, then
# 32 KiB blocks of records, each a 7-byte header (CRC-32 of type + data, length, type)
# and data; a record that does not fit a block is split FIRST, MIDDLE..., LAST.
_FILE_HEADER = struct.Struct("<4sHB")
_RECORD_HEADER = struct.Struct("<IHB")
_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


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
        logged step, with ``_step``), ``exit_code`` (None when the run has not
        finished) and ``file`` (the path read).
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
    run["file"] = str(path)
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
    claimed: dict[str, str] = {}
    for run in runs:
        if run["name"] in claimed:
            raise DataError(
                f"{run['file']}: run {run['name']!r} (id {run['id']!r}) is also the run of "
                f"{claimed[run['name']]}: two run files claim one run (a resumed run?); "
                "read them one at a time, or move one away"
            )
        claimed[run["name"]] = run["file"]
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
    file = run.get("file", str(path))
    odd: dict[str, tuple[int, Any]] = {}  # key -> the first step it logged a non-number
    steps = []
    for row in run["history"]:
        step = int(number(row.get("_step"), f"{file}: run {name!r}", "_step", STEP))
        steps.append(step)
        for tag, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars.setdefault(tag, {})[step] = float(value)
            elif isinstance(value, (bool, str)) and tag not in odd:
                odd[tag] = (step, value)
    origins = [f"{file}, step {step}" for step in steps]
    check_steps(pd.DataFrame({"step": steps, "origin": origins}), file, backwards="error")
    scalars.pop("_step", None)
    if not scalars:
        raise DataError(f"{path}: run {name!r} logged no history")
    curve = scalar_curve(scalars, name, path, loss_col, tokens_col, what="key")
    for tag in curve.attrs["tags"].values():
        if tag in odd:
            step, value = odd[tag]
            raise DataError(
                f"{file}, step {step}: key {tag!r} is {value!r}; expected a number (the "
                f"{'loss' if tag == curve.attrs['tags']['loss'] else 'token count'} of run "
                f"{name!r})"
            )
    curve["origin"] = [f"{file}, step {step:g}" for step in curve["step"]]
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
        found = _float(values[listed], str(path), name, listed, POSITIVE)
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
