"""Weights & Biases: CSV exports of runs and histories (offline run directories:
:mod:`analysis.io.wandb_offline`).

Exports (read without the ``wandb`` package):

* the runs table, one row per run, in either of two layouts: the one the W&B docs'
  "querying multiple runs" script writes (columns ``summary``, ``config``, ``name``, each
  cell a dict as pandas writes it), or the web app's runs-table export (``Name``,
  ``State``, ..., then one column per config key and per summary key);
* the history, one row per logged step of each run, as
  ``api.runs(path).histories(format="pandas").to_csv(...)`` writes it (``run_id``,
  ``_step``, ``_runtime``, ``_timestamp`` and the logged keys).

Each run's parameter count: a mapping file or ``--n-params``, else the config of a
Hugging Face model of a family we know (which W&B's callback logs into the run's config),
else a config or summary key (:data:`analysis.io.logs.PARAM_KEYS`, or ``--params-col``).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.io.checks import COUNT, POSITIVE, STEP, check_frame, check_steps, number, numbers
from analysis.io.errors import DataError, DataWarning
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
    script = {"summary", "config", "name"} <= set(table.columns)
    if script:
        rows = [_script_row(row, path, line) for line, row in _lines(table)]
    else:
        rows = [{**_app_row(row, table.columns), "line": line} for line, row in _lines(table)]
    _name_runs_apart(rows, path)
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
        at = f"{path}, line {row['line']}"
        record = _run_values(
            run,
            values,
            at,
            params,
            key,
            mapping,
            params_map,
            n_params,
            loss_col,
            tokens_col,
            text=not script,
        )
        if flops_col is not None:
            if flops_col not in values:
                raise DataError(f"{at}: run {run!r} has no column {flops_col!r} (flops_col)")
            record["flops"] = _float(values[flops_col], at, run, flops_col, COUNT, not script)
        record["origin"] = at
        out.append({**{k: v for k, v in values.items() if k not in record}, **record})
    df = _order_columns(pd.DataFrame(out))
    check_frame(df)
    df.attrs["excluded"] = [{"run": r["run"], "status": r["state"]} for r in excluded]
    return apply_where(df, where)


def _name_runs_apart(rows: list[dict[str, Any]], path: Path) -> None:
    """Runs of one display name (W&B allows it) named apart by their id, else their line.

    Rows whose values are all equal are one run listed twice: refused, naming both lines.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["run"], []).append(row)
    renamed = []
    for name, same in by_name.items():
        if len(same) < 2:
            continue
        first = same[0]
        for other in same[1:]:
            if (other["config"], other["summary"]) == (first["config"], first["summary"]):
                raise DataError(
                    f"{path}, line {other['line']}: run {name!r} again, with the values of "
                    f"line {first['line']}: two rows claim one run; remove one"
                )
        for row in same:
            ident = row.get("id")
            if isinstance(ident, str) and ident:
                row["run"] = f"{name}-{ident}"
            else:
                row["run"] = f"{name} (line {row['line']})"
        renamed.append(f"{name} ({len(same)} runs)")
    if renamed:
        warnings.warn(
            f"{path}: several runs share a name, told apart by their id (else their line): "
            + "; ".join(renamed),
            DataWarning,
            stacklevel=3,
        )


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
    table = table.assign(origin=[f"{path}, line {i + 2}" for i in range(len(table))])
    for run, group in table.groupby(run_column, sort=True):
        run = str(run)
        steps = numbers(group[step_column], group["origin"], step_column, STEP, text=True)
        check_steps(
            pd.DataFrame({"step": steps, "origin": group["origin"]}), str(path), backwards="warn"
        )
        scalars: dict[str, dict[int, float]] = {}
        for column in group.columns:
            if column in (run_column, step_column, "origin"):
                continue
            values = pd.to_numeric(group[column], errors="coerce")
            kept = values.notna() & steps.notna()
            if kept.any():
                scalars[str(column)] = dict(
                    zip(steps[kept].astype(int), values[kept].astype(float), strict=True)
                )
        curve = scalar_curve(scalars, run, path, loss_col, tokens_col, what="column")
        # The columns read as the loss and tokens: every cell a number (a cell of text or
        # a boolean is refused, not skipped), within the rules.
        for what, tag in curve.attrs["tags"].items():
            if tag is not None:
                rule = POSITIVE if what == "loss" else COUNT
                numbers(group[tag], group["origin"], str(tag), rule, text=True)
        lines = dict(zip(steps.astype("Int64"), group["origin"], strict=True))
        curve["origin"] = [lines.get(int(step), f"{path}: run {run!r}") for step in curve["step"]]
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
                value = _literal(cell)  # pandas writes a dict as Python's repr
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
    out = {"run": str(row["name"]), **parsed, "line": line}
    for extra in ("id", "state"):
        if extra in row.index and isinstance(row[extra], str):
            out[extra] = row[extra]
    return out


def _literal(text: str) -> Any:
    """A Python literal, where ``inf`` and ``nan`` (as ``repr`` writes them) are floats, so
    that a summary holding one reads, and its value is refused by name, not the row."""
    tree = ast.parse(text.strip(), mode="eval")
    for node in ast.walk(tree):
        for name, child in ast.iter_fields(node):
            items = child if isinstance(child, list) else [child]
            for k, item in enumerate(items):
                if isinstance(item, ast.Name) and item.id in ("inf", "nan"):
                    constant = ast.copy_location(ast.Constant(float(item.id)), item)
                    if isinstance(child, list):
                        child[k] = constant
                    else:
                        setattr(node, name, constant)
    return ast.literal_eval(tree)


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


def _float(value: Any, at: str, run: str, key: str, rule: str, text: bool = False) -> float:
    """A value of a run's config or summary, through the rules of :mod:`analysis.io.checks`.

    ``text``: the value is a cell of the web app's CSV export, where a number may come as
    text; in the script's export (Python literals) text is refused, as are booleans.
    """
    if text and isinstance(value, str):
        parsed = pd.to_numeric(value.strip(), errors="coerce")
        if pd.isna(parsed) or value.strip().lower() in ("true", "false"):
            raise DataError(f"{at}: run {run!r}, {key!r} is {value!r}; expected a number")
        value = float(parsed)
    return number(value, f"{at}: run {run!r}", key, rule, required=False)


def _run_values(
    run: str,
    values: Mapping[str, Any],
    path: str,
    params: str,
    key: str | None,
    mapping: dict[str, float] | None,
    map_path: str | Path | None,
    n_params: float | None,
    loss_col: str | None,
    tokens_col: str | None,
    *,
    text: bool = False,
) -> dict[str, Any]:
    """The canonical columns of one run from its config and summary values (``path``:
    where the run was read, e.g. ``"export.csv, line 4"``)."""
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
    tokens = math.nan
    if token_key in values:
        tokens = _float(values[token_key], path, run, token_key, COUNT, text)
    shape, _ = shape_from_config(values)
    found = None
    name = first_key(values, key)
    if key is not None and name is None and mapping is None and not n_params:
        raise DataError(f"{path}: run {run!r} has no key {key!r} (the parameter count)")
    record: dict[str, Any] = {}
    if name is not None and (key is not None or shape is None):
        found = _float(values[name], path, run, name, POSITIVE, text)
    elif shape is not None:
        counts = param_counts(shape)
        found = float(counts[params])
        record.update({f"params_{c}": float(v) for c, v in counts.items()})
    count, origin = resolve_params(
        run, found, params_map=mapping, map_path=map_path, n_params=n_params, source=path
    )
    if origin != "log":
        record = {}
    loss = _float(values[loss_key], path, run, loss_key, POSITIVE, text)
    record.update(run=run, params=count, tokens=tokens, loss=loss)
    if shape is not None:
        record["flops"] = tokens * flops_per_token(shape)
        log.info(
            "flops of runs whose config is a model of a family we know: ours, attention included"
        )
    else:
        record["flops"] = 6.0 * count * tokens
    return record
