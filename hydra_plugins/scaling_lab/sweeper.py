"""Hydra's basic sweeper, less the runs whose records say they are done.

Hydra composes every job's config in the launching process before it launches anything
(to catch composition errors early). :class:`SkipDoneSweeper` uses that composition to
find each run's record as well, and hands the launcher only the runs that still need
training. Relaunching a finished sweep then launches nothing: locally no per-job setup,
on SLURM no job submitted just to find its run done. Each job still checks its own
record when it starts (``scaling.main.run``), so a run finished meanwhile is not
retrained either.

Fine-tuning and compression sweeps (``job`` other than ``pretrain``) are passed through
whole: each of their jobs covers many models and skips the finished ones itself.
"""

from __future__ import annotations

from collections.abc import Sequence

# Hydra exports its basic sweeper from this module only
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import filter_overrides
from omegaconf import open_dict, read_write


class SkipDoneSweeper(BasicSweeper):
    """Sweeps the Cartesian product of the overrides, like Hydra's basic sweeper."""

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        """The next batch of jobs, without those whose runs are done."""
        from scaling.checks import Refused

        try:
            return [job for job in super().get_job_batch() if not self._done(job)]
        except Refused as e:  # a bad point or an unreadable record: one line, nothing launched
            raise SystemExit(f"scaling-train: {e}") from None

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing left to check: :meth:`get_job_batch` composed every job already."""

    def _done(self, overrides: Sequence[str]) -> bool:
        from scaling import checks, main, results

        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(
            master_config=self.config, sweep_overrides=list(overrides)
        )
        # resolve the job's config as the job will: with its own Hydra config in place
        # for ${hydra:...} interpolations, then without the hydra node
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)
        try:
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
            resolved = checks.resolve(cfg)
        finally:
            HydraConfig.instance().cfg = previous
        if resolved.get("job", "pretrain") != "pretrain":
            return False
        rid = results.run_id(resolved)
        out = results.run_dir(resolved["results_dir"], resolved["sweep"], rid)
        summary = main.done_summary(resolved, out)
        if summary is None:
            return False
        label = f"run {rid} ({' '.join(filter_overrides(overrides)) or 'defaults'})"
        main.skip(label, summary, out)
        return True
