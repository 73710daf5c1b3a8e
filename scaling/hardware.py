"""Device, precision and the optimiser, each chosen by what the hardware offers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import numpy as np
import torch

# Dense peak FLOP/s used for MFU, by device. A stated number, not a measurement: the
# CPU figure is fp32 on two AVX-512 cores; set `train.peak_flops` for your hardware.
PEAK_FLOPS = {
    ("cuda", "bf16"): 989e12,  # H100/H200 SXM dense bf16
    ("cuda", "fp32"): 67e12,
    ("cpu", "bf16"): 400e9,
    ("cpu", "fp32"): 180e9,
}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    # oneDNN runs bf16 matmuls natively on CPUs with AVX-512 BF16 or AMX (about 2.4x the
    # fp32 rate on a Zen 4 core); elsewhere it emulates them, slower than fp32
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# Narrower models train faster in fp32 even where a CPU multiplies bf16 natively: their
# matmuls are too small for bf16's rate to pay for autocast's casts. Measured on a
# 2-core Xeon with AMX (benchmarks/cpu_precision.py; training step, bf16 time / fp32
# time): d_model 32: 2.0, 64: 1.5, 96: 1.5, 128: 1.04, 256: 0.71 with 1,024-token
# micro-batches; 64: 1.16, 96: 0.98, 128: 0.71, 256: 0.61 with 4,096. Every CPU-sized
# sweep of sweeps/experiment (smoke, the demos) lies below the threshold, so it computes
# in fp32 on every CPU, and every GPU-sized one (ladder, isoflop) above it.
CPU_BF16_MIN_D_MODEL = 128


def pick_dtype(name: str, device: torch.device, d_model: int) -> str:
    """The precision a run computes in: ``train.dtype``, with ``auto`` resolved.

    ``auto`` is bf16 autocast (fp32 master weights) wherever the hardware runs bf16
    natively and it pays: every recent GPU, and CPUs with AVX-512 BF16 or AMX for
    models of ``d_model`` >= :data:`CPU_BF16_MIN_D_MODEL`; fp32 everywhere else.
    """
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        wide = d_model >= CPU_BF16_MIN_D_MODEL
        return "bf16" if device.type == "cpu" and wide and cpu_has_fast_bf16() else "fp32"
    if name not in ("bf16", "fp32"):
        raise ValueError(f"train.dtype must be auto, bf16 or fp32, got {name!r}")
    return name


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``, copied without making the host wait.

    A copy from pageable memory to a GPU returns only once the GPU has run every kernel
    queued before it, so the host could not queue the next micro-batch's kernels while
    the GPU still works on this one; a copy from pinned memory is queued like a kernel.
    """
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def make_optimizer(model: torch.nn.Module, plan: Mapping, optim: Mapping, device: torch.device):
    # no weight decay on norms and biases (1-D tensors), as in GPT-2/Llama training
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": optim["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # the fused kernel updates every tensor in one pass: on GPUs one launch instead of
    # hundreds, on CPUs several times faster than the per-tensor loop (benchmarks/)
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        groups, lr=plan["lr"], betas=tuple(plan["betas"]), eps=optim["eps"], fused=fused
    )
