"""The on-disk run record: one directory per run, written so nothing is half-written.

See ``docs/run-record.md`` for the format. Everything here is plain Python (no torch),
so the record can be read and written by any process, including the launcher that
decides which runs of a sweep still need training.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA = 1


class RecordError(ValueError):
    """A record file that cannot be read; the message names the file and the fix."""


STATUSES = ("running", "interrupted", "completed", "diverged", "failed")
DONE = ("completed", "diverged")  # finished for good: relaunching does not retrain these

# Config keys that say where or how a run is launched or logged, not what it computes:
# two launches that differ only in these are the same run and share one directory.
NON_IDENTITY_KEYS = (
    "hydra",
    "results_dir",
    "data.cache_dir",
    "train.log_every",
    "train.ckpt_every",
    "train.keep_checkpoint",
    "train.threads",
    "train.loggers",
    "train.tracker_dir",
    "train.wandb_project",
    "train.mlflow_uri",
    "finetune.threads",
    "finetune.log_every",
    "compress.threads",
)
# Whether a run keeps its final weights changes no number it computes. It is hashed as
# false whatever its value (rather than left out, which would change the id of every
# run made before), so a sweep relaunched with `train.save_model=true` finds its runs.
HASHED_AS_FALSE = ("train.save_model",)
# Keys added after records were first made, left out of the hash at their default
# value, so that the runs made before them keep their ids (and a relaunch finds them).
# Under the cosine schedule the decay settings change nothing, so they are left out too.
OMITTED_AT_DEFAULT = {
    "optim.schedule": "cosine",
    "optim.decay_frac": 0.2,
    "optim.decay_shape": "linear",
    "optim.rules": "stated",
    "optim.warmup_tokens": None,
    "train.budgets": None,
    "train.budgets_per_param": None,
    "train.flops": None,
    "train.min_steps": None,
    "data.unique_tokens": None,
    "finetune.dropout": 0.0,
}
COSINE_IGNORES = ("optim.decay_frac", "optim.decay_shape")


def run_id(config: Mapping[str, Any]) -> str:
    """Short, stable hash of a resolved config, without launcher and output fields.

    Parameters
    ----------
    config : Mapping
        The fully resolved run config (plain containers, e.g. from ``OmegaConf.to_container``).

    Returns
    -------
    str
        Twelve hex digits of the SHA-256 of the canonical JSON of the config.
    """
    identity = _without(config, NON_IDENTITY_KEYS)
    for dotted in HASHED_AS_FALSE:
        section, key = dotted.split(".")
        if key in identity.get(section, {}):
            identity[section] = {**identity[section], key: False}
    cosine = (identity.get("optim") or {}).get("schedule", "cosine") == "cosine"
    for dotted, default in OMITTED_AT_DEFAULT.items():
        section, key = dotted.split(".")
        part = identity.get(section)
        if isinstance(part, dict) and key in part:
            if part[key] == default or (cosine and dotted in COSINE_IGNORES):
                identity[section] = {k: v for k, v in part.items() if k != key}
    _keep_own_budgets(identity)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _keep_own_budgets(identity: dict[str, Any]) -> None:
    """Keep in the hash only the budgets that decide this record (see scaling/budgets.py).

    A trunk (a run with ``train.budgets``) is decided by its first budget, which sets its
    warmup: asking later for more budgets keeps its id, and it continues. Budget ``k``'s
    record (a ``budget: {index: k}`` section) is decided by the first budget and its own
    under ``wsd``, whose cooldowns fork from a trunk that never decays, and by every
    budget up to its own under ``wsd_s``, whose one trajectory passes through them all.
    """
    train = identity.get("train")
    if not isinstance(train, dict):
        return
    for key in ("budgets", "budgets_per_param"):
        values = train.get(key)
        if not isinstance(values, list) or not values:
            continue
        k = int((identity.get("budget") or {}).get("index", 0))
        if "budget" not in identity:
            kept = values[:1]
        elif (identity.get("optim") or {}).get("schedule") == "wsd_s":
            kept = values[: k + 1]
        else:
            kept = [values[0], values[k]] if k > 0 else values[:1]
        identity["train"] = {**train, key: kept}


def _without(config: Mapping[str, Any], dotted: tuple[str, ...], prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        key = prefix + str(k)
        if key in dotted:
            continue
        out[k] = _without(v, dotted, key + ".") if isinstance(v, Mapping) else v
    return out


def run_dir(results_dir: str | os.PathLike, sweep: str, rid: str) -> Path:
    """Where the record of run ``rid`` of ``sweep`` lives."""
    return Path(results_dir) / sweep / rid


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and ``os.replace``.

    A reader sees either the old file or the new one, never a half-written one, even if
    the process is killed mid-write; on any error the temp file is removed. The file
    gets the permissions the user's umask gives any new file, like the record's other
    files (``tempfile.mkstemp`` would make it private to its owner).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    # O_EXCL under a random name, as mkstemp does, but with mode 0o666 for the umask to cut
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_json(path: str | os.PathLike, obj: Mapping[str, Any]) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    # numpy scalars and paths end up in summaries; JSON has no type for either
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def read_summary(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``summary.json``, or None when there is none yet.

    Raises
    ------
    RecordError
        When the file exists but is not UTF-8, not valid JSON (empty or cut short) or not
        a JSON object (one line naming the file and the fix).
    """
    path = Path(directory) / "summary.json"
    if not path.exists():
        return None
    fix = "delete it to retrain this run (from its checkpoint, if it has one)"
    try:
        text = path.read_bytes().decode("utf-8")
        summary = json.loads(text)
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not UTF-8 text (byte {e.start}); {fix}") from None
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"not valid JSON ({e.msg} at line {e.lineno})"
        raise RecordError(f"{path}: {what}; {fix}") from None
    if not isinstance(summary, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        what = kinds.get(type(summary), "a number")
        raise RecordError(f"{path}: holds {what}, not a JSON object; {fix}")
    return summary


def write_summary(directory: str | os.PathLike, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Atomically rewrite ``summary.json`` with ``schema`` and ``updated_at`` filled in."""
    if summary.get("status") not in STATUSES:
        raise ValueError(f"summary status must be one of {STATUSES}, got {summary.get('status')!r}")
    out = {"schema": SCHEMA, **summary}
    out["updated_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(Path(directory) / "summary.json", out)
    return out


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per evaluation, flushed at once.

    On resume the file is cut back to the length it had when the checkpoint was taken,
    so lines written after the checkpoint (and lost with the process) are not repeated.
    """

    def __init__(self, path: str | os.PathLike, truncate_to: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None and self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(truncate_to)
        elif truncate_to is None and self.path.exists():
            self.path.unlink()  # a fresh start: no lines from an earlier attempt
        self._f = open(self.path, "ab")

    def append(self, row: Mapping[str, Any]) -> None:
        self._f.write((json.dumps(row, default=_jsonable) + "\n").encode())
        self._f.flush()

    def tell(self) -> int:
        """Bytes written so far: stored in checkpoints to cut the file back on resume."""
        return self._f.tell()

    def close(self) -> None:
        self._f.close()


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl`` (empty when there is none)."""
    path = Path(directory) / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not UTF-8 text (byte {e.start})") from None
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}, line {i}: not valid JSON ({e.msg})") from None
    return rows


def iter_runs(sweep_dir: str | os.PathLike) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Each run directory of a sweep with its summary (None when it has none), by run id."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (d / "config.yaml").exists() or (d / "summary.json").exists():
            yield d, read_summary(d)


def has_weights(directory: str | os.PathLike) -> bool:
    """Whether a run directory holds saved final weights (``model/``: HF config + safetensors)."""
    model = Path(directory) / "model"
    return (model / "config.json").is_file() and any(model.glob("*.safetensors"))


def git_sha(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the project checkout, with ``-dirty`` when it has local changes."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None
