"""Post-training quantization of a model's block linears, through torchao.

Every scheme here is torchao's (``torchao.quantization.quantize_``), which runs on CPU
and GPU; what is written by hand is only what it does not offer: turning GPT-2's
``Conv1D`` layers into ``nn.Linear`` so it sees them, and the packed file format of
sub-byte weights (:func:`storage`). Rounding is to nearest and symmetric (one scale per
output channel, or per group of ``group_size`` inputs, zero point 0), as in the
post-training quantization of Kumar et al. (2024, "Scaling Laws for Precision").

Schemes
    ``rtn``
        Weight-only integers at ``bits`` = 8, 4 or 3, activations in float:
        ``IntxWeightOnlyConfig`` (``Int8WeightOnlyConfig`` at 8 bits per channel, whose
        CPU kernel multiplies int8 weights directly). torchao's CPU layout keeps a 4- or
        3-bit value in one byte, so in memory they take as much as int8; on disk they
        are packed.
    ``w8a8``
        int8 weights and int8 activations, quantized per token on the fly, int8 matmuls
        (``Int8DynamicActivationInt8WeightConfig``): on x86 CPUs with VNNI or AMX-INT8
        and on GPUs, the one scheme here whose arithmetic is integer.
    ``fp8``
        float8 e4m3 weights with one scale per output channel (``Float8WeightOnlyConfig``),
        computed in float: the storage of fp8 training stacks, where torch has the dtype.

The embeddings, norms and LM head stay in float in every scheme, so the variants differ
only where they say they do.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from scaling.compress.measure import block_linears, pack_bits

SCHEMES = ("rtn", "w8a8", "fp8")


@dataclass(frozen=True)
class Quantization:
    """One quantization variant: its scheme, weight bits and group size (its identity).

    Attributes
    ----------
    scheme : str
        One of :data:`SCHEMES`.
    bits : int
        Weight bits (8 for ``w8a8`` and ``fp8``).
    group_size : int or None
        Inputs sharing one scale; None: one scale per output channel.
    """

    scheme: str
    bits: int = 8
    group_size: int | None = None

    @property
    def name(self) -> str:
        """The variant's name in a record: ``rtn_w4_g64``, ``rtn_w8``, ``w8a8``, ``fp8``."""
        if self.scheme != "rtn":
            return self.scheme
        return f"rtn_w{self.bits}" + (f"_g{self.group_size}" if self.group_size else "")

    def fields(self) -> dict[str, Any]:
        """The identity fields of the variant's row (docs/run-record.md)."""
        return {
            "scheme": self.scheme,
            "bits": self.bits,
            "group_size": self.group_size,
            "activation_bits": 8 if self.scheme == "w8a8" else None,
        }

    def unfit(self, model: torch.nn.Module) -> str | None:
        """Why this variant cannot be made for ``model``, or None."""
        if self.group_size:
            widths = sorted({_in_features(m) for m in block_linears(model).values()})
            bad = [w for w in widths if w % self.group_size or w <= self.group_size]
            if bad:
                return (
                    f"group size {self.group_size} does not divide (or equals) the input "
                    f"width {bad[0]} of some layers: use a smaller compress.group_sizes"
                )
        if self.scheme == "fp8" and not hasattr(torch, "float8_e4m3fn"):
            return "this torch has no float8_e4m3fn dtype"
        return None


def _in_features(m: torch.nn.Module) -> int:
    return m.in_features if isinstance(m, torch.nn.Linear) else m.weight.shape[0]


class _EnumRegistration(logging.Filter):
    """Drops torch's notice that torchao registers its enums the deprecated way: logged
    once per enum, whenever a torchao module is first imported (transformers imports
    some of them lazily), and nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is an Enum subclass and is now natively supported" not in record.getMessage()


logging.getLogger("torch.utils._pytree").addFilter(_EnumRegistration())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torchao logs a warning per CUDA extension it cannot load on a CPU-only machine,
    # and a note on Triton's absence: neither concerns the CPU path
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def torchao_missing() -> str | None:
    """Why torchao cannot be used here, or None."""
    try:
        with _quiet():
            import torchao.quantization  # noqa: F401
    except Exception as e:  # ImportError, or a build that does not match this torch
        return f"torchao is not usable ({type(e).__name__}: {e}); pip install torchao"
    return None


def as_linears(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every block ``Conv1D`` (GPT-2) replaced by the equal ``nn.Linear``.

    ``Conv1D`` stores its weight as (in, out); the linear gets it transposed, so the
    outputs are the same and quantization sees output channels along dimension 0.
    """
    from transformers.pytorch_utils import Conv1D

    for name, m in list(block_linears(model).items()):
        if not isinstance(m, Conv1D):
            continue
        n_in, n_out = m.weight.shape
        linear = torch.nn.Linear(n_in, n_out, bias=m.bias is not None)
        linear = linear.to(device=m.weight.device, dtype=m.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(m.weight.t())
            if m.bias is not None:
                linear.bias.copy_(m.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, linear)
    return model


def _config(q: Quantization) -> Any:
    from torchao.quantization import (
        Float8WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerAxis, PerGroup

    if q.scheme == "w8a8":
        return Int8DynamicActivationInt8WeightConfig()
    if q.scheme == "fp8":
        return Float8WeightOnlyConfig()
    if q.bits == 8 and not q.group_size:
        return Int8WeightOnlyConfig()
    granularity = PerGroup(q.group_size) if q.group_size else PerAxis(0)
    dtype = {8: torch.int8, 4: torch.int4, 3: torch.int3, 2: torch.int2}[q.bits]
    return IntxWeightOnlyConfig(weight_dtype=dtype, granularity=granularity)


def quantize(model: torch.nn.Module, q: Quantization) -> torch.nn.Module:
    """A quantized copy of ``model``: its block linears quantized as ``q`` says."""
    from torchao.quantization import quantize_

    model = as_linears(copy.deepcopy(model))
    names = set(block_linears(model))
    with _quiet():
        quantize_(model, _config(q), filter_fn=lambda m, fqn: fqn in names)
    return model


def storage(model: torch.nn.Module, q: Quantization) -> tuple[dict[str, torch.Tensor], dict]:
    """What a file of the quantized ``model`` holds, and the compressed layers' part of it.

    The quantized weights' own tensors (values, scales), with 4- and 3-bit values packed
    ``bits`` to the value and zero points left out (they are 0: the rounding is
    symmetric); every other tensor as it is.

    Returns
    -------
    state : dict
        Name -> tensor, for :func:`scaling.compress.measure.serialized_bytes`.
    layers : dict
        The entries of ``state`` that belong to the compressed layers.
    """
    layers = block_linears(model)
    state, part = {}, {}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in layers and leaf == "weight":
            names, _ = value.__tensor_flatten__()
            for inner in names:
                t = getattr(value, inner)
                if inner == "zero_point":
                    if t.abs().max() > 0:
                        raise ValueError(f"{key}: a nonzero zero point in symmetric rounding")
                    continue
                if inner == "qdata" and q.scheme == "rtn" and q.bits < 8:
                    t = pack_bits(t.cpu(), q.bits)
                state[f"{key}.{inner}"] = part[f"{key}.{inner}"] = t
        else:
            state[key] = value
            if owner in layers:
                part[key] = value  # a compressed layer's bias
    return state, part
