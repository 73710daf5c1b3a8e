"""TensorBoard event files: one run per directory holding them.

Each run's parameter count comes from a mapping file or ``--n-params``, else from the
run's own log: an hparams-plugin entry or a scalar tag named ``params`` (or another of
:data:`analysis.io.logs.PARAM_KEYS`, or the name given by ``--params-col``). Hparams that
PyTorch's ``SummaryWriter.add_hparams`` writes into a subdirectory of the run count as
the run's own.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.io.errors import DataError, DataWarning, OptionalDependencyError
from analysis.io.logs import (
    LOSS_TAGS,
    TRAIN_LOSS_TAGS,
    _finish_curve,
    first_key,
    read_params_map,
    resolve_params,
    scalar_curve,
    stack,
)

log = logging.getLogger("analysis.io")


def load_tensorboard(
    path: str | Path,
    *,
    loss_col: str | None = None,
    tokens_col: str | None = None,
    n_params: float | None = None,
    tokens_per_step: float | None = None,
    params_map: str | Path | None = None,
    params_col: str | None = None,
    where: str | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """Learning curves from TensorBoard event files: one run per directory holding them.

    Parameters
    ----------
    path
        An event file or a directory searched recursively for ``*tfevents*`` files; a
        run is named by its directory relative to ``path``.
    loss_col
        The scalar tag of the loss; by default the first present of ``eval/loss``,
        ``val_loss``, ``val/loss``, ``eval_loss``, ``validation/loss``, ``loss/val``,
        then (with a warning) a training-loss tag.
    tokens_col
        The scalar tag counting tokens seen (default: ``train/num_input_tokens_seen``,
        ``num_input_tokens_seen`` or ``tokens``); else ``tokens_per_step`` × step.
    n_params
        One parameter count for every run (overrides what the runs log).
    params_map
        A ``run,params`` CSV with every run's count.
    params_col
        With ``params_map``, its count column; without, the hparam or scalar tag holding
        each run's count (default: the first of ``params``, ``n_params``, ``num_params``,
        ``num_parameters``, ``model/num_parameters`` present).

    Notes
    -----
    Needs the ``tensorboard`` package (``pip install 'scaling-lab[tensorboard]'``).
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*tfevents*"))
    if not files:
        raise DataError(f"{path}: no TensorBoard event files (*tfevents*) found")
    root = path.parent if path.is_file() else path
    runs = _merge_hparams_dirs(_read_runs(files, root))
    mapping = read_params_map(params_map, params_col) if params_map is not None else None
    key = None if params_map is not None else params_col
    frames, missing = [], []
    for run, (scalars, hparams) in sorted(runs.items()):
        curve = scalar_curve(scalars, run, path, loss_col, tokens_col)
        logged = {**{tag: values[max(values)] for tag, values in scalars.items()}, **hparams}
        name = first_key(logged, key)
        if key is not None and name is None and mapping is None and not n_params:
            raise DataError(
                f"{path}: run {run!r} has no hparam or scalar tag {key!r} (the parameter "
                f"count); hparams: {sorted(hparams)}, tags: {sorted(scalars)}"
            )
        found = logged[name] if name is not None else None
        count, origin = resolve_params(
            run, found, params_map=mapping, map_path=params_map, n_params=n_params, source=path
        )
        if origin == "":
            missing.append(run)
        frames.append(_finish_curve(curve, path, run, count, tokens_per_step, None))
    if missing:
        log.info(
            f"{path}: no parameter count for run(s) {', '.join(missing)} (no hparam or scalar "
            "tag 'params'); give them with --params-map FILE (CSV run,params) or --n-params N"
        )
    return stack(frames, where)


def _read_runs(
    files: list[Path], root: Path
) -> dict[str, tuple[dict[str, dict[int, float]], dict[str, float]]]:
    """Run name -> (scalar tag -> step -> value, numeric hparams)."""
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.plugins.hparams import plugin_data_pb2
        from tensorboard.util import tensor_util
    except ImportError as err:
        raise OptionalDependencyError(
            "reading TensorBoard event files needs the tensorboard package: "
            "pip install 'scaling-lab[tensorboard]'"
        ) from err
    runs: dict[str, tuple[dict[str, dict[int, float]], dict[str, float]]] = {}
    rewritten: dict[str, set[int]] = {}  # run -> steps a later event logged again
    for file in files:
        run = file.parent.relative_to(root).as_posix() if file.parent != root else root.name
        scalars, hparams = runs.setdefault(run, ({}, {}))
        try:
            for event in EventFileLoader(str(file)).Load():
                for value in event.summary.value:
                    plugin = value.metadata.plugin_data
                    if plugin.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                        if data.HasField("session_start_info"):
                            for name, item in data.session_start_info.hparams.items():
                                if item.WhichOneof("kind") == "number_value":
                                    hparams[name] = float(item.number_value)
                        continue
                    # Newer writers store scalars as tensors; the loader converts old
                    # simple_value scalars to tensors too, so one path reads both.
                    if not value.HasField("tensor"):
                        continue
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size == 1 and np.issubdtype(array.dtype, np.number):
                        point = float(array.reshape(-1)[0])
                        values = scalars.setdefault(value.tag, {})
                        step = int(event.step)
                        if step in values and values[step] != point:
                            rewritten.setdefault(run, set()).add(step)
                        values[step] = point
        except Exception as err:  # the reader raises several protobuf/IO error types
            raise DataError(f"{file}: not a readable TensorBoard event file ({err})") from None
    if rewritten:
        # A run restarted from a checkpoint into the same directory logs its steps again;
        # TensorBoard shows the later values, and so does this reader.
        named = "; ".join(
            f"{run} ({len(steps)} step(s), from step {min(steps)})"
            for run, steps in sorted(rewritten.items())
        )
        warnings.warn(
            f"{root}: steps logged again with other values (a restarted run?), the later "
            f"values kept: {named}",
            DataWarning,
            stacklevel=3,
        )
    return runs


def _merge_hparams_dirs(
    runs: dict[str, tuple[dict[str, dict[int, float]], dict[str, float]]],
) -> dict[str, tuple[dict[str, dict[int, float]], dict[str, float]]]:
    """Fold a subdirectory that holds hparams but no loss into the run above it: PyTorch's
    ``add_hparams`` writes the hparams of a run to ``<run>/<timestamp>/``."""
    losses = set(LOSS_TAGS + TRAIN_LOSS_TAGS)
    out = dict(runs)
    for run in sorted(runs, key=len, reverse=True):
        scalars, hparams = runs[run]
        parent = run.rsplit("/", 1)[0] if "/" in run else None
        if parent in out and hparams and not losses & set(scalars):
            for name, value in hparams.items():
                out[parent][1].setdefault(name, value)
            del out[run]
    return out
