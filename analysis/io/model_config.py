"""Parameter counts and training FLOPs per token from a Hugging Face ``config.json``.

For the families :mod:`scaling.families` builds (``llama``, ``gpt2``) the counts are
those of :func:`scaling.families.param_counts` and the FLOPs per token those of
:func:`scaling.flops.flops_per_token`: the same closed forms, repeated here because the
``scaling`` package needs torch and omegaconf, which the analysis must not. A test
checks both against the originals and against models built from the configs.

Conventions (see :mod:`scaling.families`):

``nonembed``
    Kaplan et al.'s N: all parameters but the token and position embeddings and an
    untied LM head.
``matmul``
    ``nonembed + vocab_size · d_model``: the N of ``6 · N`` FLOPs per token.
``total``
    Every unique parameter (a tied head counts once).

FLOPs per token are ``6 · N_matmul + 12 · n_layers · context · d_model``, attention's two
weightless matmuls included. Hugging Face's ``Trainer`` counts ``total_flos`` as
``6 · N_HF · D`` with ``N_HF = model.num_parameters(exclude_embeddings=True)``, without
attention: :func:`hf_flos_params` gives that ``N_HF``, so its tokens can be recovered and
its FLOPs recounted in our convention.

A config of another architecture, or one of these two that departs from how our
families are built (grouped KV heads, biases in a llama, an untied GPT-2 head), gets
no counts: :func:`shape_from_config` says why, and the run's parameter count then has to
come from elsewhere (a mapping file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The ``model_type`` values of the families we count.
KNOWN_FAMILIES = ("llama", "gpt2")


@dataclass(frozen=True)
class Shape:
    """The dimensions that fix a model's parameter count and FLOPs per token.

    The fields are those of :class:`scaling.families.ModelShape` (``context`` is the
    config's maximum sequence length, taken as the length trained on).
    """

    family: str
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab_size: int
    context: int


def shape_from_config(config: Mapping[str, Any]) -> tuple[Shape | None, str]:
    """The shape of a Hugging Face model config of a known family.

    Parameters
    ----------
    config
        The parsed ``config.json``.

    Returns
    -------
    (Shape or None, str)
        The shape, or None with the reason it cannot be counted (the reason names the
        field); the string is empty when there is a shape.
    """
    model_type = config.get("model_type")
    if model_type == "llama":
        return _llama_shape(config)
    if model_type == "gpt2":
        return _gpt2_shape(config)
    return None, (
        f"model_type {model_type!r} is not a family whose parameters we count "
        f"({', '.join(KNOWN_FAMILIES)})"
    )


def _ints(config: Mapping[str, Any], names: tuple[str, ...]) -> tuple[list[int], str]:
    values = []
    for name in names:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return [], f"field {name!r} is {value!r}; expected a positive integer"
        values.append(value)
    return values, ""


def _llama_shape(config: Mapping[str, Any]) -> tuple[Shape | None, str]:
    names = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "max_position_embeddings",
    )
    values, problem = _ints(config, names)
    if problem:
        return None, problem
    d, f, layers, heads, vocab, context = values
    # What our llama family fixes; a config that departs has other parameters.
    kv_heads = config.get("num_key_value_heads")
    if kv_heads not in (None, heads):
        return None, (
            f"field 'num_key_value_heads' is {kv_heads} (grouped KV heads), not "
            f"num_attention_heads = {heads} as in the llama family we count"
        )
    head_dim = config.get("head_dim")
    if head_dim not in (None, d // heads) or d % heads:
        return None, f"field 'head_dim' is {head_dim}, not hidden_size / num_attention_heads"
    for flag in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
        if config.get(flag):
            return None, f"field {flag!r} is true; the llama family we count has it false"
    return Shape("llama", layers, d, heads, f, vocab, context), ""


def _gpt2_shape(config: Mapping[str, Any]) -> tuple[Shape | None, str]:
    values, problem = _ints(config, ("n_embd", "n_layer", "n_head", "vocab_size", "n_positions"))
    if problem:
        return None, problem
    d, layers, heads, vocab, context = values
    inner = config.get("n_inner")
    if inner is None:
        inner = 4 * d  # GPT2Config's default
    elif isinstance(inner, bool) or not isinstance(inner, int) or inner <= 0:
        return None, f"field 'n_inner' is {inner!r}; expected a positive integer or null"
    if config.get("tie_word_embeddings") is False:
        return None, "field 'tie_word_embeddings' is false; the gpt2 family we count ties them"
    return Shape("gpt2", layers, d, heads, inner, vocab, context), ""


def param_counts(shape: Shape) -> dict[str, int]:
    """``total``, ``nonembed`` and ``matmul`` parameter counts, as
    :func:`scaling.families.param_counts` gives them."""
    L, d, f, V, T = shape.n_layers, shape.d_model, shape.d_ff, shape.vocab_size, shape.context
    if shape.family == "llama":
        # q, k, v, o projections (no biases) + gate, up, down + two RMSNorm gains.
        per_layer = 4 * d * d + 3 * d * f + 2 * d
        nonembed = L * per_layer + d  # + the final RMSNorm
        embeddings = V * d  # rotary positions have no parameters
        untied_head = V * d
    elif shape.family == "gpt2":
        # Two LayerNorms (gain + bias), fused qkv and output projections with biases,
        # an MLP d -> f -> d with biases.
        per_layer = 4 * d * d + 2 * d * f + 9 * d + f
        nonembed = L * per_layer + 2 * d  # + the final LayerNorm
        embeddings = V * d + T * d  # token + learned position embeddings
        untied_head = 0  # tied to the token embedding
    else:
        raise ValueError(f"unknown family {shape.family!r}")
    return {
        "total": nonembed + embeddings + untied_head,
        "nonembed": nonembed,
        "matmul": nonembed + V * d,
    }


def flops_per_token(shape: Shape) -> float:
    """Training FLOPs per token, attention included, as :func:`scaling.flops.flops_per_token`:
    ``6 · N_matmul + 12 · n_layers · context · d_model``."""
    attention = 12 * shape.n_layers * shape.context * shape.d_model
    return float(6 * param_counts(shape)["matmul"] + attention)


def hf_flos_params(shape: Shape) -> int:
    """The N of Hugging Face's ``total_flos = 6 · N · D``.

    ``model.num_parameters(exclude_embeddings=True)`` leaves out the weights of
    ``nn.Embedding`` modules and counts a tied weight once: for llama (untied head) that
    is the non-embedding count plus the head, our ``matmul``; for GPT-2 (head tied to
    the token embedding, which is left out) it is the non-embedding count.
    """
    counts = param_counts(shape)
    return counts["matmul"] if shape.family == "llama" else counts["nonembed"]
