"""The record's fixed part: who ran it, with what, where (docs/run-record.md)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch
from omegaconf.errors import OmegaConfBaseException


def versions() -> dict[str, str]:
    import transformers

    from scaling import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scaling_lab": __version__,
    }


def launcher_info() -> dict[str, Any]:
    """SLURM job id, array index and log paths when running under SLURM/submitit."""
    env = os.environ
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
    info: dict[str, Any] = {
        "kind": "slurm" if job else "local",
        "host": platform.node(),
        "pid": os.getpid(),
        "job_id": None,
        "array_index": None,
        "log": None,
        "stdout": None,
        "stderr": None,
    }
    # outside a Hydra app (a test, a notebook) there is no Hydra config, or a stale one
    with contextlib.suppress(ImportError, ValueError, OmegaConfBaseException):
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        log = Path(hc.runtime.output_dir) / f"{hc.job.name}.log"
        # relative to where the sweep was launched when inside it: records stay portable
        with contextlib.suppress(ValueError):
            log = log.relative_to(Path.cwd())
        info["log"] = str(log)
    if job:
        task = env.get("SLURM_ARRAY_TASK_ID")
        info["job_id"] = f"{job}_{task}" if task else job
        info["array_index"] = int(task) if task else None
    with contextlib.suppress(ImportError, RuntimeError):
        import submitit

        paths = submitit.JobEnvironment().paths
        info["stdout"] = str(paths.stdout)
        # SLURM creates the job's log files before it starts: no stderr file means stderr
        # goes to the stdout log (the launcher's stderr_to_stdout)
        info["stderr"] = str(paths.stderr if paths.stderr.exists() else paths.stdout)
    return info
