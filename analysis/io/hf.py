"""Hugging Face ``Trainer`` runs: a ``trainer_state.json``, or a directory of run
directories each holding one beside its ``config.json``.

A run directory is the ``output_dir`` of a ``Trainer``: its own ``trainer_state.json``
(written by ``trainer.save_state()``), else that of its latest ``checkpoint-<step>/``.
The model's ``config.json`` (the run directory's, else the checkpoint's) gives the
parameter count for the families we know (:mod:`analysis.io.model_config`); other runs
take theirs from a mapping file or ``--n-params`` (:mod:`analysis.io.logs`).

``total_flos`` is what the ``Trainer`` counts, ``6 · N_HF · D`` without attention. Where
the config gives the shape, FLOPs are recounted as ours are, tokens × (``6 · N_matmul +
12 · n_layers · context · d_model``), and a note says so; the original stays in the
``total_flos`` column.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.io.checks import COUNT, POSITIVE, STEP, number
from analysis.io.errors import DataError, DataWarning
from analysis.io.jsonfiles import _read_json
from analysis.io.logs import _finish_curve, read_params_map, resolve_params, stack
from analysis.io.model_config import (
    Shape,
    flops_per_token,
    hf_flos_params,
    param_counts,
    shape_from_config,
)
from analysis.io.records import _check_convention

log = logging.getLogger("analysis.io")

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
#: The note printed when FLOPs are recounted from a config.
FLOPS_NOTE = (
    "Hugging Face's total_flos counts 6·N·D without attention; flops are recounted as "
    "tokens × (6·N_matmul + 12·n_layers·context·d_model), attention included, as for our "
    "runs (context: the config's maximum sequence length; total_flos kept as a column)"
)


def load_trainer_state(
    path: str | Path,
    *,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    loss_col: str | None = None,
    run: str | None = None,
    where: str | None = None,
    params: str = "nonembed",
    params_map: str | Path | None = None,
    params_col: str | None = None,
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
        The model's parameter count; by default it comes from a ``config.json`` beside
        the file (families we know), else ``params`` and ``flops`` are NaN.
    tokens_per_step
        Tokens per optimiser step, used when the log has no ``num_input_tokens_seen``
        (else tokens are recovered from ``total_flos`` when the config gives the shape).
    loss_col
        The ``log_history`` key to use as the loss.
    run
        The run name (default: the run directory holding the file).
    params
        The convention of a count taken from the config: ``nonembed``, ``matmul`` or
        ``total`` (see :mod:`analysis.io.model_config`).
    params_map, params_col
        A ``run,params`` CSV giving the count (``params_col`` names its count column;
        without a map, the ``config.json`` key holding the count).
    """
    _check_convention(params)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    run_dir = _run_dir(path)
    name = run or run_dir.name
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    curve, notes = _run_curve(
        path,
        run_dir,
        name,
        params=params,
        mapping=mapping,
        map_path=params_map,
        params_col=None if params_map is not None else params_col,
        n_params=n_params,
        tokens_per_step=tokens_per_step,
        loss_col=loss_col,
    )
    _report(notes, path)
    return stack([curve], where)


def find_trainer_states(path: str | Path) -> dict[str, Path]:
    """Run name -> the ``trainer_state.json`` to read, for each run directory under ``path``.

    A run directory's own file is preferred to its checkpoints'; among checkpoints the
    one of the highest step. Run names are the run directories' paths relative to
    ``path`` (``path``'s own name when it is itself a run directory). Hidden directories
    are not searched.
    """
    root = Path(path)
    chosen: dict[Path, tuple[int, Path]] = {}
    for file in root.rglob("trainer_state.json"):
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue
        match = _CHECKPOINT.match(file.parent.name)
        # rank: a run directory's own state beats any checkpoint's
        rank = int(match.group(1)) if match else math.inf
        run_dir = _run_dir(file)
        if run_dir not in chosen or rank > chosen[run_dir][0]:
            chosen[run_dir] = (rank, file)
    names = {}
    for run_dir, (_, file) in sorted(chosen.items()):
        name = run_dir.relative_to(root).as_posix() if run_dir != root else root.resolve().name
        names[name] = file
    return names


def load_hf_runs(
    path: str | Path,
    *,
    params: str = "nonembed",
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    loss_col: str | None = None,
    params_map: str | Path | None = None,
    params_col: str | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """The learning curves of a directory of Hugging Face run directories.

    Parameters are those of :func:`load_trainer_state`; a mapping file must list every
    run (by the name in the ``run`` column: its directory relative to ``path``).

    Returns
    -------
    pandas.DataFrame
        One row per evaluation of each run: ``run, params, tokens, flops, loss, step``,
        ``train_loss``, ``total_flos`` (the Trainer's, per run), and where the config
        gives the shape ``family, n_layers, d_model, ...``, ``flops_per_token`` and
        ``params_nonembed``/``params_matmul``/``params_total``.
    """
    _check_convention(params)
    path = Path(path)
    states = find_trainer_states(path)
    if not states:
        raise DataError(f"{path}: no trainer_state.json found in it or its subdirectories")
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    frames, notes = [], []
    for name, file in states.items():
        curve, run_notes = _run_curve(
            file,
            _run_dir(file),
            name,
            params=params,
            mapping=mapping,
            map_path=params_map,
            params_col=None if params_map is not None else params_col,
            n_params=n_params,
            tokens_per_step=tokens_per_step,
            loss_col=loss_col,
        )
        frames.append(curve)
        notes += run_notes
    _report(notes, path)
    return stack(frames, where)


def _run_dir(state_file: Path) -> Path:
    """The run directory of a trainer state: its folder, or the one above a checkpoint."""
    folder = state_file.parent
    return folder.parent if _CHECKPOINT.match(folder.name) else folder


def _run_curve(
    file: Path,
    run_dir: Path,
    run: str,
    *,
    params: str,
    mapping: dict[str, float] | None,
    map_path: str | Path | None,
    params_col: str | None,
    n_params: float | None,
    tokens_per_step: float | None,
    loss_col: str | None,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One run's curve, and notes (kind, run: detail) for :func:`_report`."""
    df, state = _state_points(file, loss_col)
    config, config_file, why = _read_config(file, run_dir)
    shape: Shape | None = None
    found = None
    if config is not None:
        shape, why = shape_from_config(config)
        if params_col is not None:
            found = number(config.get(params_col), str(config_file), params_col, POSITIVE)
        elif shape is not None:
            found = float(param_counts(shape)[params])
    count, origin = resolve_params(
        run, found, params_map=mapping, map_path=map_path, n_params=n_params, source=file
    )
    notes: list[tuple[str, str]] = []
    if origin == "":
        notes.append(("no params", f"{run} ({why})"))
    total_flos = _total_flos(state, file)
    has_tokens = "tokens" in df.columns and df["tokens"].notna().any()
    if not has_tokens and not tokens_per_step and shape is not None and total_flos:
        # total_flos = 6 · N_HF · D at the last step; a constant batch spreads D evenly
        last = number(state.get("global_step"), str(file), "global_step", STEP, required=False)
        last = last if last > 0 else float(df["step"].max())
        per_step = total_flos / (6.0 * hf_flos_params(shape)) / float(last)
        df["tokens"] = df["step"] * per_step
        df.attrs["derived"] = {"tokens": "derived as step · total_flos / (6 · N_HF · steps)"}
        notes.append(("tokens from flos", run))
    if shape is not None:
        per_token = flops_per_token(shape)
        tokens = df["tokens"] if "tokens" in df.columns else None
        if tokens is None and tokens_per_step:
            tokens = df["step"] * tokens_per_step
        if tokens is not None:
            df["tokens"] = tokens
            df["flops"] = tokens * per_token
            df.attrs["derived"] = {
                **df.attrs.get("derived", {}),
                "flops": "derived as tokens · FLOPs per token of config.json",
            }
            notes.append(("recounted", run))
        df["flops_per_token"] = per_token
        for field, value in vars(shape).items():
            df[field] = value
        if origin == "log" and params_col is None:
            for convention, value in param_counts(shape).items():
                df[f"params_{convention}"] = float(value)
    elif total_flos:
        notes.append(("flos unused", f"{run} ({why})"))
    df["total_flos"] = total_flos if total_flos is not None else math.nan
    return _finish_curve(df, file, run, count, tokens_per_step, None), notes


def _state_points(path: Path, loss_col: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per logged step of ``log_history`` that has a loss, and the whole state."""
    state = _read_json(path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise DataError(
            f"{path}: expected a JSON object with a 'log_history' list "
            "(the trainer_state.json of a Hugging Face Trainer)"
        )
    loss_key = loss_col or "eval_loss"
    points: dict[int, dict[str, Any]] = {}
    previous = (-1, "")
    for i, entry in enumerate(history):
        at = f"{path}, log_history[{i}]"
        if not isinstance(entry, dict):
            raise DataError(f"{at} is not an object")
        if "step" not in entry:
            raise DataError(f"{at} has no 'step'")
        step = int(number(entry["step"], str(path), f"log_history[{i}].step", STEP))
        if step < previous[0]:
            raise DataError(
                f"{at}: step {step} comes after step {previous[0]} ({previous[1]}): the "
                "history goes backwards (two runs' histories in one file?); keep one run's "
                "entries, in step order"
            )
        previous = (step, f"log_history[{i}]")
        # A Trainer logs its training and evaluation losses as entries of their own at
        # one step: they are merged into one point; the same key twice is a conflict.
        point = points.setdefault(step, {"step": step, "origin": at})
        for key, column in ((loss_key, "loss"), ("loss", "train_loss")):
            if key not in entry:
                continue
            value = number(entry[key], str(path), f"log_history[{i}].{key}", required=False)
            if (
                column in point
                and point[column] != value
                and not (math.isnan(value) and math.isnan(point[column]))
            ):
                raise DataError(
                    f"{at}: {key!r} at step {step} is {value!r}, and {point[column]!r} at "
                    f"{point['origin_' + column]}: two entries claim one point; keep one"
                )
            point[column], point["origin_" + column] = value, f"log_history[{i}]"
            if column == "loss":
                point["origin"] = at
        if "num_input_tokens_seen" in entry:
            field = f"log_history[{i}].num_input_tokens_seen"
            seen = number(entry["num_input_tokens_seen"], str(path), field, COUNT)
            point["tokens"] = max(point.get("tokens", 0.0), seen)
    for point in points.values():
        point.pop("origin_loss", None)
        point.pop("origin_train_loss", None)
    df = pd.DataFrame(sorted(points.values(), key=lambda p: p["step"]))
    if "loss" not in df.columns:
        if loss_col is not None or "train_loss" not in df.columns:
            raise DataError(f"{path}: no {loss_key!r} in log_history")
        warnings.warn(
            f"{path}: no eval_loss in log_history; using the training loss",
            DataWarning,
            stacklevel=4,
        )
        df["loss"] = df["train_loss"]
    return df[df["loss"].notna()].reset_index(drop=True), state


def _read_config(state_file: Path, run_dir: Path) -> tuple[dict[str, Any] | None, Path, str]:
    """The run's ``config.json`` (its directory's, else the checkpoint's), or why none."""
    for folder in (run_dir, state_file.parent):
        file = folder / "config.json"
        if file.is_file():
            config = _read_json(file)
            if not isinstance(config, dict):
                raise DataError(f"{file}: expected a JSON object (a Hugging Face model config)")
            return config, file, ""
    return None, run_dir / "config.json", "no config.json beside its trainer_state.json"


def _total_flos(state: dict[str, Any], path: Path) -> float | None:
    """The Trainer's ``total_flos``: the state's own, else the last one logged."""
    value = state.get("total_flos")
    if value is None:
        logged = [e["total_flos"] for e in state["log_history"] if "total_flos" in e]
        value = logged[-1] if logged else None
    return None if value is None else number(value, str(path), "total_flos", COUNT)


def _report(notes: list[tuple[str, str]], source: Path) -> None:
    """One note per kind for the whole load (not one per run)."""
    by_kind: dict[str, list[str]] = {}
    for kind, text in notes:
        by_kind.setdefault(kind, []).append(text)
    if "recounted" in by_kind:
        log.info(FLOPS_NOTE)
    if "tokens from flos" in by_kind:
        log.info(
            "tokens derived from total_flos / (6·N_HF), evenly over the steps, for runs that "
            "log no num_input_tokens_seen: " + ", ".join(by_kind["tokens from flos"])
        )
    if "flos unused" in by_kind:
        log.info(
            "total_flos (Hugging Face's 6·N·D, no attention) left as it is for runs whose "
            "config gives no shape; their flops are 6·params·tokens: "
            + "; ".join(by_kind["flos unused"])
        )
    if "no params" in by_kind:
        # a note, not a warning: a fit along tokens needs no parameter count
        log.info(
            f"{source}: no parameter count for run(s) "
            + "; ".join(by_kind["no params"])
            + ". Give them in a CSV run,params with --params-map FILE (or --n-params N)"
        )
