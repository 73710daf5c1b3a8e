"""Model families: one size knob (``d_model``) -> a Hugging Face config -> a model.

A *family* is an architecture plus a shape rule. The rule turns the single size
knob ``d_model`` into every other dimension, so that a sweep over ``d_model`` is a
ladder of models that differ in size and in nothing else.

Families
--------
``llama``
    ``LlamaConfig``: pre-norm RMSNorm, rotary positions, SwiGLU feed-forward,
    no biases, untied LM head, full multi-head attention (no grouped KV heads).
``gpt2``
    ``GPT2Config``: pre-norm LayerNorm, learned positions, GELU feed-forward,
    biases everywhere, LM head tied to the token embedding.

The shape rule
--------------
This docstring and :func:`shape_for` are the only places the rule lives.

- **Heads.** ``head_dim = 64`` for ``d_model >= 128``, ``32`` for
  ``64 <= d_model < 128`` and ``16`` below that, so models down to ``d_model = 32`` have at
  least two heads; ``n_heads = d_model // head_dim``. ``d_model`` must be
  divisible by ``n_heads`` (any multiple of 64 is, from 64 up; so are 32 and 96).
- **Depth.** ``n_layers = clip(round(d_model / 64), 2, 16)``, rounding halves
  up. That is an aspect ratio ``d_model / n_layers`` of 64 (GPT-2 small's
  768/12) from ``d_model = 128`` to 1024; beyond it depth stays at 16 and only width
  grows, which keeps ``d_model = 2048`` near 1B parameters.
- **Feed-forward width.** ``llama``: the multiple of 32 nearest ``8/3 · d_model``
  (SwiGLU's three matrices then cost about as much as a 4x GELU MLP's two);
  ``gpt2``: ``4 · d_model``.

Any of ``n_layers``, ``n_heads``, ``d_ff`` can be given explicitly to
:func:`shape_for` to depart from the rule.

With a 32k vocabulary and 2048 context, ``d_model = 128 ... 2048`` is a ladder from
5-9M to 0.88-0.94B parameters in all (0.4M to 0.81B non-embedding); with a byte-level
vocabulary, ``d_model = 32 ... 384`` gives models from 40k to 11M parameters that
train in seconds to minutes on a CPU.

Parameter counts
----------------
:func:`param_counts` gives three conventions, in closed form (no model built):

``total``
    ``sum(p.numel())`` over the model's unique parameters (a tied head counts once).
``nonembed``
    Kaplan et al.'s N: ``total`` without the token embedding, the position
    embedding and an untied LM head.
``matmul``
    ``nonembed + vocab_size · d_model``: the LM head's matmul is real compute
    whether or not its weight is tied, so this is the N in ``6·N`` FLOPs per token.
"""

from __future__ import annotations

import functools
import importlib
import logging
import operator
from dataclasses import asdict, dataclass

import torch
import transformers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

FAMILIES: tuple[str, ...] = ("llama", "gpt2")

# Depth limits of the shape rule (see the module docstring).
_MIN_LAYERS = 2
_MAX_LAYERS = 16


@functools.cache
def import_model_code() -> None:
    """Import transformers' model code, with torchao's import-time warnings silenced.

    Loading any model class makes transformers import torchao when it is installed (it
    is, for compression), and torchao then logs five warnings that say nothing about
    the run: CUDA kernels and Triton absent from a CPU build, and an Enum registration
    torch has deprecated. Every training, fine-tuning and compression process would
    print them, once per worker. Importing the model code once, here, with those two
    loggers at ERROR keeps them out; anything torchao logs later is shown as usual.
    """
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        importlib.import_module("transformers.modeling_utils")
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _positive_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer, else raise ValueError."""
    # bool is an int subclass; `n_layers=True` is a bug, not a request for one layer.
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)  # accepts int and numpy integers, rejects 2.0
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


@dataclass(frozen=True)
class ModelShape:
    """The architecture of one model: everything needed to build it.

    Build it with :func:`shape_for` to get the family's shape rule; constructing it
    directly is fine too and is validated the same way.

    Attributes
    ----------
    family : str
        One of :data:`FAMILIES`.
    n_layers : int
        Number of transformer blocks.
    d_model : int
        Residual stream width.
    n_heads : int
        Attention heads; ``d_model // n_heads`` is the head dimension.
    d_ff : int
        Hidden width of the feed-forward block.
    vocab_size : int
        Number of token ids.
    context : int
        Maximum sequence length (the length trained on).
    """

    family: str
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab_size: int
    context: int

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(
                f"unknown family {self.family!r}; known families: {', '.join(FAMILIES)}"
            )
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "context"):
            # Normalise numpy integers etc. to int (frozen, hence object.__setattr__).
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose another d_model (any multiple of 64 works) or pass n_heads explicitly"
            )
        if self.family == "llama" and (self.d_model // self.n_heads) % 2:
            # Rotary embeddings rotate pairs of channels.
            raise ValueError(
                f"llama needs an even head dimension for rotary embeddings, got "
                f"d_model / n_heads = {self.d_model} / {self.n_heads} = {self.d_model // self.n_heads}"
            )
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def as_dict(self) -> dict:
        """The architecture fields, named as in the run record's ``summary.json``.

        Returns
        -------
        dict
            ``family, n_layers, d_model, n_heads, d_ff, vocab_size, context``.
        """
        return asdict(self)


def shape_for(
    family: str,
    d_model: int,
    vocab_size: int,
    context: int,
    n_layers: int | None = None,
    n_heads: int | None = None,
    d_ff: int | None = None,
) -> ModelShape:
    """Apply the family's shape rule to ``d_model``.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    d_model : int
        The size knob: residual stream width.
    vocab_size : int
        Number of token ids.
    context : int
        Maximum sequence length.
    n_layers, n_heads, d_ff : int, optional
        Override the rule for that dimension.

    Returns
    -------
    ModelShape

    Raises
    ------
    ValueError
        Unknown family, non-positive sizes, or ``d_model`` not divisible by the
        number of heads.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known families: {', '.join(FAMILIES)}")
    d_model = _positive_int("d_model", d_model)

    if n_heads is None:
        # 64-wide heads as in GPT-2/Llama; narrower ones for tiny models so they keep >= 2 heads.
        head_dim = 64 if d_model >= 128 else 32 if d_model >= 64 else 16
        n_heads = max(1, d_model // head_dim)
    if n_layers is None:
        n_layers = min(max((d_model + 32) // 64, _MIN_LAYERS), _MAX_LAYERS)
    if d_ff is None:
        if family == "llama":
            # 32 * round(8/3 * d_model / 32) = 32 * round(d_model / 12), halves rounded up.
            d_ff = max(32, 32 * ((d_model + 6) // 12))
        else:
            d_ff = 4 * d_model

    return ModelShape(
        family=family,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        vocab_size=vocab_size,
        context=context,
    )


def build_config(shape: ModelShape) -> transformers.PretrainedConfig:
    """The Hugging Face config for ``shape``, with all dropout off.

    Dropout is off so that a training run is a deterministic function of its seed
    (and because it hurts at the token budgets scaling studies use).
    ``use_cache`` is off because training never reuses keys and values.

    Parameters
    ----------
    shape : ModelShape

    Returns
    -------
    transformers.PretrainedConfig
        A ``LlamaConfig`` or a ``GPT2Config``.
    """
    # The special ids only matter to generate(); the default ones (e.g. GPT-2's 50256)
    # fall outside a small vocabulary, so use the last id, as GPT-2's <|endoftext|> is.
    special = shape.vocab_size - 1
    if shape.family == "llama":
        return LlamaConfig(
            vocab_size=shape.vocab_size,
            hidden_size=shape.d_model,
            intermediate_size=shape.d_ff,
            num_hidden_layers=shape.n_layers,
            num_attention_heads=shape.n_heads,
            num_key_value_heads=shape.n_heads,
            head_dim=shape.head_dim,
            max_position_embeddings=shape.context,
            hidden_act="silu",
            attention_bias=False,
            mlp_bias=False,
            attention_dropout=0.0,
            tie_word_embeddings=False,
            bos_token_id=special,
            eos_token_id=special,
            use_cache=False,
        )
    if shape.family == "gpt2":
        return GPT2Config(
            vocab_size=shape.vocab_size,
            n_positions=shape.context,
            n_embd=shape.d_model,
            n_layer=shape.n_layers,
            n_head=shape.n_heads,
            n_inner=shape.d_ff,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            summary_first_dropout=0.0,
            tie_word_embeddings=True,
            bos_token_id=special,
            eos_token_id=special,
            use_cache=False,
        )
    raise AssertionError(f"unhandled family {shape.family!r}")  # ModelShape rejects these


def build_model(shape: ModelShape, seed: int | None = None) -> torch.nn.Module:
    """Instantiate a freshly initialised model for ``shape`` (nothing is downloaded).

    The model is built on the current default device, so building under
    ``with torch.device("meta"):`` allocates no memory.

    Parameters
    ----------
    shape : ModelShape
    seed : int, optional
        Seed for the weight initialisation. With a seed the weights depend on it
        alone, and the caller's random state is left untouched; without one the
        global random state is used (and advanced).

    Returns
    -------
    torch.nn.Module
        A causal LM whose ``forward(input_ids, labels=...)`` returns ``logits`` of
        shape ``(batch, seq, vocab_size)`` and, given labels, the mean ``loss``.
    """
    config = build_config(shape)
    import_model_code()

    def make() -> torch.nn.Module:
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")

    if seed is None:
        model = make()
    else:
        # Listing the CUDA devices explicitly keeps fork_rng quiet on multi-GPU nodes.
        devices = list(range(torch.cuda.device_count()))
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model = make()

    # GPT2LMHeadModel's class name does not map to a loss, so HF falls back to the causal
    # LM loss with a logged warning, which also breaks torch.compile graphs. Name it.
    model.loss_type = "ForCausalLM"
    return model


def param_counts(shape: ModelShape) -> dict[str, int]:
    """Parameter counts of ``shape`` under each convention, in closed form.

    Parameters
    ----------
    shape : ModelShape

    Returns
    -------
    dict[str, int]
        ``total``, ``nonembed`` and ``matmul``, as defined in the module docstring.
    """
    L, d, f, V, T = shape.n_layers, shape.d_model, shape.d_ff, shape.vocab_size, shape.context
    if shape.family == "llama":
        # q, k, v, o projections (no biases) + gate, up, down + two RMSNorm gains.
        per_layer = 4 * d * d + 3 * d * f + 2 * d
        nonembed = L * per_layer + d  # + the final RMSNorm
        embeddings = V * d  # token embedding (rotary positions have no parameters)
        untied_head = V * d
    elif shape.family == "gpt2":
        # Two LayerNorms (gain + bias each), fused qkv and output projections with
        # biases, and an MLP d -> f -> d with biases.
        per_layer = 4 * d * d + 2 * d * f + 9 * d + f
        nonembed = L * per_layer + 2 * d  # + the final LayerNorm
        embeddings = V * d + T * d  # token + learned position embeddings
        untied_head = 0  # tied to the token embedding
    else:
        raise AssertionError(f"unhandled family {shape.family!r}")
    return {
        "total": nonembed + embeddings + untied_head,
        "nonembed": nonembed,
        "matmul": nonembed + V * d,
    }
