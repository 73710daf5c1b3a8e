"""Experiment trackers: the rows of ``metrics.jsonl`` sent to TensorBoard, W&B or MLflow.

``train.loggers`` lists the trackers of a run (none by default); each gets the numbers
of every ``metrics.jsonl`` row at its step (losses, lr, tokens, FLOPs, plus tokens/s and
MFU), and the run's config and parameter counts as hyperparameters. A sweep is one
group: a W&B group (job type ``train``), an MLflow experiment, a TensorBoard directory
with one subdirectory per run.

A resumed run continues its tracker run: the W&B run whose id is derived from our run
id (``resume="allow"``), the MLflow run tagged with it, the same TensorBoard directory.
Each tracker is asked on opening which step it already holds, and is given only later
steps: first the rows of ``metrics.jsonl`` it lacks (those a kill cut off before they
reached it), then the new ones. Steps therefore only ever increase, whatever the number
of requeues. Only the main process opens trackers (scaling/train.py).

Plain Python at import: each tracker's package (an extra of ``scaling-lab``) is imported
when a run opens it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

# logger -> (module that must be importable, the extra that installs it)
LOGGERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
# the tag an MLflow run carries to be found again when its run resumes
RUN_TAG = "scaling_lab.run_id"


def logger_problem(train: Mapping[str, Any]) -> str | None:
    """What is wrong with ``train.loggers`` (one line naming the fix), or None.

    Parameters
    ----------
    train : Mapping
        The ``train`` section of a resolved config.
    """
    loggers = train.get("loggers") or []
    if not isinstance(loggers, list | tuple):
        return f"train.loggers={loggers!r} must be a list, e.g. 'train.loggers=[tensorboard]'"
    for name in loggers:
        if name not in LOGGERS:
            return (
                f"train.loggers: unknown logger {name!r}; expected some of "
                f"{', '.join(LOGGERS)}, e.g. 'train.loggers=[tensorboard,wandb]'"
            )
        module, extra = LOGGERS[name]
        if importlib.util.find_spec(module) is None:
            return (
                f"train.loggers: {name} needs the {module} package: "
                f"pip install 'scaling-lab[{extra}]'"
            )
    return None


def tracker_dir(cfg: Mapping[str, Any]) -> Path:
    """Where the trackers' local files go: ``train.tracker_dir``, else the sweep's
    ``trackers/`` directory (``<results_dir>/<sweep>/trackers``)."""
    given = cfg["train"].get("tracker_dir")
    if given:
        return Path(given).expanduser()
    return Path(cfg["results_dir"]) / cfg["sweep"] / "trackers"


def wandb_id(sweep: str, run_id: str) -> str:
    """The W&B run id of our run ``run_id``: stable, so a resumed run finds its W&B run."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sweep}-{run_id}")[:64]


def hyperparameters(cfg: Mapping[str, Any], params: Mapping[str, int]) -> dict[str, Any]:
    """The run's config, flattened with dotted keys, and its parameter counts.

    ``params`` is the non-embedding count (the analysis's default convention), so that
    the TensorBoard and W&B readers of :mod:`analysis.io` find each run's size.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif node is None or isinstance(node, bool | int | float | str):
            flat[prefix] = node
        else:  # lists: shown as text, trackers take scalars only
            flat[prefix] = str(node)

    walk("", {k: v for k, v in cfg.items() if k != "hydra"})
    for convention, count in params.items():
        flat[f"params_{convention}"] = int(count)
    flat["params"] = int(params["nonembed"])
    return flat


class Tracker(Protocol):
    """One tracker run: ``last_step`` is the highest step it holds (None: none)."""

    last_step: int | None

    def log(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def close(self, status: str) -> None: ...


class Trackers:
    """The trackers of one run, each given a step only once and in increasing order."""

    def __init__(self, trackers: Iterable[Tracker] = ()) -> None:
        self.trackers = list(trackers)
        self.closed = False

    def log(self, row: Mapping[str, Any]) -> None:
        """Send the numbers of one ``metrics.jsonl`` row (plus any extra) at its step.

        Text (``phase``) and missing values (tokens/s before the first timed step) are
        left out; a step a tracker already holds is not sent to it again.
        """
        step = int(row["step"])
        scalars = {
            k: float(v)
            for k, v in row.items()
            if k != "step"
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        }
        for tracker in self.trackers:
            if tracker.last_step is None or step > tracker.last_step:
                tracker.log(step, scalars)
                tracker.last_step = step

    def close(self, status: str = "completed") -> None:
        """End every tracker run once: ``completed``, ``interrupted`` or ``failed``."""
        if self.closed:
            return
        self.closed = True
        for tracker in self.trackers:
            tracker.close(status)

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        # a run that leaves by an exception and has not said otherwise has failed
        self.close("failed" if kind is not None else "completed")


def open_trackers(
    cfg: Mapping[str, Any],
    run_id: str,
    params: Mapping[str, int],
    backlog: Iterable[Mapping[str, Any]] = (),
) -> Trackers:
    """Open (or resume) the tracker runs of ``train.loggers`` for run ``run_id``.

    Parameters
    ----------
    cfg : Mapping
        The resolved run config.
    run_id : str
        Our run id: names the run in each tracker, and finds it again on resuming.
    params : Mapping
        Parameter counts by convention (``total``, ``nonembed``, ``matmul``).
    backlog : iterable of Mapping
        The rows ``metrics.jsonl`` already holds: those a tracker lacks are sent first.

    Raises
    ------
    ValueError
        An unknown logger, or one whose package is not installed (naming the extra).
    """
    loggers = list(cfg["train"].get("loggers") or [])
    if not loggers:
        return Trackers()
    problem = logger_problem(cfg["train"])
    if problem:
        raise ValueError(problem)
    root = tracker_dir(cfg)
    hparams = hyperparameters(cfg, params)
    opened: list[Tracker] = []
    try:
        for name in loggers:
            opened.append(_OPENERS[name](cfg, root, run_id, hparams))
    except BaseException:
        Trackers(opened).close("failed")
        raise
    trackers = Trackers(opened)
    for row in backlog:
        trackers.log(row)
    return trackers


# ----------------------------------------------------------------------------------------
# TensorBoard: a directory per run under <tracker_dir>/tensorboard/


class TensorBoardTracker:
    """Event files in ``<tracker_dir>/tensorboard/<run_id>``; a resumed run adds one."""

    def __init__(self, cfg: Mapping, root: Path, run_id: str, hparams: Mapping) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.directory = root / "tensorboard" / run_id
        self.last_step = _tensorboard_last_step(self.directory)
        fresh = not any(self.directory.glob("*tfevents*"))
        self.writer = SummaryWriter(log_dir=str(self.directory))
        if fresh:
            # into the run's own event file (add_hparams would make a subdirectory)
            shown = {k: ("null" if v is None else v) for k, v in hparams.items()}
            for summary in hparams_summary(shown, {}):
                self.writer.file_writer.add_summary(summary)
            self.writer.flush()

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        # rows come once per evaluation: flushing each keeps what a kill leaves complete
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


def _tensorboard_last_step(directory: Path) -> int | None:
    """The highest step of a scalar in the event files of ``directory`` (None: none)."""
    if not directory.is_dir():
        return None
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last = None
    for file in sorted(directory.glob("*tfevents*")):
        # the loader stops at a record a kill cut short: what precedes it counts
        for event in EventFileLoader(str(file)).Load():
            values = event.summary.value
            if any(v.metadata.plugin_data.plugin_name != "hparams" for v in values):
                last = event.step if last is None else max(last, event.step)
    return last


# ----------------------------------------------------------------------------------------
# Weights & Biases: a run per our run, grouped by sweep


class WandbTracker:
    """The W&B run :func:`wandb_id` (``resume="allow"``), in group ``<sweep>``."""

    def __init__(self, cfg: Mapping, root: Path, run_id: str, hparams: Mapping) -> None:
        import wandb

        root.mkdir(parents=True, exist_ok=True)
        self.id = wandb_id(cfg["sweep"], run_id)
        before = _wandb_local_last_step(root, self.id)
        self.run = wandb.init(
            project=cfg["train"].get("wandb_project") or "scaling-lab",
            group=cfg["sweep"],
            job_type="train",
            name=run_id,
            id=self.id,
            resume="allow",
            dir=str(root),
            config=dict(hparams),
            reinit="create_new",
        )
        # online, W&B knows the resumed run's next step; offline, each launch writes a
        # run directory of its own, read back here
        online = self.run.step - 1 if self.run.resumed and self.run.step > 0 else None
        known = [s for s in (before, online) if s is not None]
        self.last_step = max(known) if known else None

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self, status: str) -> None:
        if status == "interrupted" and hasattr(self.run, "mark_preempting"):
            self.run.mark_preempting()
        self.run.finish(exit_code=0 if status == "completed" else 1)


def _wandb_local_last_step(root: Path, run: str) -> int | None:
    """The highest history step of W&B run ``run`` in the run files under ``root``."""
    from analysis.io.errors import DataError
    from analysis.io.wandb_offline import read_run_file

    last = None
    for file in sorted((root / "wandb").glob(f"*-{run}/run-{run}.wandb")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a last record cut short by a kill
                history = read_run_file(file)["history"]
        except DataError:
            continue  # damaged beyond its last record: nothing of it counts
        for row in history:
            step = int(row["_step"])
            last = step if last is None else max(last, step)
    return last


# ----------------------------------------------------------------------------------------
# MLflow: an experiment per sweep, a run per our run (found again by its tag)


class MlflowTracker:
    """The MLflow run tagged ``scaling_lab.run_id=<run_id>`` in experiment ``<sweep>``."""

    STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}

    def __init__(self, cfg: Mapping, root: Path, run_id: str, hparams: Mapping) -> None:
        uri = cfg["train"].get("mlflow_uri") or (root / "mlflow").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 refuses its file store unless asked for it; a local store needs
            # no server, which is what a cluster's compute nodes have
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(cfg["sweep"])
        exp_id = experiment.experiment_id if experiment else client.create_experiment(cfg["sweep"])
        found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
        if found:
            self.id = found[0].info.run_id
            client.update_run(self.id, status="RUNNING")
            self.last_step = self._last_step(found[0].data.metrics)
        else:
            run = client.create_run(exp_id, run_name=run_id, tags={RUN_TAG: run_id})
            self.id, self.last_step = run.info.run_id, None
            # MLflow caps a value at 6000 characters and a batch at 100 params
            items = [Param(k, str(v)[:6000]) for k, v in hparams.items()]
            for i in range(0, len(items), 100):
                client.log_batch(self.id, params=items[i : i + 100])

    def _last_step(self, latest: Mapping[str, float]) -> int | None:
        steps = [m.step for key in latest for m in self.client.get_metric_history(self.id, key)]
        return max(steps) if steps else None

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in scalars.items()]
        self.client.log_batch(self.id, metrics=metrics)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.id, self.STATUS.get(status, "FAILED"))


_OPENERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}
