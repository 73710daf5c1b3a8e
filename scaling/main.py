"""`scaling-train`: the Hydra entry point.

    scaling-train -m experiment=smoke results_dir=runs/r    # a sweep
    scaling-train model.d_model=128                         # one run
    scaling-train status runs/r/smoke                       # what a sweep's runs are doing
    scaling-train --help                                    # experiments, groups, examples

Each point of a sweep is one call of :func:`run`: it resolves the config, finds the run's
directory from the hash of that config, skips the run when its record says it is done,
and otherwise trains it (resuming from a checkpoint when there is one).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from scaling import budgets, checks, results

# What happened to each run launched in this process: (run_id, status, message)
_OUTCOMES: list[tuple[str, str, str]] = []


def _overrides() -> str:
    try:
        return " ".join(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (called from Python)
        return ""


def done_summary(resolved: dict[str, Any], out: Path) -> dict[str, Any] | None:
    """The record of the run in ``out`` when it needs no training, else None.

    A run is done when its record says completed or diverged (a divergence would only
    repeat; a failed run is retried), unless weights are asked for
    (``train.save_model``) and a completed run has none: retraining is the only way to
    get them (its checkpoint is gone), and lands on the same run (training is
    deterministic).

    The sweeper asks this of every point of a sweep before it launches any, so the
    config is checked here too: a bad point ends the command before anything is written.

    Raises
    ------
    scaling.checks.Refused
        A :class:`~scaling.checks.ConfigError` naming the bad key, or a record that
        cannot be read (naming the file and the fix).
    """
    checks.check_config(resolved)
    return _readable(_done_summary, resolved, out)


def _readable(read: Any, *args: Any) -> Any:
    # an unreadable record ends the launch with its one-line message, not a traceback
    try:
        return read(*args)
    except results.RecordError as e:
        raise checks.Refused(str(e)) from None


def _done_summary(resolved: dict[str, Any], out: Path) -> dict[str, Any] | None:
    ids = budgets.record_ids(resolved)
    if ids is not None:
        return _trunk_done(resolved, out, ids)
    summary = results.read_summary(out)
    if summary is None or summary.get("status") not in results.DONE:
        return None
    wants_weights = resolved["train"].get("save_model")
    if summary["status"] == "completed" and wants_weights and not results.has_weights(out):
        return None
    return summary


def _trunk_done(resolved: dict[str, Any], out: Path, ids: list[str]) -> dict[str, Any] | None:
    """A trunk's record when each of its budgets has a done record, or when it diverged."""
    trunk = results.read_summary(out)
    if trunk is not None and trunk.get("status") == "diverged":
        return trunk
    last = None
    for rid in ids:
        rdir = results.run_dir(resolved["results_dir"], resolved["sweep"], rid)
        last = _done_summary({**resolved, "train": _one_budget(resolved["train"])}, rdir)
        if last is None:
            return None
    return trunk if trunk is not None and trunk.get("status") in results.DONE else last


def _one_budget(train: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train.items() if k not in budgets.BUDGET_KEYS}


def _nothing_left_to_checkpoint() -> None:
    """Ignore SLURM's time-limit warning (USR2) from now on in this job.

    The job's run is done. A USR2 now would make submitit requeue the job while it is
    writing its result file, and the requeued job would then fail on the half-written
    file, reporting a finished run as a dead job. With nothing left to save, the job
    had better finish writing its result and exit.
    """
    if "SLURM_JOB_ID" in os.environ:
        try:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to handle
            pass


def skip(label: str, summary: dict[str, Any], out: Path) -> None:
    """Say why a done run is not retrained, and count it among this launch's outcomes."""
    loss = summary.get("final_val_loss")
    loss_text = "-" if loss is None else f"{loss:.4f}"
    what = f"val loss {loss_text}"
    if summary.get("role") == "trunk":
        what = f"{len(summary.get('budgets') or [])} budgets recorded, the last at {what}"
    msg = f"{label}: already {summary['status']} ({what}), not retrained: {out}"
    print(msg, flush=True)
    _OUTCOMES.append((out.name, "skipped", ""))


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Train one point of a sweep unless its record says it is already done.

    With ``job=finetune`` or ``job=compress`` (experiment/finetune.yaml, compress.yaml),
    fine-tune or compress every model of the sweep ``source`` instead (scaling/sources.py).

    Raises
    ------
    scaling.checks.Refused
        Before anything is written: a config no run can be trained from
        (:class:`~scaling.checks.ConfigError`, naming the key and the fix), or a record
        of this run that cannot be read.
    """
    resolved = checks.resolve(cfg)
    checks.check_config(resolved)
    if resolved.get("job", "pretrain") != "pretrain":
        from scaling.sources import run_job

        _OUTCOMES.extend(run_job(resolved["job"], resolved))
        return None
    rid = results.run_id(resolved)
    out = results.run_dir(resolved["results_dir"], resolved["sweep"], rid)
    label = f"run {rid} ({_overrides() or 'defaults'})"

    summary = _readable(_done_summary, resolved, out)
    if summary is not None:
        skip(label, summary, out)
        _nothing_left_to_checkpoint()
        return summary
    if (_readable(results.read_summary, out) or {}).get("status") == "completed":
        print(f"{label}: completed without saved weights, retraining to save them", flush=True)

    # torch is imported only when something is to be trained: relaunching a finished
    # sweep stays fast
    from scaling.plan import too_short
    from scaling.stop import Interrupted
    from scaling.train import train

    why = too_short(resolved)
    if why is not None:
        print(f"{label}: {why}", flush=True)
        # no record (the analysis must not read it as a run), only a note for `status`,
        # which would otherwise show the point as not started for ever
        from scaling.status import SKIPPED

        results.atomic_write_text(out / SKIPPED, why + "\n")
        _OUTCOMES.append((rid, "skipped", why))
        _nothing_left_to_checkpoint()
        return None

    print(f"{label}: training in {out}", flush=True)
    try:
        summary = train(resolved, out)
    except Interrupted as e:
        # A stop signal ends this process, not just this run: the user (or SLURM, on
        # `scancel` or `scontrol requeue`) wants it gone. The checkpoint is saved, and
        # exiting without a result keeps submitit from taking the run as finished when
        # its job is requeued.
        msg = f"{label}: {e}; checkpoint saved, resumes when relaunched (or requeued)"
        print(msg, file=sys.stderr, flush=True)
        raise SystemExit(128 + e.signum) from e
    except Exception as e:
        # recorded by train() as `failed`; keep going with the other points of the sweep
        msg = f"{label} FAILED: {type(e).__name__}: {e}\n  traceback: {out / 'error.txt'}"
        print(msg, file=sys.stderr, flush=True)
        _OUTCOMES.append((rid, "failed", msg))
        return None
    _nothing_left_to_checkpoint()
    _OUTCOMES.append((rid, summary["status"], ""))
    return summary


class ConfigCheck(Callback):
    """Refuses a bad config before Hydra creates its first directory.

    Hydra makes its own log directory under ``results_dir`` before the task starts, so
    a results directory that cannot be created would end in a traceback there; every
    other check is made here too, so a bad value ends the command with one line. In a
    multirun this checks the values common to every point (the sweeper checks each
    point before launching any); keys being swept are left to it.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_bad(config, swept=set())

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_bad(config, swept=_swept_keys(config))


def _swept_keys(config: DictConfig) -> set[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = list(config.hydra.overrides.task)
    keys = {
        o.key_or_group
        for o in OverridesParser.create().parse_overrides(task)
        if o.is_sweep_override()
    }
    return keys | {str(k) for k in (config.hydra.sweeper.get("params") or {})}


def _refuse_bad(config: DictConfig, swept: set[str]) -> None:
    cfg = config.copy()
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    try:
        resolved = checks.resolve(cfg)
        checks.check_config(resolved)
        if not swept and resolved.get("job", "pretrain") == "pretrain":
            # the run's own record: unreadable, it would end the run in a traceback
            out = results.run_dir(
                resolved["results_dir"], resolved["sweep"], results.run_id(resolved)
            )
            _readable(_done_summary, resolved, out)
    except checks.Refused as e:
        key = getattr(e, "key", "")
        if any(key == k or key.startswith(k + ".") for k in swept):
            return  # each point's own value is checked by the sweeper
        # SystemExit: Hydra turns any other exception raised by a callback into a warning
        raise SystemExit(f"scaling-train: {e}") from None


class SweepReport(Callback):
    """Prints, at the end of a multirun, one line per run of the sweep and what went wrong.

    Runs in the launching process whatever the launcher, so it reads the records on
    disk rather than the jobs' return values.
    """

    failed: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._t0 = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from scaling.status import sweep_table

        sweep_dir = Path(config.results_dir) / config.sweep
        table, rows = sweep_table(sweep_dir)
        print(f"\nsweep {config.sweep}: {sweep_dir}\n{table}", flush=True)
        t0 = getattr(self, "_t0", 0.0)
        for row in rows:
            if row["updated"] < t0 - 1 or row["status"] in results.DONE:
                continue  # not touched by this launch, or finished
            SweepReport.failed.append(row["run_id"])
            if row["status"] == "failed":
                what = f"FAILED run {row['run_id']}: {row['error']}\n"
                what += f"  traceback: {row['dir']}/error.txt"
            else:
                # its job ended and left it unfinished: killed from outside (out of
                # memory, cancelled, node lost) or out of requeues; the checkpoint stays
                job = f", job {row['job_id']}" if row["job_id"] else ""
                what = f"UNFINISHED run {row['run_id']} ({row['status']}{job}): "
                what += "relaunch the sweep to resume it"
            print(f"{what}\n  log: {row['log'] or '-'}", file=sys.stderr, flush=True)


@hydra.main(version_base="1.3", config_path="../sweeps", config_name="config")
def _hydra_main(cfg: DictConfig) -> dict[str, Any] | None:
    return run(cfg)


def main() -> None:
    """Console entry point: ``status`` or a Hydra run/multirun."""
    if len(sys.argv) > 1 and sys.argv[1] == "status":
        from scaling.status import main as status_main

        sys.exit(status_main(sys.argv[2:]))
    from scaling.help import asks_for_help, help_text

    if asks_for_help(sys.argv[1:]):
        # ours first (experiments, groups, `status`, examples), then Hydra's, which exits
        print(help_text(), flush=True)
    _hydra_main()
    from hydra_plugins.scaling_lab.launcher import SlurmLauncher
    from hydra_plugins.scaling_lab.parallel import ParallelLauncher

    failed = set(SweepReport.failed) | {rid for rid, s, _ in _OUTCOMES if s == "failed"}
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(sorted(failed))}", file=sys.stderr)
    died = SlurmLauncher.died + ParallelLauncher.died
    if died:
        print(f"{len(died)} job(s) died: {', '.join(died)}", file=sys.stderr)
    if failed or died:
        sys.exit(1)


if __name__ == "__main__":
    main()
