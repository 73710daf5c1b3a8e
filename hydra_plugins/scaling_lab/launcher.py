"""Hydra's submitit SLURM launcher, made to wait for every job of a sweep.

The plugin's launcher (``hydra_plugins.hydra_submitit_launcher``) submits the sweep as one
job array and then collects the jobs' results in order, raising at the first job that
ended without one: a job killed for its memory, cancelled, or lost with its node. The
command then stops with a traceback while the rest of the sweep still runs, and the
sweep's report is never printed. :class:`SlurmLauncher` waits for every job instead,
says which ones died and where their logs are, and leaves the verdict on each run to
its record (:class:`scaling.main.SweepReport` reads them once every job has ended).

It lives under ``hydra_plugins`` because Hydra instantiates launchers from there only.

Everything else is the plugin's: the same parameters (``sweeps/hydra/launcher/slurm.yaml``),
the same job array, and the same requeue on preemption or time limit (its
``checkpoint()`` resubmits the task unchanged; the task finds the run's checkpoint).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """Submits a sweep as a SLURM job array and waits for all of its jobs, dead or alive."""

    #: "<job id> (<overrides>)" of each job that ended without a result, in this process
    died: list[str] = []

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Submit one job per sweep point and wait until every one has ended.

        What the plugin's ``launch`` does (less the optional ``hydra.sweep.mode`` chmod,
        unused here), except at the end: jobs that died are reported on stderr and
        returned as jobs with no value, instead of raising at the first of them.
        """
        import submitit

        if not job_overrides:  # every run of the sweep is done (sweeper.py)
            return []
        assert self.config is not None
        # the executor takes the folder and max_num_timeout, update_parameters the rest:
        # the plugin's own split of its parameters
        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        # jobs start through job_start.py, which holds a USR2 that comes before
        # submitit's handler is in place (see there)
        init[f"{self._EXECUTOR}_python"] = (
            f"{shlex.quote(sys.executable)} -u -m hydra_plugins.scaling_lab.job_start"
        )
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}
        )

        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        calls = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            calls.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*calls, strict=True))
        log.info(f"submitted {len(jobs)} job(s) as {jobs[0].job_id.split('_')[0]}, waiting")
        return [
            self._wait(job, overrides) for job, overrides in zip(jobs, job_overrides, strict=True)
        ]

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one sweep point in its SLURM job (the plugin's ``__call__``).

        submitit calls this with its USR2 handler in place: a USR2 held since the job
        started is delivered to it first, so the job is requeued as at any other moment.
        """
        from hydra_plugins.scaling_lab import job_start

        job_start.release()
        return super().__call__(*args, **kwargs)

    def _wait(self, job: Any, overrides: Sequence[str]) -> JobReturn:
        """The job's result, or an empty one (reported on stderr) when the job died."""
        import submitit

        try:
            return job.results()[0]
        except submitit.core.utils.UncompletedJobError:
            # FailedJobError, a subclass, is the task raising outside the run (the run's
            # own failures are caught and recorded by it)
            what = " ".join(filter_overrides(overrides))
            SlurmLauncher.died.append(f"{job.job_id} ({what})")
            print(
                f"job {job.job_id} ({what}) ended without a result (SLURM state: "
                f"{job.state})\n  log: {job.paths.stdout}",
                file=sys.stderr,
                flush=True,
            )
            # Hydra re-raises the value of a job that is not COMPLETED, which would end the
            # sweep here: the death is reported above, and the run's record tells the rest
            return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
