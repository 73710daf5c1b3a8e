"""The compression job: every variant of every model of a finished sweep, one record each.

    scaling-train -m experiment=compress source=results/demo

For each completed source run with saved weights (see :mod:`scaling.sources`), every
variant the ``compress`` config asks for is made, evaluated on the source's own
validation batches -- the same windows, batch shape and loss as its pretraining
evaluations, so the baseline reproduces the run's ``final_val_loss`` -- and measured:
its bytes on disk and in memory, whole and of the compressed layers, and its forward
throughput against the float model's (:mod:`scaling.compress.measure`). The record of a
source model lists its variants, each with its scheme, bits, group size, sparsity and
recovery in its row: the variant's identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from scaling import results
from scaling.compress import measure, quantize, sparsity
from scaling.compress.quantize import Quantization
from scaling.data import DataSpec, prepare, sample_train_batch, val_batches
from scaling.finetune import quiet_transformers
from scaling.hardware import pick_device
from scaling.provenance import launcher_info, versions
from scaling.sources import SourceRun, find_sources
from scaling.train import evaluate

# recovery batches are drawn from a stream apart from the pretraining runs' (their seeds
# are small integers), so a recovery does not replay the run's first batches in order
RECOVERY_SEED = 10_000


def record_config(cfg: Mapping[str, Any], source: SourceRun) -> dict[str, Any]:
    """The config of one compression run: its identity, stored as ``config.yaml``."""
    return {
        "job": "compress",
        "sweep": cfg["sweep"],
        "source_run": source.identity(),
        "compress": dict(cfg["compress"]),
    }


def load_lm(model_dir: str | Path) -> torch.nn.Module:
    """The saved causal LM of a run, fp32, in eval mode."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, attn_implementation="sdpa", dtype=torch.float32
        )
    return model.eval()


def quantizations(ccfg: Mapping[str, Any]) -> list[Quantization]:
    """The quantization variants ``ccfg`` asks for, in record order."""
    out = [
        Quantization("rtn", int(bits), group)
        for bits in ccfg.get("bits") or []
        for group in ccfg.get("group_sizes") or [None]
    ]
    if ccfg.get("w8a8"):
        out.append(Quantization("w8a8"))
    if ccfg.get("fp8"):
        out.append(Quantization("fp8"))
    return out


SHAPE_KEYS = ("family", "n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "context")


def timed_runs(sources: list[SourceRun]) -> set[str]:
    """The ids of the runs whose throughput is timed: one per model shape.

    Speed depends on the shape of a model, not on what it learnt: timing every budget of
    a size again would cost minutes and say nothing new. The run of each shape with the
    most tokens (then the lowest id) is timed; the others' rows carry no throughput.
    """
    best: dict[tuple, SourceRun] = {}
    for s in sources:
        shape = tuple(s.summary.get(k) for k in SHAPE_KEYS)
        rank = (-(s.summary.get("tokens") or 0), s.run_id)
        held = best.get(shape)
        if held is None or rank < (-(held.summary.get("tokens") or 0), held.run_id):
            best[shape] = s
    return {s.run_id for s in best.values()}


def _recovery_batches(
    source: SourceRun, train_tokens: Any, seed: int
) -> tuple[Callable[[int], tuple[torch.Tensor, torch.Tensor]], int]:
    """The source's pretraining batch shape over its training split: ``step -> (x, y)``."""
    optim = source.summary.get("optim") or {}
    context = int(source.summary["context"])
    batch = max(1, int(optim.get("batch_tokens", 8 * context)) // context)
    unique = (source.config.get("data") or {}).get("unique_tokens")

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_train_batch(train_tokens, batch, context, seed, step, unique_tokens=unique)
        return torch.from_numpy(x), torch.from_numpy(y)

    return batches, batch * context


def execute(config: Mapping[str, Any], source: SourceRun, out: Path) -> dict[str, Any]:
    """Make and measure every variant of ``source``'s model; write and return the summary."""
    t0 = time.perf_counter()
    ccfg = config["compress"]
    if ccfg.get("threads"):
        torch.set_num_threads(int(ccfg["threads"]))
    device = pick_device(ccfg["device"])

    # the source's validation batches, exactly as its training loop drew them
    tcfg = source.config["train"]
    data = prepare(DataSpec.from_config(source.config["data"]))
    context = int(source.summary["context"])
    val = val_batches(data.val, tcfg["eval_batches"], tcfg["micro_batch"], context, seed=0)
    val = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in val]
    qs = quantizations(ccfg)
    # imported before transformers can import it (loading a model may): quietly, once
    missing = quantize.torchao_missing() if qs else None
    base = load_lm(source.model_dir).to(device)
    peers = find_sources(source.dir.parent)[0]
    timed = bool(ccfg.get("throughput_batches")) and source.run_id in timed_runs(peers or [source])

    summary: dict[str, Any] = {
        "run_id": out.name,
        "sweep": config["sweep"],
        "job": "compress",
        "status": "running",
        **source.record_fields(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "git_sha": results.git_sha(),
        "launcher": launcher_info(),
        "variants": [],
        "notes": [],
    }
    if not timed and ccfg.get("throughput_batches"):
        summary["notes"].append(
            "throughput timed on the run of this shape with the most tokens, not this one"
        )
    results.write_summary(out, summary)
    metrics = results.MetricsLog(out / "metrics.jsonl")

    def speed(model: torch.nn.Module) -> dict[str, float]:
        if not timed:
            return {}
        return {
            f"batch_{b}": measure.throughput(
                model,
                int(b),
                context,
                int(source.summary["vocab_size"]),
                device,
                min_seconds=float(ccfg.get("throughput_seconds", 0.25)),
            )  # fmt: skip
            for b in ccfg["throughput_batches"]
        }

    def record(name: str, model, state, part, **fields) -> None:
        t = time.perf_counter()
        loss = evaluate(model, val, device, "fp32")
        first = summary["variants"][0] if summary["variants"] else None
        tokens_per_s = speed(model)
        row = {
            "variant": name,
            **fields,
            "val_loss": loss,
            "delta_loss": loss - (first["val_loss"] if first else loss),
            "size_bytes": measure.serialized_bytes(state),
            "compressed_bytes": measure.memory_bytes(part.values()),
            "memory_bytes": measure.model_memory_bytes(model),
            "compressed_memory_bytes": measure.layers_memory_bytes(model),
        }
        if tokens_per_s:
            row["throughput"] = tokens_per_s
            base_speed = (first or row).get("throughput", tokens_per_s)
            row["speedup"] = {k: v / base_speed[k] for k, v in tokens_per_s.items()}
        row["eval_s"] = round(time.perf_counter() - t, 3)
        metrics.append(row)
        summary["variants"].append(row)
        results.write_summary(out, summary)
        slow = [k.removeprefix("batch_") for k, v in row.get("speedup", {}).items() if v < 1]
        slower = f"  (slower than float at batch {', '.join(slow)})" if slow else ""
        print(
            f"[{out.name}] {name:>16}: val loss {loss:.4f}, {row['size_bytes']:,} bytes{slower}",
            flush=True,
        )

    layers = measure.block_linears(base)
    dense = {f"{n}.{k}": v for n, m in layers.items() for k, v in m.state_dict().items()}
    record("baseline", base, base.state_dict(), dense,
           scheme="none", bits=32, group_size=None, activation_bits=None)  # fmt: skip

    if missing:
        summary["notes"].append(f"quantization skipped: {missing}")
        qs = []
    for q in qs:
        why = q.unfit(base)
        if why:
            summary["notes"].append(f"{q.name} skipped: {why}")
            continue
        model = quantize.quantize(base, q)
        record(q.name, model, *quantize.storage(model, q), **q.fields())
        del model

    patterns: list[tuple[str, float, dict[str, torch.Tensor]]] = []
    for s in ccfg.get("sparsities") or []:
        patterns.append((f"prune{float(s):g}", float(s), sparsity.magnitude_masks(base, float(s))))
    if ccfg.get("two_four"):
        try:
            patterns.append(("2:4", 0.5, sparsity.two_four_masks(base)))
        except ValueError as e:
            summary["notes"].append(f"2:4 skipped: {e}")
    recover_tokens = int(ccfg.get("recover_tokens") or 0)
    seed = RECOVERY_SEED + int(ccfg.get("seed") or 0)
    batches, step_tokens = _recovery_batches(source, data.train, seed)
    steps = recover_tokens // step_tokens
    if recover_tokens and not steps:
        summary["notes"].append(
            f"recovery skipped: recover_tokens={recover_tokens} is less than one batch "
            f"({step_tokens} tokens)"
        )
    for name, target, masks in patterns:
        scheme = "2:4" if name == "2:4" else "prune"
        pruned, achieved = sparsity.prune(base, masks)
        fields = dict(scheme=scheme, bits=32, group_size=None, activation_bits=None,
                      sparsity=target, achieved_sparsity=achieved)  # fmt: skip
        record(name, pruned, *sparsity.storage(pruned), **fields, recover_tokens=0)
        if steps:
            lr = 0.1 * float((source.summary.get("optim") or {}).get("lr") or 1e-3)
            losses = sparsity.recover(
                pruned, masks, batches, steps, lr, device, source.summary.get("optim") or {}
            )
            record(f"{name}_r{steps * step_tokens}", pruned, *sparsity.storage(pruned),
                   **fields, recover_tokens=steps * step_tokens,
                   recover_lr=lr, recover_final_train_loss=losses[-1])  # fmt: skip
        del pruned

    metrics.close()
    summary.update(
        status="completed",
        baseline_val_loss=summary["variants"][0]["val_loss"],
        wall_s=time.perf_counter() - t0,
    )
    return results.write_summary(out, summary)
