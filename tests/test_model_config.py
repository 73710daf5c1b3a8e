"""Parameter counts and FLOPs per token from Hugging Face model configs."""

from __future__ import annotations

import pytest

from analysis.io.model_config import (
    Shape,
    flops_per_token,
    hf_flos_params,
    param_counts,
    shape_from_config,
)

LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 256,
    "max_position_embeddings": 128,
    "tie_word_embeddings": False,
}


def test_llama_counts_by_hand():
    shape, why = shape_from_config(LLAMA)
    assert why == "" and shape == Shape("llama", 2, 64, 4, 160, 256, 128)
    # per layer 4·64² + 3·64·160 + 2·64 = 47232; two layers + final norm 64
    assert param_counts(shape) == {
        "nonembed": 94528,
        "matmul": 94528 + 256 * 64,
        "total": 94528 + 2 * 256 * 64,
    }
    # 6 · 110912 + 12 · 2 · 128 · 64
    assert flops_per_token(shape) == 862080.0
    assert hf_flos_params(shape) == 110912  # the untied head is a Linear, counted


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_key_value_heads": 2}, "num_key_value_heads"),
        ({"tie_word_embeddings": True}, "tie_word_embeddings"),
        ({"attention_bias": True}, "attention_bias"),
        ({"hidden_size": None}, "hidden_size"),
        ({"model_type": "mistral"}, "mistral"),
    ],
)
def test_configs_we_do_not_count_say_which_field(change, field):
    shape, why = shape_from_config({**LLAMA, **change})
    assert shape is None and field in why


# Against the originals and against real models: the same arithmetic, and the truth.
SHAPES = [
    ("llama", 2, 64, 4, 160, 256, 128),
    ("llama", 3, 128, 2, 352, 1000, 64),
    ("gpt2", 2, 64, 2, 256, 256, 128),
    ("gpt2", 4, 96, 3, 384, 500, 32),
]


@pytest.mark.parametrize("dims", SHAPES)
def test_same_counts_as_scaling_families_and_flops(dims):
    pytest.importorskip("torch")
    from scaling.families import ModelShape
    from scaling.families import param_counts as scaling_counts
    from scaling.flops import flops_per_token as scaling_flops

    assert param_counts(Shape(*dims)) == scaling_counts(ModelShape(*dims))
    assert flops_per_token(Shape(*dims)) == scaling_flops(ModelShape(*dims))


@pytest.mark.parametrize("dims", SHAPES)
def test_counts_of_models_built_from_the_config_json(dims):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from scaling.families import ModelShape, build_config

    config = build_config(ModelShape(*dims))
    shape, why = shape_from_config(config.to_dict())  # what config.json holds
    assert why == ""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    counts = param_counts(shape)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    # what the Trainer's total_flos multiplies by 6·D
    assert hf_flos_params(shape) == model.num_parameters(exclude_embeddings=True)
