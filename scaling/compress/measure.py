"""What a compressed model costs and buys: its bytes on disk and in memory, its speed.

Bytes are counted two ways because they differ. *On disk* is the length of
``torch.save`` of what a file must hold to rebuild the variant -- 4- and 3-bit values
packed (:func:`pack_bits`), masks as bits. *In memory* is what the model holds while it
runs, counted from the tensors themselves (a quantized weight is a tensor subclass; its
inner tensors are counted); a runtime that keeps 4-bit values one per byte shows it
here, not on disk.

Speed is forward-pass throughput, tokens per second at a given batch size, timed after a
warm-up until a minimum time has passed; every variant of a model is timed in the same
process, right after the float model, so their ratios are side by side.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch


def block_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The linear layers of the transformer blocks, by name (not the LM head).

    HF's GPT-2 uses ``Conv1D`` (a linear layer with its weight transposed); those count
    too (:func:`scaling.compress.quantize.as_linears` turns them into ``nn.Linear``).
    """
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear | Conv1D) and m is not head
    }


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds; for a tensor subclass (a quantized weight), its inner tensors."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def memory_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of ``tensors`` in memory, each tensor once (tied weights are one tensor)."""
    seen, total = set(), 0
    for t in tensors:
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += tensor_bytes(t)
    return total


def model_memory_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model``."""
    return memory_bytes([*model.parameters(), *model.buffers()])


def layers_memory_bytes(model: torch.nn.Module) -> int:
    """Bytes of the compressed layers (the block linears' weights and biases)."""
    return memory_bytes(
        t
        for m in block_linears(model).values()
        for t in (m.weight, getattr(m, "bias", None))
        if t is not None
    )


def serialized_bytes(state: Mapping[str, Any]) -> int:
    """Bytes of ``torch.save(state)``: what the file would take on disk."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getbuffer().nbytes


def pack_bits(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack signed ``bits``-bit integers (``int8`` holding values in
    [-2^(bits-1), 2^(bits-1) - 1]) into ``ceil(numel * bits / 8)`` bytes.

    The storage a file needs for sub-byte weights; :func:`unpack_bits` reverses it.
    """
    offset = 1 << (bits - 1)
    u = (q.flatten().to(torch.int16) + offset).to(torch.uint8).numpy()
    # each value's low `bits` bits, most significant first, then 8 to a byte
    planes = np.unpackbits(u[:, None], axis=1)[:, 8 - bits :]
    return torch.from_numpy(np.packbits(planes.flatten()))


def unpack_bits(packed: torch.Tensor, bits: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The ``int8`` tensor of ``shape`` that :func:`pack_bits` packed."""
    n = int(np.prod(shape))
    planes = np.unpackbits(packed.numpy())[: n * bits].reshape(n, bits)
    u = np.packbits(np.pad(planes, ((0, 0), (8 - bits, 0))), axis=1)[:, 0]
    values = torch.from_numpy(u.astype(np.int16) - (1 << (bits - 1)))
    return values.to(torch.int8).reshape(shape)


def throughput(
    model: torch.nn.Module,
    batch: int,
    context: int,
    vocab_size: int,
    device: torch.device,
    *,
    min_seconds: float = 0.25,
    seed: int = 0,
) -> float:
    """Forward-pass tokens per second at ``batch`` sequences of ``context`` tokens.

    Two warm-up passes (kernel selection, caches), then passes until ``min_seconds``
    have elapsed (at least three); the rate is tokens over the time of those passes.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (batch, context), generator=g).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.eval()
    with torch.no_grad():
        for _ in range(2):
            model(input_ids=x)
        sync()
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < min_seconds:
            model(input_ids=x)
            n += 1
        sync()
        elapsed = time.perf_counter() - t0
    return n * batch * context / elapsed
