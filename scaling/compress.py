"""Compress every model of a finished sweep and measure what it costs; one record each.

    scaling-train -m experiment=compress source=results/demo

For each completed source run with saved weights (see :mod:`scaling.sources`), the
variants below are measured on the source's own validation batches -- the same windows,
batch shape and loss as its pretraining evaluations, so the baseline reproduces the
run's ``final_val_loss`` -- and serialized to count their bytes.

Variants (``compress`` config)
    ``baseline``
        The model as trained (fp32).
    ``int8_dynamic``
        ``torch.ao.quantization.quantize_dynamic``: int8 weights (symmetric, one scale
        per output channel) and activations quantized on the fly, int8 matmuls. CPU only
        (it is torch's CPU backend). Deprecated in recent torch; where a torch no longer
        has it, the variant is skipped with a note and ``int8_weight`` remains. It only
        knows ``nn.Linear``, so GPT-2 models (``Conv1D`` layers) skip it too.
    ``int8_weight``
        Weight-only int8, by hand: each output channel's weights become
        ``round(w / s)`` in [-127, 127] with ``s = max|w| / 127``, stored as int8 plus one
        fp32 scale per channel, and computed with in float (``s * q``). The same storage
        as ``int8_dynamic`` without its activation rounding: the two separate the cost of
        quantized weights from that of quantized activations.
    ``prune<s>``
        Unstructured magnitude pruning at sparsity ``s``, per layer: the fraction ``s`` of
        each layer's weights smallest in absolute value set to zero, nothing retrained.
        Stored as a bit mask of the kept weights plus their fp32 values.

What is compressed: the linear layers of the transformer blocks (attention and MLP
projections), which hold nearly all non-embedding parameters. Embeddings, norms and the
LM head stay fp32 in every variant, so the variants differ only where they say they do.

Sizes: ``size_bytes`` is the length of ``torch.save`` of the variant's whole state (what a
file on disk would take); ``compressed_bytes`` counts the tensor bytes of the compressed
layers alone (data, scales, masks), where the ~4x of int8 shows undiluted by the rest.
torch keeps a float64 scale and an int64 zero point per output channel of an
``int8_dynamic`` layer and serializes each packed layer with a fixed overhead of a few
hundred bytes: negligible at real widths, but for models of a few thousand parameters
its file can outgrow the fp32 one.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling import results
from scaling.data import DataSpec, prepare, val_batches
from scaling.finetune import quiet_transformers
from scaling.sources import SourceRun
from scaling.train import evaluate, launcher_info, pick_device, versions


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


def block_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The linear layers of the transformer blocks, by name (not the LM head).

    HF's GPT-2 uses ``Conv1D`` (a linear layer with its weight transposed); those count too.
    """
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear | Conv1D) and m is not head
    }


def serialized_bytes(state: Mapping[str, Any]) -> int:
    """Bytes of ``torch.save(state)``."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getbuffer().nbytes


def _tensor_bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# --------------------------------------------------------------------------------------
# The methods: each returns (model to evaluate, its serializable state, compressed bytes)


def int8_channels(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``w ≈ scale[:, None] * q``.

    Parameters
    ----------
    w : torch.Tensor
        A 2-D weight, output channels along dimension 0.

    Returns
    -------
    q : torch.Tensor
        ``int8`` in [-127, 127], the shape of ``w``.
    scale : torch.Tensor
        ``float32``, one per output channel (all-zero channels get scale 1).
    """
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax)).float()
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


def _out_major(module: torch.nn.Module) -> torch.Tensor:
    # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out)
    w = module.weight.data
    return w if isinstance(module, torch.nn.Linear) else w.t()


def _set_out_major(module: torch.nn.Module, w: torch.Tensor) -> None:
    module.weight.data.copy_(w if isinstance(module, torch.nn.Linear) else w.t())


def int8_weight(model: torch.nn.Module) -> tuple[torch.nn.Module, dict, int]:
    """Weight-only int8 (per-channel symmetric), computed in float."""
    model = copy.deepcopy(model)
    layers = block_linears(model)
    state = {k: v for k, v in model.state_dict().items()}
    compressed = 0
    for name, module in layers.items():
        q, scale = int8_channels(_out_major(module))
        _set_out_major(module, q.float() * scale[:, None])
        # what is stored: the int8 weights and their scales, not the float copy
        state[f"{name}.weight"] = q
        state[f"{name}.weight_scale"] = scale
        compressed += _tensor_bytes(q, scale)
        if getattr(module, "bias", None) is not None:
            compressed += _tensor_bytes(module.bias)
    return model, state, compressed


def int8_dynamic(model: torch.nn.Module) -> tuple[torch.nn.Module, dict, int] | str:
    """torch's dynamic int8 quantization of the block linears, or why it cannot be done."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:
        return "this torch has no torch.ao.quantization.quantize_dynamic"
    names = [n for n, m in block_linears(model).items() if isinstance(m, torch.nn.Linear)]
    if not names:
        return "quantize_dynamic only handles nn.Linear (GPT-2's layers are Conv1D)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice, once per call
        quantized = quantize_dynamic(
            copy.deepcopy(model).cpu(), {n: per_channel_dynamic_qconfig for n in names}
        )
    compressed = 0
    for name in names:
        module = quantized.get_submodule(name)
        w = module.weight()  # a quantized tensor: int8 data, per-channel scales and zeros
        compressed += _tensor_bytes(
            w.int_repr(), w.q_per_channel_scales(), w.q_per_channel_zero_points()
        )
        if module.bias() is not None:
            compressed += _tensor_bytes(module.bias())
    return quantized, quantized.state_dict(), compressed


def magnitude_prune(
    model: torch.nn.Module, sparsity: float
) -> tuple[torch.nn.Module, dict, int, float]:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights of each block linear.

    Returns
    -------
    model, state, compressed_bytes
        As the other methods; pruned weights are stored as a packed bit mask of the kept
        weights plus their values.
    achieved : float
        Fraction of the pruned layers' weights that are zero afterwards.
    """
    model = copy.deepcopy(model)
    state = {k: v for k, v in model.state_dict().items()}
    compressed, zeros, total = 0, 0, 0
    for name, module in block_linears(model).items():
        w = module.weight.data
        k = int(round(sparsity * w.numel()))
        if k > 0:
            # the k-th smallest magnitude is the threshold; ties at it are pruned too
            threshold = w.abs().flatten().kthvalue(k).values
            w.masked_fill_(w.abs() <= threshold, 0.0)
        keep = w != 0
        mask = torch.from_numpy(np.packbits(keep.flatten().cpu().numpy()))
        values = w[keep]
        state[f"{name}.weight"] = values
        state[f"{name}.weight_mask"] = mask
        compressed += _tensor_bytes(values, mask)
        if getattr(module, "bias", None) is not None:
            compressed += _tensor_bytes(module.bias)
        zeros += int((~keep).sum())
        total += w.numel()
    return model, state, compressed, zeros / total


def _dense_bytes(model: torch.nn.Module) -> int:
    compressed = 0
    for module in block_linears(model).values():
        compressed += _tensor_bytes(module.weight)
        if getattr(module, "bias", None) is not None:
            compressed += _tensor_bytes(module.bias)
    return compressed


# --------------------------------------------------------------------------------------


def execute(config: Mapping[str, Any], source: SourceRun, out: Path) -> dict[str, Any]:
    """Measure every variant of ``source``'s model; write and return the summary."""
    t0 = time.perf_counter()
    ccfg = config["compress"]
    if ccfg.get("threads"):
        torch.set_num_threads(int(ccfg["threads"]))
    device = pick_device(ccfg["device"])
    cpu = torch.device("cpu")

    # the source's validation batches, exactly as its training loop drew them
    tcfg = source.config["train"]
    data = prepare(DataSpec.from_config(source.config["data"]))
    val = val_batches(
        data.val, tcfg["eval_batches"], tcfg["micro_batch"], source.summary["context"], seed=0
    )
    val = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in val]
    base = load_lm(source.model_dir)

    summary: dict[str, Any] = {
        "run_id": out.name,
        "sweep": config["sweep"],
        "job": "compress",
        "status": "running",
        **source.record_fields(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "versions": versions(),
        "git_sha": results.git_sha(),
        "launcher": launcher_info(),
        "variants": [],
        "notes": [],
    }
    results.write_summary(out, summary)
    metrics = results.MetricsLog(out / "metrics.jsonl")

    def measure(name: str, method: str, model, state, compressed: int, on, **extra) -> None:
        t = time.perf_counter()
        loss = evaluate(model.to(on), val, on, "fp32")
        baseline = summary["variants"][0]["val_loss"] if summary["variants"] else loss
        row = {
            "variant": name,
            "method": method,
            "val_loss": loss,
            "delta_loss": loss - baseline,
            "size_bytes": serialized_bytes(state),
            "compressed_bytes": compressed,
            **extra,
            "eval_s": round(time.perf_counter() - t, 3),
        }
        metrics.append(row)
        summary["variants"].append(row)
        results.write_summary(out, summary)
        print(
            f"[{out.name}] {name:>12}: val loss {loss:.4f}, {row['size_bytes']:,} bytes",
            flush=True,
        )

    measure("baseline", "none", base, base.state_dict(), _dense_bytes(base), device)
    base = base.cpu()  # the methods below copy it
    if ccfg.get("int8_dynamic"):
        made = int8_dynamic(base)
        if isinstance(made, str):
            summary["notes"].append(f"int8_dynamic skipped: {made}")
        else:
            measure("int8_dynamic", "int8_dynamic", *made, cpu, bits=8)
    if ccfg.get("int8_weight"):
        measure("int8_weight", "int8_weight", *int8_weight(base), device, bits=8)
    for s in ccfg.get("sparsities") or []:
        model, state, compressed, achieved = magnitude_prune(base, float(s))
        measure(
            f"prune{s:g}",
            "prune",
            model,
            state,
            compressed,
            device,
            sparsity=float(s),
            achieved_sparsity=achieved,
        )
    metrics.close()
    summary.update(
        status="completed",
        baseline_val_loss=summary["variants"][0]["val_loss"],
        wall_s=time.perf_counter() - t0,
    )
    return results.write_summary(out, summary)
