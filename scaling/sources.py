"""Jobs that start from a finished sweep: fine-tuning and compression of its models.

    scaling-train -m experiment=finetune source=results/demo
    scaling-train -m experiment=compress source=results/demo

One such command is one Hydra job that loops over the completed runs of the source sweep
with saved weights (``train.save_model=true``), one record each, written with the same
tools as a pretraining run (``scaling.results``). A record's ``run_id`` hashes the job's
settings and the source run's id, so relaunching skips what is finished and redoes the
rest. A source run that fails is recorded as ``failed`` and the loop goes on.

A job module (``scaling.finetune``, ``scaling.compress``) provides two functions:
``record_config(cfg, source)``, the config that identifies one of its runs, and
``execute(config, source, out)``, which does the work and returns the final summary.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scaling import results

JOBS = ("finetune", "compress")


@dataclass
class SourceRun:
    """A completed pretraining run whose final weights are on disk.

    Attributes
    ----------
    dir : Path
        The run directory; the weights are in ``dir / "model"``.
    summary : dict
        Its ``summary.json``.
    config : dict
        Its ``config.yaml`` (the resolved config it was trained with).
    """

    dir: Path
    summary: dict[str, Any]
    config: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    def identity(self) -> dict[str, Any]:
        """How a derived record names its source: sweep and run id (not the path)."""
        return {"sweep": self.summary.get("sweep"), "run_id": self.run_id}

    def record_fields(self) -> dict[str, Any]:
        """The source's architecture, sizes and pretraining results, for a derived record."""
        s = self.summary
        keep = (
            "family n_layers d_model n_heads d_ff vocab_size context "
            "params_total params_nonembed params_matmul"
        ).split()
        return {
            **{k: s.get(k) for k in keep},
            "source": {**self.identity(), "dir": str(self.dir)},
            "pretrain": {
                "tokens": s.get("tokens"),
                "flops": s.get("flops"),
                "final_val_loss": s.get("final_val_loss"),
                "best_val_loss": s.get("best_val_loss"),
                "lr": (s.get("optim") or {}).get("lr"),
                "corpus": s.get("corpus"),
                "tokenizer": s.get("tokenizer"),
            },
        }


#: Which budget records of a trunk a job starts from (``source_budgets``).
SOURCE_BUDGETS = ("all", "last")


def find_sources(sweep_dir: str | Path, budgets: str = "all") -> tuple[list[SourceRun], list[str]]:
    """The completed runs of a sweep with saved weights, and why the others are left out.

    Parameters
    ----------
    sweep_dir : path
        A pretraining sweep directory (``<results_dir>/<sweep>``).
    budgets : {"all", "last"}
        Of a trunk that yielded several budgets (scaling/budgets.py), every budget's
        record, or only its last (most tokens): one model per size, at a fraction of
        the cost of a job over a whole WSD-S sweep. Runs without budgets are kept either
        way.

    Returns
    -------
    sources : list of SourceRun
        Smallest model first.
    skipped : list of str
        One line per run left out, saying why.
    """
    if budgets not in SOURCE_BUDGETS:
        raise ValueError(f"source_budgets={budgets!r}: expected one of {', '.join(SOURCE_BUDGETS)}")
    sources, skipped = [], []
    for d, summary in results.iter_runs(sweep_dir):
        if not summary or summary.get("job", "pretrain") != "pretrain":
            continue
        # a trunk's own record is its trajectory, not a model: its budgets are the models
        if summary.get("role") == "trunk":
            continue
        if summary.get("status") != "completed":
            skipped.append(f"{d.name}: {summary.get('status')}, not completed")
        elif not results.has_weights(d):
            skipped.append(
                f"{d.name}: no saved weights (relaunch its sweep with train.save_model=true)"
            )
        else:
            config = yaml.safe_load((d / "config.yaml").read_text())
            sources.append(SourceRun(d, summary, config))
    if budgets == "last":
        last: dict[str, SourceRun] = {}
        for src in sources:
            trunk = src.summary.get("trunk_id") or src.run_id
            if trunk not in last or _budget_index(src) > _budget_index(last[trunk]):
                last[trunk] = src
        kept = {id(s) for s in last.values()}
        skipped += [
            f"{s.run_id}: budget {_budget_index(s)} of trunk {s.summary['trunk_id']}, "
            "not its last (source_budgets=last)"
            for s in sources
            if id(s) not in kept
        ]
        sources = [s for s in sources if id(s) in kept]
    sources.sort(key=lambda s: (s.summary.get("params_nonembed") or 0, s.run_id))
    return sources, skipped


def _budget_index(src: SourceRun) -> int:
    return int(src.summary.get("budget_index") or 0)


def run_job(job: str, cfg: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Run ``job`` on every source run of ``cfg["source"]``; skip the finished ones.

    Parameters
    ----------
    job : str
        One of :data:`JOBS`.
    cfg : Mapping
        The fully resolved Hydra config (``source``, ``results_dir``, ``sweep`` and the
        job's own sections).

    Returns
    -------
    list of (run_id, status, message)
        One per source run: ``skipped``, ``completed`` or ``failed``; a single ``failed``
        entry when the source sweep has no usable run.
    """
    if job not in JOBS:
        raise ValueError(f"job={job!r} is unknown: use pretrain or one of {JOBS}")
    module = importlib.import_module(f"scaling.{job}")
    source = Path(cfg["source"])
    sources, skipped = find_sources(source, cfg.get("source_budgets", "all"))
    for line in skipped:
        print(f"{job}: source run {line}: left out", flush=True)
    if not sources:
        msg = f"{job}: no completed run with saved weights in {source}"
        print(msg, file=sys.stderr, flush=True)
        return [("-", "failed", msg)]

    outcomes = []
    for src in sources:
        config = module.record_config(cfg, src)
        rid = results.run_id(config)
        out = results.run_dir(cfg["results_dir"], cfg["sweep"], rid)
        label = f"{job} {rid} (source {src.run_id}, d_model {src.summary.get('d_model')})"
        summary = results.read_summary(out)
        if summary and summary.get("status") in results.DONE:
            print(f"{label}: already {summary['status']}, not redone: {out}", flush=True)
            outcomes.append((rid, "skipped", ""))
            continue
        print(f"{label}: running in {out}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        results.atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        try:
            summary = module.execute(config, src, out)
        except Exception as e:
            results.atomic_write_text(out / "error.txt", traceback.format_exc())
            failed = {
                "run_id": rid,
                "sweep": cfg["sweep"],
                "job": job,
                "status": "failed",
                **src.record_fields(),
                "error": f"{type(e).__name__}: {e}",
            }
            results.write_summary(out, failed)
            msg = f"{label} FAILED: {failed['error']}\n  traceback: {out / 'error.txt'}"
            print(msg, file=sys.stderr, flush=True)
            outcomes.append((rid, "failed", msg))
            continue
        outcomes.append((rid, summary["status"], ""))
    return outcomes
