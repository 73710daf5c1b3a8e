"""The points of a sweep, from the Hydra config it was launched with.

Hydra saves a multirun's config in ``<sweep>/.hydra/multirun.yaml``: the command line's
overrides (``hydra.overrides.task``) and the sweeper's own ``params``. Expanding them as
the sweeper does and composing each point as its job will gives every point's run id,
so ``scaling-train status`` can list the points not started yet beside the records on
disk, and say how many of the whole sweep are done.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scaling import budgets, results


class PointsError(ValueError):
    """A saved multirun config whose points cannot be composed; the message says why."""


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its overrides, its run id, and its budget records' ids.

    ``records`` is None for a run of one budget; for a trunk it lists the ids of the
    records its budgets land in (scaling/budgets.py).
    """

    overrides: tuple[str, ...]
    run_id: str
    records: tuple[str, ...] | None
    family: str | None
    d_model: int | None


def multirun_config(sweep_dir: str | os.PathLike) -> Path:
    """Where Hydra saves the config a sweep was last launched with."""
    return Path(sweep_dir) / ".hydra" / "multirun.yaml"


def sweep_points(sweep_dir: str | os.PathLike) -> list[Point] | None:
    """Every point of the sweep last launched into ``sweep_dir``, in launch order.

    Returns None when the sweep has no saved multirun config (a single run, or records
    copied without it), and for fine-tuning and compression sweeps, whose jobs are not
    runs of their own.

    Raises
    ------
    PointsError
        When the saved config cannot be read or its points no longer compose (the
        config tree changed since the launch), naming the file.
    """
    path = multirun_config(sweep_dir)
    if not path.is_file():
        return None
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        hydra_node = saved["hydra"]
        task = list(hydra_node["overrides"]["task"] or [])
        params = (hydra_node.get("sweeper") or {}).get("params") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as e:
        raise PointsError(f"{path}: not a Hydra multirun config ({type(e).__name__})") from None
    try:
        return _compose(task, params)
    except Exception as e:  # composition errors come in many Hydra and OmegaConf types
        msg = " ".join(str(e).split())[:200]
        raise PointsError(f"{path}: its points do not compose with today's config ({msg})") from e


@contextlib.contextmanager
def _hydra_config_reset() -> Iterator[None]:
    """Leave Hydra's process-wide config as it was: a caller training in this process
    next (a test, a notebook) must not see the last point's."""
    from hydra.core.hydra_config import HydraConfig

    before = HydraConfig.instance().cfg
    try:
        yield
    finally:
        HydraConfig.instance().cfg = before


def _compose(task: list[str], params: dict[str, Any]) -> list[Point] | None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict, read_write

    import sweeps
    from scaling import checks

    if GlobalHydra.instance().is_initialized():
        return None  # inside a Hydra app (the end-of-sweep report): its state is not ours
    # the sweeper's params come first and the command line's after, as Hydra's basic
    # sweeper orders them: the same points in the same order
    args = [f"{k}={v}" for k, v in params.items()] + task
    overrides = OverridesParser.create().parse_overrides(args)
    jobs = [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    points = []
    config_dir = str(Path(sweeps.__file__).parent)
    with (
        initialize_config_dir(config_dir, version_base="1.3", job_name="main"),
        _hydra_config_reset(),
    ):
        for job in jobs:
            cfg = compose("config", overrides=job, return_hydra_config=True)
            # ${hydra:...} interpolations resolve against the point's own Hydra config
            HydraConfig.instance().set_config(cfg)
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
            resolved = checks.resolve(cfg)
            if resolved.get("job", "pretrain") != "pretrain":
                return None
            ids = budgets.record_ids(resolved)
            model = resolved.get("model") or {}
            points.append(
                Point(
                    overrides=tuple(job),
                    run_id=results.run_id(resolved),
                    records=None if ids is None else tuple(ids),
                    family=model.get("family"),
                    d_model=model.get("d_model"),
                )
            )
    return points
