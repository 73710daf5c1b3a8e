"""Load run records and imported training logs into pandas DataFrames.

Every loader returns a DataFrame with the canonical columns

    run, params, tokens, flops, loss

(plus ``step`` for curves, plus whatever else the source carries), so the fitting
and plotting code never needs to know where the numbers came from. Unknown values
are NaN; :func:`require` checks that a use has the columns it needs.

Run records also say how each run was trained, for the analyses that depend on it:
``schedule`` (``cosine``, ``wsd`` or ``wsd_s``), ``trunk`` (the training trajectory a
record comes from: the several token budgets of one warmup-stable-decay trajectory are
records of their own that share it), ``budget_index`` (the budget's place among its
trunk's), ``flops_target`` (the compute a run was asked for, IsoFLOP sweeps) and
``unique_tokens``/``epochs`` (data-constrained sweeps). Records written before these
fields existed read as single-budget cosine runs, each its own trunk. Any table may
carry a ``trunk`` column too (or map one with ``trunk_col``): the bootstrap then draws
all rows of a trunk together (see :func:`analysis.resample.bootstrap_groups`).

Sources:

* our run records (``summary.json`` + ``metrics.jsonl``, see docs/run-record.md):
  :func:`load_runs` (one row per run) and :func:`load_curves` (one row per evaluation);
* tables: CSV, TSV and JSONL with a column mapping (:func:`load_table`);
* a Hugging Face ``trainer_state.json`` (:func:`load_trainer_state`);
* TensorBoard event files (:func:`load_tensorboard`, needs the optional ``tensorboard``
  package);
* :func:`load` picks the right one from what the path is.

Problems in the data raise :class:`DataError`, whose message names the file, the line or
field, and what was expected. Things worth knowing that do not stop the analysis (runs left
out, duplicates dropped) are reported with :class:`DataWarning`; notes (values derived)
go to the ``analysis.io`` logger.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: The columns every loader provides, in this order.
CANONICAL = ("run", "params", "tokens", "flops", "loss")
#: Parameter-count conventions kept in the run record (``--params``).
PARAM_CONVENTIONS = ("nonembed", "matmul", "total")
#: The only run status whose numbers are final; every other one is left out.
COMPLETED = "completed"
#: Newest run-record schema this reader understands.
SCHEMA_VERSION = 1
#: Learning-rate schedules of the run record (``schedule``; absent means ``cosine``).
SCHEDULES = ("cosine", "wsd", "wsd_s")
#: Schedules whose records are the decayed ends of budgets cut from one trunk: only a
#: record's last point is at a decayed learning rate.
DECAYED_SCHEDULES = ("wsd", "wsd_s")

# Fields of summary.json copied into the runs table as they are (when present).
_SUMMARY_FIELDS = (
    "sweep",
    "status",
    "family",
    "n_layers",
    "d_model",
    "n_heads",
    "d_ff",
    "vocab_size",
    "context",
    "params_nonembed",
    "params_matmul",
    "params_total",
    "tokens",
    "tokens_target",
    "flops",
    "flops_6nd",
    "flops_per_token",
    "step",
    "steps_total",
    "final_val_loss",
    "best_val_loss",
    "wall_s",
    "tokens_per_s",
    "mfu",
    "device",
    "seed",
    "budgets",
)
_SUMMARY_NUMERIC = (
    "params_nonembed",
    "params_matmul",
    "params_total",
    "tokens",
    "flops",
    "final_val_loss",
)
_METRICS_NUMERIC = ("step", "tokens", "flops", "val_loss")
# How a run was trained: copied from the runs table onto every row of its curve.
_TRAINING_COLUMNS = ("schedule", "trunk", "budget_index")

# Tag names tried, in order, when a TensorBoard log does not say which tag is the loss.
# The "eval/..." and "train/..." forms are what Hugging Face's TensorBoard callback writes.
_TB_LOSS_TAGS = ("eval/loss", "val_loss", "val/loss", "eval_loss", "validation/loss", "loss/val")
_TB_TRAIN_LOSS_TAGS = ("train/loss", "train_loss", "loss/train", "loss")
_TB_TOKEN_TAGS = ("train/num_input_tokens_seen", "num_input_tokens_seen", "tokens")

_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


class DataError(ValueError):
    """The input cannot be read as asked; the message says where and what was expected."""


class DataWarning(UserWarning):
    """Something in the input was skipped or changed; the analysis goes on without it."""


class OptionalDependencyError(ImportError):
    """A source format needs a package that is an optional extra of scaling-lab."""


# --------------------------------------------------------------------------------------
# Our run records


def find_summaries(path: str | Path) -> list[Path]:
    """Return the ``summary.json`` files of a run dir, a sweep dir or a results dir.

    Hidden directories (``.hydra``, ``.submitit``) are not searched.
    """
    path = Path(path)
    if path.is_file():
        return [path] if path.name == "summary.json" else []
    if (path / "summary.json").is_file():
        return [path / "summary.json"]
    return sorted(
        p
        for p in path.rglob("summary.json")
        if not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def load_runs(
    path: str | Path,
    params: str = "nonembed",
    *,
    where: str | None = None,
    **mapping: str | None,
) -> pd.DataFrame:
    """One row per completed run, from the ``summary.json`` files under ``path``.

    Parameters
    ----------
    path
        A run directory, a sweep directory, or a results directory holding several sweeps.
    params
        Which parameter count becomes the ``params`` column: ``nonembed`` (Kaplan's N),
        ``matmul`` (non-embedding + LM head) or ``total``. All three stay as
        ``params_nonembed``, ``params_matmul`` and ``params_total``.
    where
        A pandas query applied at the end, e.g. ``"loss < 3.44"``.
    **mapping
        ``params_col``, ``tokens_col``, ``flops_col``, ``loss_col``, ``trunk_col``: a
        summary field to use instead of the default for that canonical column (e.g.
        ``loss_col="best_val_loss"``, ``flops_col="flops_6nd"``).

    Returns
    -------
    pandas.DataFrame
        ``run, params, tokens, flops, loss`` (loss = ``final_val_loss``) then the other
        summary fields, ``sweep``, ``status`` and ``path`` (the run directory), and how
        the run was trained: ``schedule`` (``"cosine"`` when the record does not say),
        ``trunk`` (its ``trunk_id``, else the run's own id), ``budget_index`` (0 when
        absent), ``budgets`` (the trunk's token budgets, or None), ``flops_target``,
        ``unique_tokens`` and ``epochs`` (NaN when absent; ``epochs`` is derived as
        ``tokens / unique_tokens`` when only the latter is recorded).
        Runs that are not ``completed`` are left out with a :class:`DataWarning` naming
        them; their ids and statuses are in ``df.attrs["excluded"]``. A trunk's own
        bookkeeping record (``"role": "trunk"``, its loss at the un-decayed stable
        learning rate) is not a result and is skipped silently, as are fine-tuning and
        compression records.
    """
    _check_convention(params)
    summaries = find_summaries(path)
    if not summaries:
        raise DataError(f"{path}: no summary.json found (expected a run, sweep or results dir)")
    rows, excluded = [], []
    for file in summaries:
        record = _read_summary(file)
        if record.get("job", "pretrain") != "pretrain":
            continue  # fine-tuning and compression records: analysis.downstream reads those
        if record.get("role") == "trunk":
            continue  # a trunk's bookkeeping: its budgets are records of their own
        _check_identity(record, file)
        status = record["status"]
        if status != COMPLETED:
            excluded.append(
                {"run": record["run_id"], "status": status, "error": record.get("error")}
            )
            continue
        rows.append(_summary_row(record, file, params))
    _warn_excluded(excluded)
    if not rows:
        raise DataError(f"{path}: no completed runs among {len(summaries)} run records")
    df = pd.DataFrame(rows)
    df = _apply_mapping(df, mapping, source=str(path))
    df = _drop_duplicates(df, source=str(path))
    _warn_mixed_corpora(df)
    df = _order_columns(df)
    df.attrs["excluded"] = excluded
    return apply_where(df, where)


def load_curves(
    path: str | Path,
    params: str = "nonembed",
    *,
    where: str | None = None,
    **mapping: str | None,
) -> pd.DataFrame:
    """Long-form learning curves of the completed runs under ``path``.

    One row per line of each run's ``metrics.jsonl``: ``run, params, tokens, flops, loss``
    (loss = ``val_loss`` at that evaluation), ``step``, ``train_loss``, ``lr``,
    ``elapsed_s``, ``phase`` (``warmup``, ``stable``, ``decay`` or ``cosine``; None where
    the record does not say), plus the run's ``family``, ``d_model``, ``n_layers``,
    ``sweep``, ``schedule``, ``trunk``, ``budget_index`` and its three parameter counts.
    A budget record of a trunk holds the trunk's path up to where its decay starts, then
    its own decay: only its last row is at the decayed end of that budget.
    Arguments are those of :func:`load_runs`.
    """
    runs = load_runs(path, params)
    frames = []
    for run in runs.itertuples(index=False):
        metrics = Path(run.path) / "metrics.jsonl"
        if not metrics.is_file():
            warnings.warn(
                f"run {run.run}: no metrics.jsonl in {run.path}", DataWarning, stacklevel=2
            )
            continue
        records = _read_jsonl(metrics)
        for line, rec in records:
            for field in _METRICS_NUMERIC:
                _number(rec.get(field), metrics, field, line=line)
        curve = pd.DataFrame([rec for _, rec in records])
        if curve.empty:
            continue
        curve = curve.rename(columns={"val_loss": "loss"})
        if "phase" not in curve.columns:
            curve["phase"] = None  # written before rows said which phase they are in
        for column in ("run", "params", "params_nonembed", "params_matmul", "params_total"):
            curve[column] = getattr(run, column)
        for column in ("family", "d_model", "n_layers", "sweep", *_TRAINING_COLUMNS):
            if column in runs.columns:
                curve[column] = getattr(run, column)
        frames.append(curve)
    if not frames:
        raise DataError(f"{path}: none of the completed runs has a metrics.jsonl with data")
    df = pd.concat(frames, ignore_index=True)
    df = _apply_mapping(df, mapping, source=str(path))
    df = _drop_duplicates(df, source=str(path))
    df = _order_columns(df).sort_values(["params", "run", "step"], ignore_index=True)
    df.attrs["excluded"] = runs.attrs.get("excluded", [])
    return apply_where(df, where)


def _check_convention(params: str) -> None:
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")


def _read_summary(file: Path) -> dict[str, Any]:
    record = _read_json(file)
    if not isinstance(record, dict):
        raise DataError(f"{file}: expected a JSON object, got {type(record).__name__}")
    schema = record.get("schema")
    if isinstance(schema, int) and schema > SCHEMA_VERSION:
        raise DataError(
            f"{file}: field 'schema' is {schema}, newer than this reader understands "
            f"({SCHEMA_VERSION}); update scaling-lab"
        )
    return record


def _check_identity(record: dict[str, Any], file: Path) -> None:
    for field in ("run_id", "status"):
        if not isinstance(record.get(field), str):
            raise DataError(f"{file}: field {field!r} missing or not a string")


def _summary_row(record: dict[str, Any], file: Path, params: str) -> dict[str, Any]:
    for field in _SUMMARY_NUMERIC:
        _number(record.get(field), file, field)
    row: dict[str, Any] = {"run": record["run_id"]}
    row.update({field: record.get(field) for field in _SUMMARY_FIELDS})
    row["params"] = record[f"params_{params}"]
    row["loss"] = record["final_val_loss"]
    if row["sweep"] is None:
        row["sweep"] = file.parent.parent.name
    corpus = record.get("corpus")
    if isinstance(corpus, dict):
        row["corpus"] = corpus.get("name")
        row["corpus_fingerprint"] = corpus.get("fingerprint")
    row.update(_training_fields(record, file))
    row["path"] = str(file.parent)
    return row


def _training_fields(record: dict[str, Any], file: Path) -> dict[str, Any]:
    """How the run was trained, with the defaults of a record that predates the fields:
    a cosine run that is its own trunk, its only budget, asked for no compute target."""
    schedule = record.get("schedule")
    if schedule is None:
        schedule = "cosine"
    if schedule not in SCHEDULES:
        raise DataError(
            f"{file}: field 'schedule' is {schedule!r}; expected one of "
            f"{', '.join(SCHEDULES)} (a newer schedule needs a newer scaling-lab)"
        )
    trunk = record.get("trunk_id")
    if trunk is None:
        trunk = record["run_id"]
    elif not isinstance(trunk, str):
        raise DataError(f"{file}: field 'trunk_id' is {trunk!r}; expected a string (a run id)")
    index = record.get("budget_index")
    if index is None:
        index = 0
    elif isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise DataError(
            f"{file}: field 'budget_index' is {index!r}; expected an integer >= 0 (the "
            "budget's position among its trunk's budgets)"
        )
    out: dict[str, Any] = {"schedule": schedule, "trunk": trunk, "budget_index": index}
    for field in ("flops_target", "unique_tokens", "epochs"):
        value = record.get(field)
        out[field] = math.nan if value is None else _number(value, file, field)
    if math.isnan(out["epochs"]) and out["unique_tokens"] > 0:
        out["epochs"] = float(record["tokens"]) / out["unique_tokens"]
    return out


def _warn_excluded(excluded: list[dict[str, Any]]) -> None:
    if not excluded:
        return
    described = []
    for item in excluded:
        text = f"{item['run']} ({item['status']}"
        text += f": {item['error']})" if item.get("error") else ")"
        described.append(text)
    warnings.warn(
        f"left out {len(excluded)} run(s) that did not complete: {'; '.join(described)}",
        DataWarning,
        stacklevel=3,
    )


def _warn_mixed_corpora(df: pd.DataFrame) -> None:
    if "corpus_fingerprint" not in df.columns:
        return
    corpora = df["corpus_fingerprint"].dropna().unique()
    if len(corpora) > 1:
        warnings.warn(
            f"these runs were trained on {len(corpora)} different corpora "
            f"({', '.join(map(str, corpora))}): their losses are not comparable",
            DataWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------
# Tables: CSV, TSV, JSONL


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


# --------------------------------------------------------------------------------------
# Hugging Face trainer_state.json


def load_trainer_state(
    path: str | Path,
    *,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    loss_col: str | None = None,
    run: str | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """The learning curve of one Hugging Face ``Trainer`` run, from its ``trainer_state.json``.

    ``log_history`` holds training entries (``loss``) and evaluation entries
    (``eval_loss``), each with a ``step``. The curve has one row per step with an
    evaluation: ``loss`` = ``eval_loss`` (or the key named by ``loss_col``) and
    ``train_loss`` = the training loss logged at that step, if any. Without any
    evaluation the training loss is used, with a warning.

    Parameters
    ----------
    n_params
        The model's parameter count (a trainer state does not record it); without it
        ``params`` and ``flops`` are NaN.
    tokens_per_step
        Tokens per optimiser step, used when the log has no ``num_input_tokens_seen``.
    loss_col
        The ``log_history`` key to use as the loss.
    run
        The run name (default: the directory holding the file).
    """
    path = Path(path)
    state = _read_json(path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise DataError(
            f"{path}: expected a JSON object with a 'log_history' list "
            "(the trainer_state.json of a Hugging Face Trainer)"
        )
    loss_key = loss_col or "eval_loss"
    points: dict[int, dict[str, float]] = {}
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise DataError(f"{path}: log_history[{i}] is not an object")
        if "step" not in entry:
            raise DataError(f"{path}: log_history[{i}] has no 'step'")
        step = int(_number(entry["step"], path, f"log_history[{i}].step"))
        point = points.setdefault(step, {"step": step})
        for key, column in ((loss_key, "loss"), ("loss", "train_loss")):
            if key in entry:
                point[column] = _number(entry[key], path, f"log_history[{i}].{key}")
        if "num_input_tokens_seen" in entry:
            seen = _number(entry["num_input_tokens_seen"], path, f"log_history[{i}]")
            point["tokens"] = max(point.get("tokens", 0.0), seen)
    df = pd.DataFrame(sorted(points.values(), key=lambda p: p["step"]))
    if "loss" not in df.columns:
        if loss_col is not None or "train_loss" not in df.columns:
            raise DataError(f"{path}: no {loss_key!r} in log_history")
        warnings.warn(
            f"{path}: no eval_loss in log_history; using the training loss",
            DataWarning,
            stacklevel=2,
        )
        df["loss"] = df["train_loss"]
    df = df[df["loss"].notna()]
    name = run or path.resolve().parent.name
    return _finish_curve(df, path, name, n_params, tokens_per_step, where)


def _finish_curve(
    df: pd.DataFrame,
    path: Path,
    run: str,
    n_params: float | None,
    tokens_per_step: float | None,
    where: str | None,
) -> pd.DataFrame:
    """Complete an imported curve: tokens from steps, params from the option, flops 6ND."""
    df = df.copy()
    if "tokens" not in df.columns or df["tokens"].isna().all():
        df["tokens"] = df["step"] * tokens_per_step if tokens_per_step else np.nan
    df["params"] = float(n_params) if n_params else np.nan
    df["flops"] = 6.0 * df["params"] * df["tokens"]
    if df["flops"].isna().all():
        missing = "the model's parameter count" if not n_params else "token counts"
        log.info(f"{path}: no compute without {missing} (n_params, tokens_per_step)")
    df["run"] = run
    return apply_where(_order_columns(df).reset_index(drop=True), where)


# --------------------------------------------------------------------------------------
# TensorBoard


def load_tensorboard(
    path: str | Path,
    *,
    loss_col: str | None = None,
    tokens_col: str | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """Learning curves from TensorBoard event files: one run per directory holding them.

    Parameters
    ----------
    path
        An event file or a directory searched recursively for ``*tfevents*`` files.
    loss_col
        The scalar tag of the loss; by default the first present of ``eval/loss``,
        ``val_loss``, ``val/loss``, ``eval_loss``, ``validation/loss``, ``loss/val``,
        then (with a warning) a training-loss tag.
    tokens_col
        The scalar tag counting tokens seen (default: ``train/num_input_tokens_seen``,
        ``num_input_tokens_seen`` or ``tokens``); else ``tokens_per_step`` × step.
    n_params
        The model's parameter count, for ``params`` and ``flops``.

    Notes
    -----
    Needs the ``tensorboard`` package (``pip install 'scaling-lab[tensorboard]'``).
    """
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.util import tensor_util
    except ImportError as err:
        raise OptionalDependencyError(
            "reading TensorBoard event files needs the tensorboard package: "
            "pip install 'scaling-lab[tensorboard]'"
        ) from err
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*tfevents*"))
    if not files:
        raise DataError(f"{path}: no TensorBoard event files (*tfevents*) found")
    root = path.parent if path.is_file() else path
    by_run: dict[str, dict[str, dict[int, float]]] = {}
    for file in files:
        run = str(file.parent.relative_to(root)) if file.parent != root else root.name
        scalars = by_run.setdefault(run, {})
        try:
            for event in EventFileLoader(str(file)).Load():
                for value in event.summary.value:
                    # Newer writers store scalars as tensors; the loader converts old
                    # simple_value scalars to tensors too, so one path reads both.
                    if not value.HasField("tensor"):
                        continue
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size == 1 and np.issubdtype(array.dtype, np.number):
                        point = float(array.reshape(-1)[0])
                        scalars.setdefault(value.tag, {})[int(event.step)] = point
        except Exception as err:  # the reader raises several protobuf/IO error types
            raise DataError(f"{file}: not a readable TensorBoard event file ({err})") from None
    frames = [
        _tensorboard_curve(scalars, run, path, loss_col, tokens_col)
        for run, scalars in sorted(by_run.items())
    ]
    df = pd.concat(frames, ignore_index=True)
    return _finish_tensorboard(df, path, n_params, tokens_per_step, where)


def _tensorboard_curve(
    scalars: dict[str, dict[int, float]],
    run: str,
    path: Path,
    loss_tag: str | None,
    tokens_tag: str | None,
) -> pd.DataFrame:
    tags = sorted(scalars)
    if loss_tag is not None:
        if loss_tag not in scalars:
            raise DataError(f"{path}: run {run!r} has no tag {loss_tag!r}; tags: {tags}")
        chosen = loss_tag
    else:
        chosen = next((t for t in _TB_LOSS_TAGS if t in scalars), None)
        if chosen is None:
            chosen = next((t for t in _TB_TRAIN_LOSS_TAGS if t in scalars), None)
            if chosen is None:
                raise DataError(
                    f"{path}: run {run!r} has no loss tag (tried "
                    f"{', '.join(_TB_LOSS_TAGS + _TB_TRAIN_LOSS_TAGS)}); tags: {tags}. "
                    "Name the tag with the loss column option"
                )
            warnings.warn(
                f"{path}: run {run!r} has no evaluation loss; using {chosen!r}",
                DataWarning,
                stacklevel=3,
            )
    df = pd.DataFrame({"step": list(scalars[chosen]), "loss": list(scalars[chosen].values())})
    train_tag = next((t for t in _TB_TRAIN_LOSS_TAGS if t in scalars and t != chosen), None)
    if train_tag is not None:
        df["train_loss"] = df["step"].map(scalars[train_tag])
    token_tag = _token_tag(scalars, tokens_tag)
    if token_tag is not None:
        df["tokens"] = df["step"].map(scalars[token_tag])
    df["run"] = run
    return df.sort_values("step")


def _token_tag(scalars: Mapping[str, Any], tag: str | None) -> str | None:
    """The tag counting tokens: the one asked for, else the first known name present."""
    if tag is not None:
        return tag if tag in scalars else None
    return next((t for t in _TB_TOKEN_TAGS if t in scalars), None)


def _finish_tensorboard(
    df: pd.DataFrame,
    path: Path,
    n_params: float | None,
    tokens_per_step: float | None,
    where: str | None,
) -> pd.DataFrame:
    frames = [
        _finish_curve(group, path, str(run), n_params, tokens_per_step, None)
        for run, group in df.groupby("run", sort=False)
    ]
    return apply_where(pd.concat(frames, ignore_index=True), where)


# --------------------------------------------------------------------------------------
# Dispatch, filtering, checks


def load(
    path: str | Path,
    *,
    kind: str = "runs",
    params: str = "nonembed",
    where: str | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    **mapping: str | None,
) -> pd.DataFrame:
    """Load whatever ``path`` is, as runs (one row per run) or as curves.

    Parameters
    ----------
    path
        A run/sweep/results directory (``summary.json`` files), a ``.csv``/``.tsv``/
        ``.jsonl`` table, a ``trainer_state.json``, or TensorBoard event files (a file
        or a directory of them).
    kind
        ``"runs"``: one row per run (for sources that are curves, the last evaluation of
        each run); ``"curves"``: one row per evaluation (for tables, the rows as they are).
    params
        Parameter convention for run records (``nonembed``, ``matmul``, ``total``).
    where
        A pandas query applied after loading.
    n_params, tokens_per_step
        For curve logs that do not record them (trainer state, TensorBoard).
    **mapping
        ``params_col``, ``tokens_col``, ``flops_col``, ``loss_col``, ``run_col``,
        ``step_col``, ``trunk_col``: see :func:`load_table`; for TensorBoard ``loss_col``
        and ``tokens_col`` name scalar tags, for a trainer state ``loss_col`` names a key.
    """
    if kind not in ("runs", "curves"):
        raise DataError(f"kind={kind!r}: expected 'runs' or 'curves'")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    curve_opts = {"n_params": n_params, "tokens_per_step": tokens_per_step}
    # Curve logs hold one run per file or directory: they have no run or step column to map.
    curve_mapping = {k: v for k, v in mapping.items() if k in ("loss_col", "tokens_col")}
    if find_summaries(path):
        loader = load_runs if kind == "runs" else load_curves
        run_mapping = {k: v for k, v in mapping.items() if k != "run_col" and k != "step_col"}
        return loader(path, params, where=where, **run_mapping)
    if path.is_dir():
        if any(path.rglob("*tfevents*")):
            curves = load_tensorboard(path, **curve_opts, **curve_mapping)
        elif (path / "trainer_state.json").is_file():
            curves = load_trainer_state(path / "trainer_state.json", **curve_opts, **curve_mapping)
        else:
            raise DataError(
                f"{path}: found no summary.json, trainer_state.json or TensorBoard event "
                "files in this directory"
            )
    elif "tfevents" in path.name:
        curves = load_tensorboard(path, **curve_opts, **curve_mapping)
    elif path.suffix.lower() == ".json":
        curves = load_trainer_state(path, **curve_opts, **curve_mapping)
    elif path.suffix.lower() in (*_TABLE_SUFFIXES, *_JSONL_SUFFIXES):
        # A table is taken as it is: its rows are runs or curve points, as the user made it.
        return load_table(path, where=where, **mapping)
    else:
        raise DataError(
            f"{path}: unknown format (expected a results dir, .csv, .tsv, .jsonl, "
            "trainer_state.json or TensorBoard event files)"
        )
    result = curves if kind == "curves" else final_points(curves)
    return apply_where(result, where)


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
                "log that does not record the model size needs --n-params)"
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


# --------------------------------------------------------------------------------------
# Helpers


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


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}, line {err.lineno} column {err.colno}: invalid JSON ({err.msg})"
        ) from None


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file.

    A last line that does not parse and has no newline is a write cut short (a run
    killed mid-append): it is skipped with a warning rather than failing the whole file.
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
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not text.endswith("\n"):
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


def _number(value: Any, path: Path, field: str, line: int | None = None) -> float:
    """``value`` as a float, or a DataError naming the file, line and field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        where = f"{path}, line {line}" if line is not None else str(path)
        got = "missing" if value is None else f"{value!r}"
        raise DataError(f"{where}: field {field!r} is {got}; expected a number")
    if math.isnan(value):
        where = f"{path}, line {line}" if line is not None else str(path)
        raise DataError(f"{where}: field {field!r} is NaN; expected a number")
    return float(value)
