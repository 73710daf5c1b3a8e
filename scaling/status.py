"""`scaling-train status PATH`: a table of a sweep's runs, read from their records.

``PATH`` is a sweep directory (``results/demo``), a results root holding sweeps
(``results``: one table per sweep) or one run's directory. Every point of the sweep is
listed, started or not: the points come from the Hydra config the sweep was launched
with (scaling/points.py). A run whose record says ``running`` but whose process or
SLURM job is gone is shown as ``lost``: relaunching the sweep resumes it from its last
checkpoint. Running runs show their throughput and time left, read from the last
progress line of their log (else from their last evaluations in ``metrics.jsonl``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from scaling import points as sweep_points_mod
from scaling import results

# what `status` exits 1 for: a run that needs attention before the sweep can finish
BAD = ("failed", "lost")
NOT_STARTED = "not started"
# the note left in <sweep>/<run_id>/ for a point skipped for too few steps (scaling/main.py)
SKIPPED = "skipped.txt"
# the progress line a run prints every train.log_every steps (scaling/train.py)
_PROGRESS = re.compile(
    r"^\[(?P<id>[0-9a-f]+)\] step \d+/\d+ .* (?P<rate>[\d,]+) tok/s .* eta (?P<eta>\d+)s$"
)
_TAIL_BYTES = 64 * 1024  # the last progress line is near the end of a log


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


def sweep_rows(sweep_dir: str | os.PathLike, only: str | None = None) -> list[dict[str, Any]]:
    """One dict per run record of the sweep: what the status table shows, plus its directory.

    Parameters
    ----------
    sweep_dir : path
        The sweep directory; the rows' ``dir`` and ``log`` paths start from it, so they
        work from wherever it was given from.
    only : str, optional
        A run id: that run's record alone (a trunk's: with its budgets' records).
    """
    sweep_dir = Path(sweep_dir)
    rows = []
    for d, s in results.iter_runs(sweep_dir):
        s = s or {}
        if only is not None and only not in (d.name, s.get("trunk_id")):
            continue
        status = s.get("status", "pending")
        launcher = s.get("launcher") or {}
        if status == "running" and _alive(launcher) is False:
            status = "lost"
        updated = s.get("updated_at")
        # a run that failed before its shape was resolved has only its config to show
        model = s if "d_model" in s else _config_model(d)
        log = _log_path(d, s, sweep_dir)
        rate = eta = None
        if status == "running":
            rate, eta = _progress(d, s, log)
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
                "log": log,
                "tokens_per_s": rate,
                "eta_s": eta,
                "error": s.get("error"),
                "updated": _dt.datetime.fromisoformat(updated).timestamp() if updated else 0.0,
            }
        )
    # the budgets of one trunk together, after the trunk itself
    rows.sort(key=lambda r: (r["params"] or 0, r["trunk_id"], r["budget_index"], r["run_id"]))
    return rows


def _rebase(path: str, sweep_dir: Path) -> Path:
    """A recorded path, made to work from here.

    Records keep their log paths as the launch saw them, relative to where the sweep
    was launched; from anywhere else they point nowhere. A path under the sweep's own
    directory is rebuilt from the sweep directory ``status`` was given.
    """
    p = Path(path)
    if p.is_absolute() or p.exists() or sweep_dir.name not in p.parts:
        return p
    parts = p.parts
    i = len(parts) - 1 - parts[::-1].index(sweep_dir.name)
    return sweep_dir.joinpath(*parts[i + 1 :])


def _log_path(d: Path, s: dict[str, Any], sweep_dir: Path) -> str | None:
    """The file holding the run's output: its SLURM job's stdout, else its ``train.log``.

    A SLURM job's stdout has everything the run printed, a traceback included; a local
    run's progress is in its own ``train.log``. A budget's record has no process of its
    own: its trunk's log is the one. Hydra's ``main.log`` is shown only when something
    was written to it.
    """
    launcher = s.get("launcher") or {}
    trunk = s.get("trunk_id")
    own = [d / "train.log"]
    if trunk and trunk != d.name:
        own.append(sweep_dir / trunk / "train.log")
    recorded = [_rebase(launcher[k], sweep_dir) for k in ("stdout", "log") if launcher.get(k)]
    first = recorded[:1] if launcher.get("stdout") else []
    for c in first + own + recorded:
        if c.is_file() and c.stat().st_size > 0:
            return str(c)
    # a SLURM job's log may not exist yet (pending) or live on the node only: say where
    return str(recorded[0]) if launcher.get("stdout") else None


def _tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - _TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _progress(d: Path, s: dict[str, Any], log: str | None) -> tuple[float | None, float | None]:
    """Tokens per second and seconds left of a running run, from the last progress it wrote.

    The last progress line in its log says both (as of when it was written: the time
    since is taken off the ETA); without one, the last two evaluations in
    ``metrics.jsonl`` give the rate, and the tokens left to ``tokens_target`` the ETA.
    """
    now = time.time()
    ident = s.get("trunk_id") or d.name
    if log:
        for line in reversed(_tail(Path(log))):
            m = _PROGRESS.match(line.strip())
            if m and m["id"] in (ident, d.name):
                since = now - Path(log).stat().st_mtime
                return float(m["rate"].replace(",", "")), max(0.0, float(m["eta"]) - since)
    try:
        rows = [r for r in results.read_metrics(d) if "elapsed_s" in r and "tokens" in r]
    except results.RecordError:
        return None, None
    if len(rows) < 2:
        return None, None
    a, b = rows[-2], rows[-1]
    dt = b["elapsed_s"] - a["elapsed_s"]
    if dt <= 0 or b["tokens"] <= a["tokens"]:
        return None, None  # a resume or a fork in between: no rate to read
    rate = (b["tokens"] - a["tokens"]) / dt
    target = s.get("tokens_target")
    if not target:
        return rate, None
    since = now - (d / "metrics.jsonl").stat().st_mtime
    return rate, max(0.0, (target - b["tokens"]) / rate - since)


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


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def point_status(
    point: sweep_points_mod.Point, by_id: dict[str, dict[str, Any]], sweep_dir: Path
) -> str:
    """A point's state from the records on disk: its run's, ``skipped`` or ``not started``.

    A trunk whose every budget has a done record is done, whatever its own record says.
    A point left out for having too few steps (``train.min_steps``) has no record, only
    the note ``<run_id>/skipped.txt`` saying why.
    """
    row = by_id.get(point.run_id)
    if row is None and (sweep_dir / point.run_id / SKIPPED).is_file():
        return "skipped"
    if point.records and all(
        (by_id.get(rid) or {}).get("status") in results.DONE for rid in point.records
    ):
        return "completed" if row is None or row["status"] not in results.DONE else row["status"]
    return NOT_STARTED if row is None else row["status"]


def _not_started_rows(
    points: list[sweep_points_mod.Point], rows: list[dict[str, Any]], sweep_dir: Path
) -> list[dict[str, Any]]:
    by_id = {r["run_id"]: r for r in rows}
    out = []
    for p in points:
        state = point_status(p, by_id, sweep_dir)
        if state not in (NOT_STARTED, "skipped"):
            continue
        why = None
        if state == "skipped":
            why = (sweep_dir / p.run_id / SKIPPED).read_text(encoding="utf-8").strip()
        out.append(
            {
                "run_id": p.run_id,
                "dir": str(sweep_dir / p.run_id),
                "status": state,
                "family": p.family,
                "d_model": p.d_model,
                "params": None,
                "tokens": None,
                "tokens_target": None,
                "loss": None,
                "budget": None if p.records is None else f"trunk 0/{len(p.records)}",
                "trunk_id": p.run_id,
                "budget_index": -1,
                "job_id": None,
                "log": None,
                "tokens_per_s": None,
                "eta_s": None,
                "error": why,
                "updated": 0.0,
                "overrides": " ".join(p.overrides),
            }
        )
    return out


def sweep_table(
    sweep_dir: str | os.PathLike,
    points: list[sweep_points_mod.Point] | None = None,
    only: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The status table as text, and the rows it shows.

    With the sweep's ``points`` (:func:`scaling.points.sweep_points`), the points not
    started yet are listed too, after the records on disk.
    """
    rows = sweep_rows(sweep_dir, only=only)
    if points is not None:
        rows += _not_started_rows(points, rows, Path(sweep_dir))
    header = (
        "run", "status", "family", "d_model", "N", "budget", "tokens", "val loss", "tok/s",
        "eta", "job", "log",
    )  # fmt: skip
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
                _fmt(r["tokens_per_s"], ",.0f"),
                _duration(r["eta_s"]),
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


def counts_line(
    rows: list[dict[str, Any]],
    points: list[sweep_points_mod.Point] | None = None,
    sweep_dir: str | os.PathLike = ".",
) -> str:
    """``2 of 6 completed, 1 running, 3 not started``: the sweep's points by state.

    Without the sweep's points, its runs are counted: one per trunk or one-budget run
    (a trunk's budget records are part of it). Points skipped for too few steps are not
    among the n to train: they are counted after.
    """
    if points is not None:
        by_id = {r["run_id"]: r for r in rows}
        states = [point_status(p, by_id, Path(sweep_dir)) for p in points]
    else:
        # a budget's record is labelled with its index, a trunk "trunk k/n"
        states = [r["status"] for r in rows if not (r["budget"] or "").isdigit()]
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    done = counts.pop("completed", 0)
    skipped = counts.pop("skipped", 0)
    rest = [f"{n} {s}" for s, n in sorted(counts.items())]
    if skipped:
        rest.append(f"{skipped} skipped (too few steps for train.min_steps)")
    return ", ".join([f"{done} of {len(states) - skipped} completed", *rest])


def _is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / "config.yaml").is_file()


def _is_sweep_dir(path: Path) -> bool:
    if sweep_points_mod.multirun_config(path).is_file():
        return True
    return any(True for _ in results.iter_runs(path))


def _targets(path: Path) -> list[tuple[Path, str | None]] | None:
    """The sweeps to show for ``path`` (and a run id when it is a run's directory)."""
    if _is_run_dir(path):
        return [(path.parent, path.name)]
    if _is_sweep_dir(path):
        return [(path, None)]
    sweeps = [d for d in sorted(path.iterdir()) if d.is_dir() and _is_sweep_dir(d)]
    return [(d, None) for d in sweeps] or None


def main(argv: list[str] | None = None) -> int:
    """Print the status of a sweep, of each sweep of a results root, or of one run.

    Returns 0; 1 when a run failed or was lost (so scripts can test it), or when a
    record cannot be read (one line naming the file and the fix).
    """
    parser = argparse.ArgumentParser(
        prog="scaling-train status",
        description=(
            "Show every point of a sweep, started or not, and its state: one table per "
            "sweep, with k of n completed, and for running runs their tokens/s, time left "
            "and log. Exits with 1 when a run failed or was lost."
        ),
        epilog=(
            "examples:\n"
            "  scaling-train status results/demo                # one sweep\n"
            "  scaling-train status results                     # every sweep under a root\n"
            "  scaling-train status results/demo/9c5f72c69eb6   # one run (and its budgets)\n"
            "  scaling-train status results/demo > /dev/null || echo 'a run failed'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path", help="a sweep directory (results/demo), a results root (results) or a run's"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.is_dir():
        parser.error(f"{args.path}: no such directory")
    targets = _targets(path)
    if targets is None:
        parser.error(
            f"{args.path}: holds no run, sweep or sweeps; give a sweep directory "
            "(results/<sweep>), a results root or a run's directory"
        )
    all_rows: list[dict[str, Any]] = []
    texts = []
    for sweep_dir, only in targets:
        points = None
        if only is None:
            try:
                points = sweep_points_mod.sweep_points(sweep_dir)
            except sweep_points_mod.PointsError as e:
                print(f"scaling-train status: {e}; listing the records only", file=sys.stderr)
        try:
            table, rows = sweep_table(sweep_dir, points, only=only)
        except results.RecordError as e:
            print(f"scaling-train status: {e}", file=sys.stderr)
            return 1
        title = f"sweep {sweep_dir.name}: {sweep_dir}" + (f", run {only}" if only else "")
        texts.append(f"{title}\n{table}\n{counts_line(rows, points, sweep_dir)}")
        all_rows += [{**r, "sweep_dir": str(sweep_dir)} for r in rows]
    if args.json:
        print(json.dumps(all_rows, indent=2))
    else:
        print("\n\n".join(texts))
    return 1 if any(r["status"] in BAD for r in all_rows) else 0
