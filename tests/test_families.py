"""Model families: shape rule, closed-form parameter counts against built models, building."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from scaling.families import (
    FAMILIES,
    ModelShape,
    build_config,
    build_model,
    param_counts,
    shape_for,
)

# Small models a CPU trains: byte-level vocabulary, short context; built for real.
CPU_LADDER = (32, 64, 96, 128, 192, 256, 384)
CPU_VOCAB, CPU_CONTEXT = 256, 256
# A realistic GPU ladder up to ~1B parameters: built on the meta device (no memory).
GPU_LADDER = (128, 256, 512, 768, 1024, 1536, 2048)
GPU_VOCAB, GPU_CONTEXT = 32000, 2048

EMBEDDING_NAMES = {"wte", "wpe", "embed_tokens"}
RECORD_FIELDS = {"family", "n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "context"}


def counted_params(model: torch.nn.Module) -> dict[str, int]:
    """The three parameter conventions, counted from a built model by parameter name."""
    # named_parameters() yields a tied tensor once, under its first name (the embedding).
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    embeddings = sum(p.numel() for n, p in params.items() if n.split(".")[-2] in EMBEDDING_NAMES)
    untied_head = sum(p.numel() for n, p in params.items() if n.startswith("lm_head."))
    nonembed = total - embeddings - untied_head
    head = model.get_output_embeddings().weight.numel()
    return {"total": total, "nonembed": nonembed, "matmul": nonembed + head}


def ladder_cases():
    for family in FAMILIES:
        for d_model in CPU_LADDER:
            yield pytest.param(
                family, d_model, CPU_VOCAB, CPU_CONTEXT, "cpu", id=f"{family}-d{d_model}"
            )
        for d_model in GPU_LADDER:
            yield pytest.param(
                family, d_model, GPU_VOCAB, GPU_CONTEXT, "meta", id=f"{family}-d{d_model}-meta"
            )


@pytest.mark.parametrize("family, d_model, vocab, context, device", list(ladder_cases()))
def test_param_counts_match_built_model(family, d_model, vocab, context, device):
    shape = shape_for(family, d_model, vocab, context)
    with torch.device(device):
        model = build_model(shape, seed=0)
    assert param_counts(shape) == counted_params(model)
    if device == "cpu":
        # Deduplicating by storage gives the same total as by module attribute.
        by_storage = {p.data_ptr(): p.numel() for p in model.parameters()}
        assert sum(by_storage.values()) == param_counts(shape)["total"]


@pytest.mark.parametrize("family", FAMILIES)
def test_param_counts_with_overrides(family):
    shape = shape_for(family, 96, 300, 40, n_layers=3, n_heads=4, d_ff=100)
    assert (shape.n_layers, shape.n_heads, shape.d_ff) == (3, 4, 100)
    model = build_model(shape, seed=0)
    assert param_counts(shape) == counted_params(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_head_tying(family):
    model = build_model(shape_for(family, 64, CPU_VOCAB, 32), seed=0)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == (family == "gpt2")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "ladder, vocab, context",
    [(CPU_LADDER, CPU_VOCAB, CPU_CONTEXT), (GPU_LADDER, GPU_VOCAB, GPU_CONTEXT)],
)
def test_ladders_span_two_orders_of_magnitude(family, ladder, vocab, context):
    counts = [param_counts(shape_for(family, d, vocab, context)) for d in ladder]
    for convention in ("total", "nonembed", "matmul"):
        sizes = [c[convention] for c in counts]
        assert max(sizes) / min(sizes) >= 100, (convention, sizes)


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_ladder_tops_out_near_one_billion(family):
    total = param_counts(shape_for(family, GPU_LADDER[-1], GPU_VOCAB, GPU_CONTEXT))["total"]
    assert 0.5e9 <= total <= 1.5e9, f"d_model={GPU_LADDER[-1]} has {total:.3g} parameters"


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_rule_invariants(family):
    previous: ModelShape | None = None
    for d_model in range(32, 2049, 32):
        try:
            shape = shape_for(family, d_model, GPU_VOCAB, GPU_CONTEXT)
        except ValueError:
            assert d_model % 64, f"d_model={d_model} is a multiple of 64 and must be accepted"
            continue
        assert shape.d_model == d_model
        assert d_model % shape.n_heads == 0
        assert shape.n_heads >= 2
        assert shape.head_dim >= 16
        if d_model >= 128 and d_model % 64 == 0:
            assert shape.head_dim == 64
        assert 2 <= shape.n_layers <= 16
        if family == "llama":
            assert shape.d_ff % 32 == 0
            assert abs(shape.d_ff - 8 * d_model / 3) <= 16
        else:
            assert shape.d_ff == 4 * d_model
        if previous is not None:  # bigger d_model, never shallower, strictly more parameters
            assert shape.n_layers >= previous.n_layers
            for convention in ("total", "nonembed", "matmul"):
                assert param_counts(shape)[convention] > param_counts(previous)[convention]
        previous = shape


def test_as_dict_names_the_record_fields():
    shape = shape_for("llama", 128, CPU_VOCAB, CPU_CONTEXT)
    record = shape.as_dict()
    assert set(record) == RECORD_FIELDS
    assert all(record[k] == getattr(shape, k) for k in RECORD_FIELDS)
    assert json.loads(json.dumps(record)) == record
    assert ModelShape(**record) == shape


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_pass_gives_logits_and_loss(family):
    batch, seq = 2, 24
    shape = shape_for(family, 64, CPU_VOCAB, 32)
    model = build_model(shape, seed=0)
    ids = torch.randint(0, CPU_VOCAB, (batch, seq), generator=torch.Generator().manual_seed(0))
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (batch, seq, CPU_VOCAB)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    # Freshly initialised logits are near zero, so the loss is near uniform guessing.
    assert abs(out.loss.item() - math.log(CPU_VOCAB)) < 0.5
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_no_dropout_and_sane_config(family):
    shape = shape_for(family, 64, CPU_VOCAB, 32)
    model = build_model(shape, seed=0)
    config = model.config
    assert config.bos_token_id < CPU_VOCAB and config.eos_token_id < CPU_VOCAB
    assert model.loss_type == "ForCausalLM"
    assert config._attn_implementation == "sdpa"
    dropouts = {k: v for k, v in config.to_dict().items() if "drop" in k and isinstance(v, float)}
    assert dropouts and all(v == 0.0 for v in dropouts.values()), dropouts
    # In train mode the forward pass is still a pure function of the input.
    model.train()
    ids = torch.arange(16).reshape(1, 16)
    torch.testing.assert_close(model(ids).logits, model(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_build_config_carries_the_shape(family):
    shape = shape_for(family, 128, CPU_VOCAB, 64)
    config = build_config(shape)
    assert config.vocab_size == shape.vocab_size
    assert config.hidden_size == shape.d_model
    assert config.num_hidden_layers == shape.n_layers
    assert config.num_attention_heads == shape.n_heads
    assert config.tie_word_embeddings == (family == "gpt2")


@pytest.mark.parametrize("family", FAMILIES)
def test_build_model_is_deterministic_given_a_seed(family):
    shape = shape_for(family, 64, CPU_VOCAB, 32)
    rng_before = torch.get_rng_state()
    a = build_model(shape, seed=123).state_dict()
    torch.rand(10)  # disturb the global RNG: the seed alone must decide the weights
    b = build_model(shape, seed=123).state_dict()
    c = build_model(shape, seed=124).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert any(not torch.equal(a[n], c[n]) for n in a if a[n].is_floating_point())
    # Building with a seed leaves the caller's random stream where it was (apart from
    # the torch.rand above).
    torch.set_rng_state(rng_before)
    expected = torch.rand(3)
    torch.set_rng_state(rng_before)
    build_model(shape, seed=5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(family="bert"), "llama, gpt2"),
        (dict(d_model=0), "d_model"),
        (dict(d_model=-64), "d_model"),
        (dict(d_model=64.0), "d_model"),
        (dict(d_model=True), "d_model"),
        (dict(d_model=200), "divisible"),  # the rule gives 3 heads
        (dict(d_model=64, n_heads=3), "divisible"),
        (dict(d_model=96, n_heads=32), "even head dimension"),  # llama: RoPE needs pairs
        (dict(vocab_size=1), "vocab_size"),
        (dict(context=0), "context"),
        (dict(n_layers=0), "n_layers"),
        (dict(d_ff=-1), "d_ff"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    args = dict(family="llama", d_model=128, vocab_size=CPU_VOCAB, context=64) | kwargs
    with pytest.raises(ValueError, match=message):
        shape_for(**args)


def test_model_shape_validates_direct_construction():
    good = shape_for("gpt2", 64, CPU_VOCAB, 32).as_dict()
    with pytest.raises(ValueError, match="known families"):
        ModelShape(**(good | {"family": "mamba"}))
    with pytest.raises(ValueError, match="divisible"):
        ModelShape(**(good | {"n_heads": 5}))


def test_building_a_model_prints_no_torchao_import_warnings():
    # transformers imports torchao (installed for compression) with its model code, and
    # torchao's import logs CUDA-kernel, Triton and deprecation warnings on a CPU build
    pytest.importorskip("torchao")
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from scaling.families import build_model, shape_for\n"
        "build_model(shape_for('llama', 32, 257, 16), seed=0)\n"
        "import torchao.quantization\n"
        "assert logging.getLogger('torchao').level == logging.NOTSET\n"
        "assert logging.getLogger('torch.utils._pytree').level == logging.NOTSET\n"
        "logging.getLogger('torchao').warning('later warnings still show')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "later warnings still show" in done.stderr
    lines = [line for line in done.stderr.splitlines() if "later warnings" not in line]
    noisy = [line for line in lines if "torchao" in line or "register_constant" in line]
    assert not noisy, noisy
