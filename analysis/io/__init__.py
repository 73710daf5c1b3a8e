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

Sources, one module each:

* :mod:`~analysis.io.records`: our run records (``summary.json`` + ``metrics.jsonl``,
  see docs/run-record.md): :func:`load_runs` (one row per run) and :func:`load_curves`
  (one row per evaluation);
* :mod:`~analysis.io.tables`: CSV, TSV and JSONL with a column mapping (:func:`load_table`);
* :mod:`~analysis.io.hf`: Hugging Face ``trainer_state.json`` (:func:`load_trainer_state`)
  and directories of run directories (:func:`load_hf_runs`), the parameter count and
  FLOPs from each run's ``config.json`` (:mod:`~analysis.io.model_config`);
* :mod:`~analysis.io.tensorboard`: TensorBoard event files, one run per directory
  (:func:`load_tensorboard`, needs the optional ``tensorboard`` package);
* :mod:`~analysis.io.wandb`: W&B CSV exports of runs (:func:`load_wandb_runs`) and
  histories (:func:`load_wandb_history`); :mod:`~analysis.io.wandb_offline`: offline run
  directories (:func:`load_wandb_offline`, needs the optional ``wandb`` package);
* :mod:`~analysis.io.logs`: what the training logs share, e.g. per-run parameter counts
  from a ``run,params`` mapping file (:func:`read_params_map`);
* :func:`load` (:mod:`~analysis.io.sources`) picks the right one from what the path is.

Every number goes through the rules of :mod:`~analysis.io.checks`, whichever the source:
a number (no booleans, no text), finite, in range (> 0 where logs are taken, at most
``1e100``), steps whole and in order, one record per run; each row's ``origin`` says
where it was read, so :func:`require` names the line of a bad value in any column a use
needs. The files must be whole: a table row with another number of fields than its
header, a header naming a column twice, a JSON object naming a key twice are refused.
Problems in the data raise :class:`DataError`, whose message names the file, the
line or field, what was expected and the fix. Things worth knowing that do not stop the analysis (runs left
out, duplicates dropped) are reported with :class:`DataWarning`; notes (values derived)
go to the ``analysis.io`` logger.
"""

from __future__ import annotations

from analysis.io.errors import DataError, DataWarning, OptionalDependencyError
from analysis.io.frames import CANONICAL, apply_where, derive_missing, final_points, require
from analysis.io.hf import find_trainer_states, load_hf_runs, load_trainer_state
from analysis.io.logs import PARAM_KEYS, read_params_map
from analysis.io.records import (
    COMPLETED,
    DECAYED_SCHEDULES,
    PARAM_CONVENTIONS,
    SCHEDULES,
    SCHEMA_VERSION,
    find_summaries,
    load_curves,
    load_runs,
)
from analysis.io.sources import load
from analysis.io.tables import load_table
from analysis.io.tensorboard import load_tensorboard
from analysis.io.wandb import csv_layout, load_wandb_history, load_wandb_runs
from analysis.io.wandb_offline import load_wandb_offline, read_run_file

__all__ = [
    "CANONICAL",
    "COMPLETED",
    "DECAYED_SCHEDULES",
    "PARAM_CONVENTIONS",
    "PARAM_KEYS",
    "SCHEDULES",
    "SCHEMA_VERSION",
    "DataError",
    "DataWarning",
    "OptionalDependencyError",
    "apply_where",
    "csv_layout",
    "derive_missing",
    "final_points",
    "find_summaries",
    "find_trainer_states",
    "load",
    "load_curves",
    "load_hf_runs",
    "load_runs",
    "load_table",
    "load_tensorboard",
    "load_trainer_state",
    "load_wandb_history",
    "load_wandb_offline",
    "load_wandb_runs",
    "read_params_map",
    "read_run_file",
    "require",
]
