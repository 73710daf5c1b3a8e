""":func:`load`: which reader a path needs, from what the path is."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from analysis.io.checks import POSITIVE, expectation, problem
from analysis.io.errors import DataError
from analysis.io.frames import apply_where, final_points
from analysis.io.hf import find_trainer_states, load_hf_runs, load_trainer_state
from analysis.io.records import find_summaries, load_curves, load_runs
from analysis.io.tables import _JSONL_SUFFIXES, _TABLE_SUFFIXES, load_table
from analysis.io.tensorboard import load_tensorboard
from analysis.io.wandb import csv_layout, load_wandb_history, load_wandb_runs
from analysis.io.wandb_offline import find_run_files, load_wandb_offline

log = logging.getLogger("analysis.io")


def load(
    path: str | Path,
    *,
    kind: str = "runs",
    params: str | None = None,
    where: str | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    params_map: str | Path | None = None,
    **mapping: str | None,
) -> pd.DataFrame:
    """Load whatever ``path`` is, as runs (one row per run) or as curves.

    Parameters
    ----------
    path
        What it can be, in the order it is recognised:

        * a run/sweep/results directory (``summary.json`` files);
        * a directory of Hugging Face run directories, or one run directory, or a
          ``trainer_state.json`` (:mod:`analysis.io.hf`);
        * W&B offline runs: a ``wandb/`` directory, a run directory or a ``.wandb`` file;
        * TensorBoard event files: a directory of runs, or one file;
        * a ``.csv``: a W&B runs or history export when its header is one
          (:func:`analysis.io.wandb.csv_layout`), else a table, as are ``.tsv`` and
          ``.jsonl``.

        A directory holding more than one kind of log is read as the first kind of this
        list, with a note naming what was not read.
    kind
        ``"runs"``: one row per run (for sources that are curves, the last evaluation of
        each run); ``"curves"``: one row per evaluation (for tables, the rows as they are).
    params
        Parameter convention (``nonembed``, ``matmul``, ``total``) of run records, and of
        counts derived from a model config (Hugging Face, W&B); None means ``nonembed``
        for those. A table takes its ``params`` column as given, unless a convention is
        named: then its ``params_<convention>`` column, or an error when it has none.
    where
        A row filter (:func:`analysis.query.query`) applied after loading.
    n_params, tokens_per_step
        For training logs: one parameter count for every run, and tokens per optimiser
        step where the log does not count tokens.
    params_map
        For training logs: a CSV ``run,params`` giving each run's count
        (``params_col`` names its count column).
    **mapping
        ``params_col``, ``tokens_col``, ``flops_col``, ``loss_col``, ``run_col``,
        ``step_col``, ``trunk_col``: see :func:`load_table`; for TensorBoard and W&B logs
        ``loss_col`` and ``tokens_col`` name scalar tags or keys, and ``params_col`` the
        hparam, tag or config key of the parameter count (the mapping file's column when
        there is one); for a trainer state ``loss_col`` names a ``log_history`` key.
    """
    if kind not in ("runs", "curves"):
        raise DataError(f"kind={kind!r}: expected 'runs' or 'curves'")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    for option, value in (("--n-params", n_params), ("--tokens-per-step", tokens_per_step)):
        why = None if value is None else problem(float(value), POSITIVE)
        if why is not None or (value is not None and math.isnan(value)):
            raise DataError(f"{option} {value!r}: expected {expectation(POSITIVE)}")
    table_params, params = params, params or "nonembed"
    options = {"n_params": n_params, "tokens_per_step": tokens_per_step, "params_map": params_map}
    log_mapping = {
        k: v for k, v in mapping.items() if k in ("loss_col", "tokens_col", "params_col")
    }
    log_opts = {**options, **log_mapping, "params": params}
    if find_summaries(path):
        _no_log_options(path, options, "run records")
        loader = load_runs if kind == "runs" else load_curves
        run_mapping = {k: v for k, v in mapping.items() if k != "run_col" and k != "step_col"}
        return loader(path, params, where=where, **run_mapping)
    if path.is_dir():
        curves = _load_log_dir(path, log_opts)
    elif "tfevents" in path.name:
        curves = load_tensorboard(path, **log_opts)
    elif path.suffix == ".wandb":
        curves = load_wandb_offline(path, **log_opts)
    elif path.suffix.lower() == ".json":
        curves = load_trainer_state(path, **log_opts)
    elif path.suffix.lower() == ".csv" and csv_layout(path) == "runs":
        return load_wandb_runs(path, **log_opts, where=where, **_without(mapping, log_mapping))
    elif path.suffix.lower() == ".csv" and csv_layout(path) == "history":
        extra = {k: v for k, v in mapping.items() if k in ("run_col", "step_col")}
        curves = load_wandb_history(path, **log_opts, **extra)
    elif path.suffix.lower() in (*_TABLE_SUFFIXES, *_JSONL_SUFFIXES):
        _no_log_options(path, options, "a table")
        # A table is taken as it is: its rows are runs or curve points, as the user made it.
        return load_table(path, where=where, params=table_params, **mapping)
    else:
        raise DataError(
            f"{path}: unknown format (expected a results dir, .csv, .tsv, .jsonl, "
            "trainer_state.json, W&B runs or TensorBoard event files)"
        )
    result = curves if kind == "curves" else final_points(curves)
    return apply_where(result, where)


def _without(mapping: dict[str, str | None], taken: dict[str, str | None]) -> dict:
    return {k: v for k, v in mapping.items() if k not in taken and k != "step_col"}


def _no_log_options(path: Path, options: dict, what: str) -> None:
    """Options of training logs given for a source that has its own counts."""
    if options.get("params_map") is not None:
        raise DataError(
            f"{path}: --params-map applies to training logs (Hugging Face, TensorBoard, W&B); "
            f"{what} carry their own parameter counts (map a column with --params-col)"
        )


def _load_log_dir(path: Path, options: dict) -> pd.DataFrame:
    """A directory of training logs: Hugging Face runs, else W&B runs, else TensorBoard."""
    found = {
        "trainer_state.json files": bool(find_trainer_states(path)),
        "W&B run files": bool(find_run_files(path)),
        "TensorBoard event files": any(path.rglob("*tfevents*")),
    }
    kinds = [name for name, present in found.items() if present]
    if not kinds:
        raise DataError(
            f"{path}: found no summary.json, trainer_state.json, W&B run (.wandb) or "
            "TensorBoard event files in this directory"
        )
    if len(kinds) > 1:
        log.info(f"{path}: reading the {kinds[0]}; not read: the {', '.join(kinds[1:])}")
    if kinds[0].startswith("trainer_state"):
        return load_hf_runs(path, **options)
    if kinds[0].startswith("W&B"):
        return load_wandb_offline(path, **options)
    return load_tensorboard(path, **options)
