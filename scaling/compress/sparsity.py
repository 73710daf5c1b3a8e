"""Pruning a model's block linears, and the short fine-tune that lets it recover.

Patterns
    ``prune`` (unstructured)
        Per layer, the fraction ``s`` of its weights smallest in absolute value set to
        zero (Han et al. 2015's magnitude pruning).
    ``2:4`` (semi-structured)
        In every run of four consecutive weights along the input dimension, the two
        smallest in magnitude set to zero: sparsity 0.5 in the pattern that NVIDIA's
        sparse tensor cores (Ampere and later) multiply at up to twice the dense rate
        (Mishra et al. 2021). On CPU it runs as a dense matmul with zeros: no faster.

Written by hand: magnitude pruning is a few lines, and torchao's 2:4 sparsity
(``sparsify_``) is for CUDA only. Pruned weights are stored as a bit mask of the kept
weights plus their values.

Recovery (``recover_tokens`` > 0): the pruned model trains for that many tokens on its
own pretraining data with AdamW, the pruned weights held at zero (their gradients
masked and the mask re-applied after every step), at a rate that starts at a tenth of
the source's peak and falls linearly to zero: a short continuation, not a new run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.compress.measure import block_linears


def magnitude_masks(model: torch.nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Per block linear, the boolean mask of the weights unstructured pruning keeps."""
    masks = {}
    for name, m in block_linears(model).items():
        w = m.weight.detach()
        k = int(round(sparsity * w.numel()))
        keep = torch.ones_like(w, dtype=torch.bool)
        if k > 0:
            # the k-th smallest magnitude is the threshold; ties at it are pruned too
            threshold = w.abs().flatten().kthvalue(k).values
            keep = w.abs() > threshold
        masks[name] = keep
    return masks


def two_four_masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Per block linear, the 2:4 mask: the two largest of every four inputs kept.

    Raises
    ------
    ValueError
        When a layer's input width is not a multiple of 4.
    """
    from transformers.pytorch_utils import Conv1D

    masks = {}
    for name, m in block_linears(model).items():
        # groups run along the inputs: dim 1 of nn.Linear's (out, in), dim 0 of Conv1D's
        w = m.weight.detach()
        w = w.t() if isinstance(m, Conv1D) else w
        if w.shape[1] % 4:
            raise ValueError(f"{name}: input width {w.shape[1]} is not a multiple of 4")
        groups = w.abs().reshape(w.shape[0], -1, 4)
        top = groups.topk(2, dim=-1).indices
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
        keep = keep.reshape(w.shape)
        masks[name] = keep.t() if isinstance(m, Conv1D) else keep
    return masks


def apply_masks(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the weights that ``masks`` do not keep, in place."""
    layers = block_linears(model)
    with torch.no_grad():
        for name, keep in masks.items():
            layers[name].weight.masked_fill_(~keep.to(layers[name].weight.device), 0.0)


def prune(
    model: torch.nn.Module, masks: Mapping[str, torch.Tensor]
) -> tuple[torch.nn.Module, float]:
    """A copy of ``model`` pruned by ``masks``, and the fraction of those layers' weights
    that are zero afterwards."""
    model = copy.deepcopy(model)
    apply_masks(model, masks)
    layers = block_linears(model)
    zeros = sum(int((layers[n].weight == 0).sum()) for n in masks)
    total = sum(layers[n].weight.numel() for n in masks)
    return model, zeros / total


def storage(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    """What a file of the pruned ``model`` holds, and the compressed layers' part of it:
    each block linear's kept weights and the bit mask of where they were."""
    layers = block_linears(model)
    state, part = {}, {}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in layers and leaf == "weight":
            keep = value != 0
            mask = torch.from_numpy(np.packbits(keep.flatten().cpu().numpy()))
            state[f"{key}.values"] = part[f"{key}.values"] = value[keep]
            state[f"{key}.mask"] = part[f"{key}.mask"] = mask
        else:
            state[key] = value
            if owner in layers:
                part[key] = value
    return state, part


def recover(
    model: torch.nn.Module,
    masks: Mapping[str, torch.Tensor],
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    lr: float,
    device: torch.device,
    optim: Mapping[str, Any],
) -> list[float]:
    """Fine-tune the pruned ``model`` in place for ``steps``, its pruned weights held at 0.

    Parameters
    ----------
    model
        Already pruned by ``masks``.
    batches
        ``step -> (x, y)``: the training batch of each step.
    steps, lr
        Optimizer steps; the starting rate, decayed linearly to 0.
    optim
        The source's optimizer settings (``betas``, ``weight_decay``, ``grad_clip``).

    Returns
    -------
    list of float
        The training loss of each step.
    """
    model.to(device).train()
    layers = block_linears(model)
    keep = {layers[n].weight: m.to(device) for n, m in masks.items()}
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=lr,
        betas=tuple(optim.get("betas", (0.9, 0.95))),
        weight_decay=float(optim.get("weight_decay", 0.0)),
    )
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - step / steps)
        x, y = batches(step)
        logits = model(input_ids=x.to(device)).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for w, m in keep.items():
            w.grad.mul_(m)  # pruned weights get no update
        if optim.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(optim["grad_clip"]))
        opt.step()
        # weight decay and Adam's moments can still move a masked weight: re-zero it
        apply_masks(model, masks)
        losses.append(loss.item())
    model.eval()
    return losses
