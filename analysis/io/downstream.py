"""Fine-tuning and compression records: the jobs run over a finished sweep.

``scaling-train -m experiment=finetune|compress source=<sweep>`` writes its records in
``<sweep>-finetune/`` and ``<sweep>-compress/`` beside the source sweep
(docs/run-record.md); these readers find them and give one row per record, with the
source model's size and pretraining loss as columns.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.io.errors import DataError, DataWarning
from analysis.io.records import PARAM_CONVENTIONS

__all__ = [
    "COMPRESS_SUFFIX",
    "FINETUNE_SUFFIX",
    "downstream_dirs",
    "load_compress",
    "load_finetune",
]

FINETUNE_SUFFIX = "-finetune"
COMPRESS_SUFFIX = "-compress"


# --------------------------------------------------------------------------------------
# Loading


def downstream_dirs(path: str | Path) -> tuple[Path | None, Path | None]:
    """The fine-tuning and compression sweep directories that belong to ``path``.

    Parameters
    ----------
    path
        A pretraining sweep directory (its ``-finetune``/``-compress`` siblings are
        looked up), or one of those two directories itself.

    Returns
    -------
    (finetune_dir, compress_dir)
        Each None when it does not exist.
    """
    path = Path(path)
    base = path.name
    for suffix in (FINETUNE_SUFFIX, COMPRESS_SUFFIX):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    found = [path.parent / f"{base}{suffix}" for suffix in (FINETUNE_SUFFIX, COMPRESS_SUFFIX)]
    ft, comp = (d if d.is_dir() else None for d in found)
    return ft, comp


def _records(path: str | Path, job: str) -> list[tuple[Path, dict[str, Any]]]:
    """The completed ``job`` summaries under ``path`` (hidden directories skipped)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such directory")
    out, other = [], []
    for file in sorted(path.rglob("summary.json")):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        try:
            record = json.loads(file.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(record, dict) or record.get("job") != job:
            continue
        if record.get("status") == "completed":
            out.append((file.parent, record))
        else:
            other.append(f"{record.get('run_id')} ({record.get('status')})")
    if other:
        warnings.warn(
            f"{path}: left out {len(other)} {job} run(s) that did not complete: {', '.join(other)}",
            DataWarning,
            stacklevel=3,
        )
    if not out:
        raise DataError(f"{path}: no completed {job} records")
    return out


def _source_columns(record: dict[str, Any], params: str) -> dict[str, Any]:
    pre = record.get("pretrain") or {}
    return {
        "source_run": (record.get("source") or {}).get("run_id"),
        "family": record.get("family"),
        "d_model": record.get("d_model"),
        "n_layers": record.get("n_layers"),
        "params": record.get(f"params_{params}"),
        "params_nonembed": record.get("params_nonembed"),
        "params_matmul": record.get("params_matmul"),
        "params_total": record.get("params_total"),
        "pretrain_loss": pre.get("final_val_loss"),
        "pretrain_tokens": pre.get("tokens"),
        "pretrain_flops": pre.get("flops"),
    }


def load_finetune(path: str | Path, params: str = "nonembed") -> pd.DataFrame:
    """One row per completed fine-tuning run under ``path``.

    Parameters
    ----------
    path
        A ``<sweep>-finetune`` directory (or any directory above its records).
    params
        Parameter convention of the ``params`` column: ``nonembed``, ``matmul``, ``total``.

    Returns
    -------
    pandas.DataFrame
        ``run, source_run, family, d_model, n_layers, params, params_*, pretrain_loss,
        pretrain_tokens, pretrain_flops, task, n_classes, chance_accuracy, test_accuracy,
        test_error, test_loss, majority_accuracy, bag_of_tokens_accuracy (the task's
        baselines on the same test split, NaN in older records), val_accuracy, step,
        best_step, stopped_early, seed, path``, sorted by size.
    """
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")
    rows = []
    for directory, r in _records(path, "finetune"):
        task = r.get("task") or {}
        base = r.get("baselines") or {}  # absent in records written before baselines were
        rows.append(
            {
                "run": r["run_id"],
                **_source_columns(r, params),
                "task": task.get("name"),
                "setting": r.get("setting", "-"),
                "n_classes": task.get("n_classes"),
                "chance_accuracy": task.get("chance_accuracy"),
                "test_accuracy": r.get("test_accuracy"),
                "test_error": 1.0 - r["test_accuracy"],
                "test_loss": r.get("test_loss"),
                "majority_accuracy": base.get("majority_test_accuracy", math.nan),
                "bag_of_tokens_accuracy": base.get("bag_of_tokens_test_accuracy", math.nan),
                "val_accuracy": r.get("val_accuracy"),
                "step": r.get("step"),
                "best_step": r.get("best_step"),
                "stopped_early": r.get("stopped_early"),
                "seed": r.get("seed"),
                "path": str(directory),
            }
        )
    df = pd.DataFrame(rows)
    if df["task"].nunique() > 1:
        warnings.warn(
            f"{path}: records of {df['task'].nunique()} tasks ({', '.join(df['task'].unique())}): "
            "fits pool them; filter by task to fit one",
            DataWarning,
            stacklevel=2,
        )
    return df.sort_values(["params", "run"], ignore_index=True)


# What the schemes of records written before ``scheme`` existed were: the old ``method``
# -> (scheme, weight bits, activation bits). int8_weight was per-channel round-to-nearest
# (group_size null) and int8_dynamic torch's dynamic quantization (int8 activations).
_OLD_METHODS: dict[str, tuple[str, float | None, float | None]] = {
    "none": ("none", 32, None),
    "int8_weight": ("rtn", 8, None),
    "int8_dynamic": ("w8a8", 8, 8),
    "prune": ("prune", 32, None),
}


def _number(value: Any) -> float:
    """A record's number, NaN where it is absent (null or missing)."""
    return math.nan if value is None else float(value)


def _scheme_columns(v: dict[str, Any]) -> dict[str, Any]:
    """``scheme, bits, group_size, activation_bits`` of a variant, new record or old."""
    method = v.get("method")
    old = _OLD_METHODS.get(method or "", (method, None, None))
    scheme = v.get("scheme") or old[0]
    bits = v.get("bits", old[1])
    if bits is None and scheme in ("none", "prune", "2:4"):
        bits = 32  # pruning keeps float weights
    return {
        "scheme": scheme,
        "bits": _number(bits),
        "group_size": _number(v.get("group_size")),
        "activation_bits": _number(v.get("activation_bits", old[2])),
    }


def _batch_columns(v: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """``tokens_per_s_batch_<B>`` and ``speedup_batch_<B>`` for every batch key recorded.

    A record with throughput but no ``speedup`` gets it from the baseline's throughput.
    """
    out: dict[str, float] = {}
    throughput = v.get("throughput") or {}
    speedup = v.get("speedup") or {}
    base_throughput = base.get("throughput") or {}
    for key in sorted(set(throughput) | set(speedup)):
        tps = _number(throughput.get(key))
        ratio = speedup.get(key)
        if ratio is None and base_throughput.get(key):
            ratio = tps / float(base_throughput[key])
        out[f"tokens_per_s_{key}"] = tps
        out[f"speedup_{key}"] = _number(ratio)
    return out


def _batch_order(column: str) -> tuple[bool, float, str]:
    """Throughput before speedup, then by batch size (a key that is no number last)."""
    size = column.rsplit("_", 1)[1]
    return (not column.startswith("tokens"), float(size) if size.isdigit() else math.inf, column)


def load_compress(path: str | Path, params: str = "nonembed") -> pd.DataFrame:
    """One row per (source model, variant) of the completed compression runs under ``path``.

    Parameters
    ----------
    path
        A ``<sweep>-compress`` directory (or any directory above its records).
    params
        Parameter convention of the ``params`` column: ``nonembed``, ``matmul``, ``total``.

    Returns
    -------
    pandas.DataFrame
        ``run, source_run, family, d_model, n_layers, params, params_*, pretrain_*,
        variant, method, scheme, bits, group_size, activation_bits, sparsity,
        achieved_sparsity, recover_tokens, val_loss, baseline_loss, delta_loss,
        size_bytes, baseline_bytes, compression, compressed_bytes, memory_bytes,
        compressed_memory_bytes, baseline_memory_bytes, eval_s, path``, plus
        ``tokens_per_s_batch_<B>`` and ``speedup_batch_<B>`` for every batch size ``B``
        any variant measured; ``compression`` is ``baseline_bytes / size_bytes``.
        ``scheme`` is ``none``, ``rtn``, ``w8a8``, ``fp8``, ``prune`` or ``2:4``;
        ``bits`` the weight bits (32 for float weights); ``group_size`` NaN for one
        scale per output channel. Records written before these fields existed read
        through their ``method``: ``int8_weight`` as ``rtn`` at 8 bits per channel,
        ``int8_dynamic`` as ``w8a8``, ``prune`` as ``prune``, ``none`` as ``none``
        (another method's name is taken as its scheme); what they lack is NaN
        (``recover_tokens`` 0: they had no recovery).
    """
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")
    rows = []
    for directory, r in _records(path, "compress"):
        variants = r.get("variants") or []
        base = next((v for v in variants if v.get("variant") == "baseline"), None)
        if base is None:
            raise DataError(f"{directory}/summary.json: no baseline variant")
        for v in variants:
            rows.append(
                {
                    "run": r["run_id"],
                    **_source_columns(r, params),
                    "variant": v["variant"],
                    "method": v.get("method", v.get("scheme")),
                    **_scheme_columns(v),
                    "sparsity": _number(v.get("sparsity", 0.0)),
                    "achieved_sparsity": _number(v.get("achieved_sparsity")),
                    "recover_tokens": int(v.get("recover_tokens") or 0),
                    "val_loss": v["val_loss"],
                    "baseline_loss": base["val_loss"],
                    "delta_loss": v["val_loss"] - base["val_loss"],
                    "size_bytes": v["size_bytes"],
                    "baseline_bytes": base["size_bytes"],
                    "compression": base["size_bytes"] / v["size_bytes"],
                    "compressed_bytes": v.get("compressed_bytes"),
                    "memory_bytes": _number(v.get("memory_bytes")),
                    "compressed_memory_bytes": _number(v.get("compressed_memory_bytes")),
                    "baseline_memory_bytes": _number(base.get("memory_bytes")),
                    "eval_s": _number(v.get("eval_s")),
                    **_batch_columns(v, base),
                    "path": str(directory),
                }
            )
    df = pd.DataFrame(rows)
    # batch columns last, in order of batch size, so that tables read left to right
    batch = sorted(
        (c for c in df.columns if c.startswith(("tokens_per_s_batch_", "speedup_batch_"))),
        key=_batch_order,
    )
    df = df[[c for c in df.columns if c not in batch] + batch]
    return df.sort_values(["params", "run"], kind="stable", ignore_index=True)
