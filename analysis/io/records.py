"""Our run records: ``summary.json`` + ``metrics.jsonl`` (see docs/run-record.md)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import progress
from analysis.io.checks import COUNT, POSITIVE, STEP, check_frame, check_steps, number
from analysis.io.errors import DataError, DataWarning
from analysis.io.frames import _apply_mapping, _drop_duplicates, _order_columns, apply_where
from analysis.io.jsonfiles import _read_json, _read_jsonl

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
# The numbers every completed record has, and the rule each follows (see analysis.io.checks).
_SUMMARY_NUMERIC = {
    "params_nonembed": POSITIVE,
    "params_matmul": POSITIVE,
    "params_total": POSITIVE,
    "tokens": POSITIVE,
    "flops": POSITIVE,
    "final_val_loss": POSITIVE,
}
# Numbers a record may carry (null when unknown): checked when present.
_SUMMARY_OPTIONAL = {
    "n_layers": STEP,
    "d_model": STEP,
    "n_heads": STEP,
    "d_ff": STEP,
    "vocab_size": STEP,
    "context": STEP,
    "tokens_target": POSITIVE,
    "flops_6nd": POSITIVE,
    "flops_per_token": POSITIVE,
    "step": STEP,
    "steps_total": STEP,
    "best_val_loss": POSITIVE,
    "wall_s": COUNT,
    "tokens_per_s": COUNT,
    "mfu": COUNT,
}
_METRICS_NUMERIC = {"step": STEP, "tokens": COUNT, "flops": COUNT, "val_loss": POSITIVE}
_METRICS_OPTIONAL = {"train_loss": POSITIVE, "lr": COUNT, "elapsed_s": COUNT}
#: The jobs whose records :mod:`analysis.downstream` reads (this reader skips them).
OTHER_JOBS = ("finetune", "compress")
# How a run was trained: copied from the runs table onto every row of its curve.
_TRAINING_COLUMNS = ("schedule", "trunk", "budget_index", "seed")


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
        A row filter (:func:`analysis.query.query`) applied at the end, e.g. ``"loss < 3.44"``.
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
    rows, excluded, unknown = [], [], []
    claimed: dict[tuple[str, str], Path] = {}
    with progress.bar(len(summaries), "reading records") as done:
        records = []
        for i, file in enumerate(summaries, 1):
            records.append((file, _read_summary(file)))
            done(i)
    for file, record in records:
        job = record.get("job", "pretrain")
        if job != "pretrain":
            if job not in OTHER_JOBS:
                unknown.append(f"{file} (job {job!r})")
            continue  # fine-tuning and compression records: analysis.downstream reads those
        role = record.get("role")
        if role == "trunk":
            continue  # a trunk's bookkeeping: its budgets are records of their own
        if role is not None:
            raise DataError(
                f"{file}: field 'role' is {role!r}; expected 'trunk' or no role (a record "
                "of a newer scaling-lab? update it)"
            )
        _check_identity(record, file)
        status = record["status"]
        if status != COMPLETED:
            excluded.append(
                {"run": record["run_id"], "status": status, "error": record.get("error")}
            )
            continue
        row = _summary_row(record, file, params)
        _claim(claimed, row, file)
        rows.append(row)
    _warn_excluded(excluded)
    if unknown:
        warnings.warn(
            f"left out {len(unknown)} record(s) of a job this reader does not know (expected "
            f"pretrain, {', '.join(OTHER_JOBS)}): {'; '.join(unknown[:5])}",
            DataWarning,
            stacklevel=2,
        )
    _warn_shared_ids(claimed)
    if not rows:
        raise DataError(f"{path}: no completed runs among {len(summaries)} run records")
    df = pd.DataFrame(rows)
    df = _apply_mapping(df, mapping, source=str(path))
    df = _drop_duplicates(df, source=str(path), ignore=("origin",))
    _warn_mixed_corpora(df)
    df = _order_columns(df)
    check_frame(df, derived=_mapped(mapping))
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
    with progress.bar(len(runs), "reading curves") as done:
        for i, run in enumerate(runs.itertuples(index=False), 1):
            curve = _curve(run, runs.columns)
            if curve is not None:
                frames.append(curve)
            done(i)
    if not frames:
        raise DataError(f"{path}: none of the completed runs has a metrics.jsonl with data")
    df = pd.concat(frames, ignore_index=True)
    df = _apply_mapping(df, mapping, source=str(path))
    df = _drop_duplicates(df, source=str(path), ignore=("origin",))
    df = _order_columns(df).sort_values(["params", "run", "step"], ignore_index=True)
    check_frame(df, derived=_mapped(mapping))
    df.attrs["excluded"] = runs.attrs.get("excluded", [])
    return apply_where(df, where)


def _curve(run: Any, columns: pd.Index) -> pd.DataFrame | None:
    """One run's learning curve from its metrics.jsonl, checked; None when it has none."""
    metrics = Path(run.path) / "metrics.jsonl"
    if not metrics.is_file():
        warnings.warn(f"run {run.run}: no metrics.jsonl in {run.path}", DataWarning, stacklevel=3)
        return None
    records = _read_jsonl(metrics)
    for line, rec in records:
        at = f"{metrics}, line {line}"
        for field, rule in _METRICS_NUMERIC.items():
            number(rec.get(field), at, field, rule)
        for field, rule in _METRICS_OPTIONAL.items():
            number(rec.get(field), at, field, rule, required=False)
    curve = pd.DataFrame([rec for _, rec in records])
    if curve.empty:
        return None
    curve["origin"] = [f"{metrics}, line {line}" for line, _ in records]
    curve = curve.rename(columns={"val_loss": "loss"})
    if "phase" not in curve.columns:
        curve["phase"] = None  # written before rows said which phase they are in
    for column in ("run", "params", "params_nonembed", "params_matmul", "params_total"):
        curve[column] = getattr(run, column)
    for column in ("family", "d_model", "n_layers", "sweep", *_TRAINING_COLUMNS):
        if column in columns:
            curve[column] = getattr(run, column)
    # the file is appended in step order and cut back on resume: a step that repeats
    # or goes back is two runs' lines in one file
    check_steps(curve, str(metrics), backwards="error")
    return curve


def _check_convention(params: str) -> None:
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")


def _read_summary(file: Path) -> dict[str, Any]:
    record = _read_json(file)
    if not isinstance(record, dict):
        raise DataError(f"{file}: expected a JSON object, got {type(record).__name__}")
    schema = record.get("schema")
    if schema is None:
        return record  # written before records carried their schema
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise DataError(
            f"{file}: field 'schema' is {schema!r}; expected a whole number from 1 to "
            f"{SCHEMA_VERSION} (the run-record schema, see docs/run-record.md)"
        )
    if schema > SCHEMA_VERSION:
        raise DataError(
            f"{file}: field 'schema' is {schema}, newer than this reader understands "
            f"({SCHEMA_VERSION}); update scaling-lab"
        )
    return record


def _check_identity(record: dict[str, Any], file: Path) -> None:
    for field in ("run_id", "status"):
        if not isinstance(record.get(field), str):
            raise DataError(f"{file}: field {field!r} missing or not a string")


def _claim(claimed: dict[tuple[str, str], Path], row: dict[str, Any], file: Path) -> None:
    """Refuse two records of one run in one sweep (a run directory copied)."""
    key = (str(row["sweep"]), str(row["run"]))
    if key in claimed:
        raise DataError(
            f"{file}: run_id {row['run']!r} of sweep {row['sweep']!r} is also the run of "
            f"{claimed[key]}: two records claim one run; remove the copy"
        )
    claimed[key] = file


def _warn_shared_ids(claimed: dict[tuple[str, str], Path]) -> None:
    """Name run ids recorded in several sweeps: the same config trained (or copied) twice."""
    sweeps: dict[str, list[str]] = {}
    for sweep, run in claimed:
        sweeps.setdefault(run, []).append(sweep)
    shared = {run: names for run, names in sweeps.items() if len(names) > 1}
    if shared:
        named = "; ".join(f"{run} ({', '.join(names)})" for run, names in list(shared.items())[:5])
        warnings.warn(
            f"{len(shared)} run id(s) are recorded in more than one sweep, each record "
            f"counted: {named}; keep one with --where \"sweep == '...'\" if they are copies",
            DataWarning,
            stacklevel=3,
        )


def _mapped(mapping: dict[str, str | None]) -> dict[str, str]:
    """How each remapped canonical column was taken, for messages."""
    return {
        option[: -len("_col")]: f"taken from the field {column!r}"
        for option, column in mapping.items()
        if column is not None and option.endswith("_col")
    }


def _summary_row(record: dict[str, Any], file: Path, params: str) -> dict[str, Any]:
    where = str(file)
    for field, rule in _SUMMARY_NUMERIC.items():
        number(record.get(field), where, field, rule)
    for field, rule in _SUMMARY_OPTIONAL.items():
        number(record.get(field), where, field, rule, required=False)
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
    row["origin"] = where
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
        out[field] = number(value, str(file), field, POSITIVE, required=False)
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
