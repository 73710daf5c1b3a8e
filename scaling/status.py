"""`scaling-train status SWEEP_DIR`: a table of a sweep's runs, read from their records.

A run whose record says ``running`` but whose process or SLURM job is gone is shown as
``lost``: relaunching the sweep resumes it from its last checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from scaling import results


def _alive(launcher: dict[str, Any]) -> bool | None:
    """Whether the job or process that wrote a `running` record still exists (None: unknown)."""
    if launcher.get("kind") == "slurm" and launcher.get("job_id"):
        if not shutil.which("squeue"):
            return None
        # the job id is `123` or, for a job of an array, `123_4`; squeue lists a job while
        # it is pending (a requeued job too), running or completing. -r lists pending
        # array jobs one per line: otherwise they are folded into `123_[4-9]`.
        job = str(launcher["job_id"])
        try:
            out = subprocess.run(
                ["squeue", "-h", "-r", "-j", job, "-o", "%i"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            # a job that ended a while ago is forgotten by slurmctld: "Invalid job id";
            # anything else (no cluster configured, controller down) says nothing
            return False if "Invalid job id" in out.stderr else None
        return job in out.stdout.split()
    if launcher.get("pid") and launcher.get("host") == platform.node():
        try:
            os.kill(int(launcher["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return None


def _config_model(run_dir: Path) -> dict[str, Any]:
    """The ``model`` section of a run's config.yaml (empty when there is none)."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return cfg.get("model") or {}


def sweep_rows(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One dict per run of the sweep: what the status table shows, plus its directory."""
    rows = []
    for d, s in results.iter_runs(sweep_dir):
        s = s or {}
        status = s.get("status", "pending")
        launcher = s.get("launcher") or {}
        if status == "running" and _alive(launcher) is False:
            status = "lost"
        updated = s.get("updated_at")
        # a run that failed before its shape was resolved has only its config to show
        model = s if "d_model" in s else _config_model(d)
        rows.append(
            {
                "run_id": d.name,
                "dir": str(d),
                "status": status,
                "family": model.get("family"),
                "d_model": model.get("d_model"),
                "params": s.get("params_nonembed"),
                # a fine-tune or compression record: its source's pretraining tokens, and
                # the fine-tune's best loss on its task's validation split
                "tokens": s.get("tokens", (s.get("pretrain") or {}).get("tokens")),
                "tokens_target": s.get("tokens_target"),
                "loss": s.get("final_val_loss", s.get("val_loss")),
                "budget": _budget_label(s),
                "trunk_id": s.get("trunk_id") or d.name,
                "budget_index": -1 if s.get("role") == "trunk" else s.get("budget_index") or 0,
                "job_id": launcher.get("job_id"),
                "log": launcher.get("stdout") or launcher.get("log"),
                "error": s.get("error"),
                "updated": _dt.datetime.fromisoformat(updated).timestamp() if updated else 0.0,
            }
        )
    # the budgets of one trunk together, after the trunk itself
    rows.sort(key=lambda r: (r["params"] or 0, r["trunk_id"], r["budget_index"], r["run_id"]))
    return rows


def _budget_label(s: dict[str, Any]) -> str | None:
    """``trunk 2/4`` (budgets recorded) for a trunk, ``3`` for its third budget's record."""
    if s.get("role") == "trunk":
        budgets = s.get("budgets") or []
        done = sum(b.get("status") == "completed" for b in budgets)
        return f"trunk {done}/{len(budgets)}"
    if s.get("budgets"):
        return str((s.get("budget_index") or 0) + 1)
    return None


def _fmt(x: Any, spec: str = "") -> str:
    if x is None:
        return "-"
    return format(x, spec) if spec else str(x)


def sweep_table(sweep_dir: str | os.PathLike) -> tuple[str, list[dict[str, Any]]]:
    """The status table as text, and the rows it shows."""
    rows = sweep_rows(sweep_dir)
    header = ("run", "status", "family", "d_model", "N", "budget", "tokens", "val loss", "job", "log")
    lines = [header]
    for r in rows:
        tokens = _fmt(r["tokens"], ".3g")
        if r["status"] != "completed" and r["tokens_target"]:
            tokens += f"/{r['tokens_target']:.3g}"
        lines.append(
            (
                r["run_id"],
                r["status"],
                _fmt(r["family"]),
                _fmt(r["d_model"]),
                _fmt(r["params"], ".3g"),
                _fmt(r["budget"]),
                tokens,
                _fmt(r["loss"], ".4f"),
                _fmt(r["job_id"]),
                _fmt(r["log"]),
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines
    )
    if not rows:
        text += "\n(no runs)"
    return text, rows


def main(argv: list[str] | None = None) -> int:
    """Print the status table of one sweep directory (``--json`` for machine-readable).

    Returns 0, or 1 (with one line naming the file and the fix) when a run's record
    cannot be read.
    """
    parser = argparse.ArgumentParser(
        prog="scaling-train status", description="Show the runs of a sweep and their state."
    )
    parser.add_argument("sweep_dir", help="a sweep directory, e.g. results/demo")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if not Path(args.sweep_dir).is_dir():
        parser.error(f"{args.sweep_dir}: no such sweep directory")
    try:
        table, rows = sweep_table(args.sweep_dir)
    except results.RecordError as e:
        print(f"scaling-train status: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "")
    return 0
