"""Analytic FLOPs against torch's FLOP counter on real forward and backward passes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from scaling.families import FAMILIES, build_model, param_counts, shape_for
from scaling.flops import flops_6nd, flops_per_token, forward_flops_per_token, training_flops

VOCAB = 256
BATCH = 2
# (d_model, context): the attention term is a large share of the small-d, long-T cases,
# so a counter that missed attention (or an analytic form without it) would fail them.
SIZES = [(64, 64), (64, 256), (128, 128), (192, 256)]


def counted_flops_per_token(model, shape, backward: bool) -> float:
    """FLOPs per token that torch's counter sees in one forward (+ backward) pass."""
    ids = torch.randint(
        0, VOCAB, (BATCH, shape.context), generator=torch.Generator().manual_seed(0)
    )
    # On CPU the counter does not see the fused SDPA kernels; the math backend runs
    # attention as plain matmuls, which it counts.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if backward:
            model(input_ids=ids, labels=ids).loss.backward()
        else:
            with torch.no_grad():
                model(input_ids=ids)
    return counter.get_total_flops() / (BATCH * shape.context)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("d_model, context", SIZES)
def test_training_flops_match_flop_counter(family, d_model, context, record_property):
    shape = shape_for(family, d_model, VOCAB, context)
    model = build_model(shape, seed=0)
    ratio = counted_flops_per_token(model, shape, backward=True) / flops_per_token(shape)
    record_property("counter_over_analytic", ratio)
    print(f"{family} d_model={d_model} context={context}: counter/analytic = {ratio:.4f}")
    assert abs(ratio - 1) <= 0.10, f"counter/analytic training FLOPs = {ratio:.4f}"


# The fused kernels a GPU runs for attention, which the CPU test above replaces by the
# math backend; the counter has a formula for each. bf16 autocast, as training runs.
CUDA_BACKENDS = [
    SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", CUDA_BACKENDS, ids=lambda b: b.name.lower())
@pytest.mark.parametrize("family", FAMILIES)
def test_training_flops_match_flop_counter_on_cuda(family, backend, record_property):
    # a long context, so that attention is a large share of the count
    shape = shape_for(family, 256, VOCAB, 2048)
    model = build_model(shape, seed=0).cuda()
    ids = torch.randint(0, VOCAB, (BATCH, shape.context), device="cuda")
    try:
        with sdpa_kernel(backend), FlopCounterMode(display=False) as counter:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
    except RuntimeError as e:  # this GPU or build has no such kernel for this shape
        pytest.skip(f"{backend.name}: {e}")
    ratio = counter.get_total_flops() / (BATCH * shape.context) / flops_per_token(shape)
    record_property("counter_over_analytic", ratio)
    print(f"{family} {backend.name}: counter/analytic = {ratio:.4f}")
    assert abs(ratio - 1) <= 0.10, f"counter/analytic training FLOPs = {ratio:.4f}"


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_flops_match_flop_counter(family, record_property):
    shape = shape_for(family, 128, VOCAB, 128)
    model = build_model(shape, seed=0)
    ratio = counted_flops_per_token(model, shape, backward=False) / forward_flops_per_token(shape)
    record_property("counter_over_analytic", ratio)
    assert abs(ratio - 1) <= 0.10, f"counter/analytic forward FLOPs = {ratio:.4f}"


@pytest.mark.parametrize("family", FAMILIES)
def test_6nd_uses_the_non_embedding_parameters(family):
    shape = shape_for(family, 128, VOCAB, 128)
    model = build_model(shape, seed=0)
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    if family == "gpt2":
        embeddings.add(id(model.transformer.wpe.weight))
    n = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    tokens = 1_000_000
    assert flops_6nd(shape, tokens) == 6 * n * tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_6nd_undercounts_less_as_models_grow(family):
    # At a fixed vocabulary and context the LM head and attention terms, which 6ND leaves
    # out, shrink relative to the weights as the model grows: the two counts converge.
    tokens = 1e9
    ratios = [
        training_flops(s, tokens) / flops_6nd(s, tokens)
        for s in (shape_for(family, d, 32000, 2048) for d in (128, 256, 512, 1024, 2048))
    ]
    assert all(r > 1 for r in ratios), ratios
    assert ratios == sorted(ratios, reverse=True), ratios


@pytest.mark.parametrize("family", FAMILIES)
def test_training_flops_scale_with_tokens(family):
    shape = shape_for(family, 256, VOCAB, 256)
    per_token = flops_per_token(shape)
    assert training_flops(shape, 0) == 0
    assert training_flops(shape, 1) == per_token
    assert math.isclose(training_flops(shape, 2.5e9), 2.5e9 * per_token)
    assert math.isclose(forward_flops_per_token(shape) * 3, per_token)
    # Attention and the LM head come on top of Kaplan's 6N.
    assert per_token > 6 * param_counts(shape)["nonembed"]


@pytest.mark.parametrize("bad", [-1, float("nan"), -1e9])
def test_negative_or_nan_tokens_rejected(bad):
    shape = shape_for("llama", 64, VOCAB, 64)
    with pytest.raises(ValueError, match="tokens"):
        training_flops(shape, bad)
    with pytest.raises(ValueError, match="tokens"):
        flops_6nd(shape, bad)
