"""Per-size training rules: batch, peak learning rate, warmup and AdamW betas for one run.

A *rule set* decides, for one model size and token budget, the four things a scaling
ladder must not tune by hand at every size. It is chosen by name with ``optim.rules``:

``stated`` (the default)
    The rules stated in ``sweeps/optim/adamw.yaml``, unchanged: the peak learning rate
    by width, ``optim.lr_rule.base · (optim.lr_rule.d_base / d_model) ** exponent``; the
    batch by N, ``optim.batch_rule.base · (N / n_base) ** exponent`` clamped to
    ``[min, max]``, N in the ``train.budget_params`` convention; the warmup from
    ``optim.warmup_steps`` or ``optim.warmup_frac`` of the run; betas ``optim.betas``.
``porian``
    Porian et al. (2024), "Resolving Discrepancies in Compute-Optimal Scaling of Language
    Models" (NeurIPS 2024, arXiv:2406.19146), as OLMo-core's model ladder applies them:
    batch ``2048 · 160 · (N / 108M) ** (2/3)`` tokens (160 sequences of 2048 at 108M),
    peak rate ``0.0047 · (N / 108M) ** (-1/3)``, halved under a ``wsd`` or ``wsd_s``
    schedule, a warmup of N tokens, and β = (0.9, 0.99) for batches under 524,288 tokens,
    (0.9, 0.95) from there up (the paper: a larger β2 is essential at small batches).
``deepseek``
    DeepSeek-AI (2024), "DeepSeek LLM: Scaling Open-Source Language Models with
    Longtermism" (arXiv:2401.02954), section 3.1: from the compute budget
    ``C = M · D``, with DeepSeek's non-embedding FLOPs per token
    ``M = 72 · n_layer · d_model² + 6 · n_layer · d_model · l_seq`` and D the run's
    tokens, ``η_opt = 0.3118 · C ** -0.1250`` and ``B_opt = 0.2920 · C ** 0.3271``
    tokens. Betas (0.9, 0.95) and 2000 warmup steps, as DeepSeek trained.

What OLMo-core does (``allenai/OLMo-core``, read for this module)
    - **N is the non-embedding parameter count.** Both the older
      ``olmo_core.model_ladder.ModelLadder`` (``model_size`` is
      ``num_non_embedding_params``) and the newer ``olmo_core/model_ladder/base.py``
      (``ModelLadder.run`` passes ``model_config.num_non_embedding_params`` to the run
      configurator) feed that count to the Porian formulas; so does this module (the
      ``n_nonembed`` argument, whatever ``train.budget_params`` says).
    - **Batch rounding.** ``WSDSChinchillaRunConfigurator`` rounds the target to whole
      tokens, ``round(2048 · 160 · (N/108M) ** (2/3))``; the ladder then rounds it to a
      multiple of (device micro-batch × data-parallel size), at least one, with Python's
      ``round``. (The older ladder rounded ``160 · (N/108M) ** (2/3)`` sequences, divided
      by ``seq_len / 2048``, to a multiple of its maximum data-parallel size.) Here the
      target is rounded once to a multiple of ``batch_multiple`` tokens, at least one
      (pass micro_batch · context · world: exactly today's rounding in ``resolve_plan``).
    - **β2 follows the batch actually used**, after rounding: ``configure_optimizer``
      gets the rounded global batch and picks 0.95 when it is ``>= 524_288`` tokens, else
      0.99. Here too, and an explicit ``optim.batch_tokens`` counts as the batch.
    - **Halving.** The WSD-S configurator divides the Porian rate by 2 ("empirically a
      good value" for its WSD-S schedule); the older cosine ladders use it undivided
      (with betas fixed at (0.9, 0.95)). Here: halved for ``wsd`` and ``wsd_s``, whole
      for ``cosine``.
    - **Warmup** is N tokens (one token per parameter: ``warmup = num_params`` in the
      WSD-S configurator; ``round(N / global_batch)`` steps in the older ladder).

The DeepSeek warmup on small runs
    2000 steps can be longer than a whole CPU-sized run. The rule takes
    ``min(2000 steps, optim.warmup_frac of the run)``: when ``2000 · batch`` is at most
    ``warmup_frac · tokens`` the warmup is 2000 steps (in tokens, ``2000 · batch``);
    otherwise it is left to ``optim.warmup_frac``, exactly as the ``stated`` rules do.
    DeepSeek's η and B were fitted under its multi-step schedule and are used as they
    are under every schedule (no halving). Its ``M`` assumes a SwiGLU block with
    ``d_ff = 8/3 · d_model`` (12 d² weights per layer); it is used as the paper states
    it, for every family.

Explicit values win over every rule: ``optim.lr``, ``optim.batch_tokens``,
``optim.warmup_steps`` and ``optim.warmup_tokens``, when not null, are used as given (an
explicit ``optim.lr`` is not halved for WSD). ``optim.betas`` is read by the ``stated``
rules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

RULES: tuple[str, ...] = ("stated", "porian", "deepseek")
SCHEDULES: tuple[str, ...] = ("cosine", "wsd", "wsd_s")

# Porian et al.'s reference point: 108M non-embedding parameters train best with 160
# sequences of 2048 tokens at a peak rate of 0.0047.
PORIAN_N_REF = 108_000_000
PORIAN_BATCH_REF = 2048 * 160  # tokens
PORIAN_LR_REF = 0.0047
# OLMo-core's β2 switch, in tokens per batch.
PORIAN_BETA2_SWITCH = 524_288


@dataclass(frozen=True)
class RunSize:
    """Everything a rule may depend on, for one run.

    Attributes
    ----------
    n_params : float
        Parameters in the ``train.budget_params`` convention (``stated`` batch rule).
    n_nonembed : float
        Non-embedding parameters, Kaplan's N (``porian``: OLMo-core's convention).
    d_model, n_layers, context : int
        Width, depth and sequence length (``stated`` lr, ``deepseek`` compute).
    tokens : float
        The run's (largest) token budget, D.
    schedule : str
        One of :data:`SCHEDULES`.
    """

    n_params: float
    n_nonembed: float
    d_model: int
    n_layers: int
    context: int
    tokens: float
    schedule: str


# ----------------------------------------------------------------------------------------
# One small rule object per concern


class BatchRule(Protocol):
    def batch_tokens(self, size: RunSize) -> float:
        """The target batch in tokens, before rounding."""
        ...


class LRRule(Protocol):
    def lr(self, size: RunSize) -> float:
        """The peak learning rate."""
        ...


class WarmupRule(Protocol):
    def warmup_tokens(self, size: RunSize, batch_tokens: int) -> float | None:
        """Warmup length in tokens; None leaves it to ``optim.warmup_frac``."""
        ...


class BetasRule(Protocol):
    def betas(self, batch_tokens: int) -> tuple[float, float]:
        """AdamW (β1, β2) for a batch of ``batch_tokens`` tokens."""
        ...


@dataclass(frozen=True)
class StatedBatch:
    """``base · (N / n_base) ** exponent`` tokens, clamped to ``[min, max]``.

    The config's own rule (``optim.batch_rule``); N in the ``train.budget_params``
    convention.
    """

    base: float
    n_base: float
    exponent: float
    min: float
    max: float

    def batch_tokens(self, size: RunSize) -> float:
        batch = self.base * (size.n_params / self.n_base) ** self.exponent
        return min(max(batch, self.min), self.max)


@dataclass(frozen=True)
class StatedLR:
    """``base · (d_base / d_model) ** exponent``: wider models get smaller rates.

    The config's own rule (``optim.lr_rule``). Exponent 1 is μP's 1/width scaling of
    Adam's rate for hidden weights (Yang et al. 2022, "Tensor Programs V").
    """

    base: float
    d_base: float
    exponent: float

    def lr(self, size: RunSize) -> float:
        return self.base * (self.d_base / size.d_model) ** self.exponent


@dataclass(frozen=True)
class ConfigWarmup:
    """No rule of its own: ``optim.warmup_frac`` of the run (unless set explicitly)."""

    def warmup_tokens(self, size: RunSize, batch_tokens: int) -> float | None:
        return None


@dataclass(frozen=True)
class FixedBetas:
    """The same (β1, β2) at every size."""

    beta1: float
    beta2: float

    def betas(self, batch_tokens: int) -> tuple[float, float]:
        return (self.beta1, self.beta2)


@dataclass(frozen=True)
class PorianBatch:
    """Porian et al. (2024): ``2048 · 160 · (N / 108M) ** (2/3)`` tokens, N non-embedding.

    Their fit is in sequences of 2048 tokens; OLMo-core's WSD-S ladder states it in
    tokens, as here (the token count, not the sequence count, is what carries over to
    other context lengths).
    """

    def batch_tokens(self, size: RunSize) -> float:
        return PORIAN_BATCH_REF * (size.n_nonembed / PORIAN_N_REF) ** (2 / 3)


@dataclass(frozen=True)
class PorianLR:
    """Porian et al. (2024): ``0.0047 · (N / 108M) ** (-1/3)``, N non-embedding.

    Halved under ``wsd`` and ``wsd_s``, as OLMo-core's WSD-S ladder does.
    """

    def lr(self, size: RunSize) -> float:
        lr = PORIAN_LR_REF * (size.n_nonembed / PORIAN_N_REF) ** (-1 / 3)
        return lr / 2 if size.schedule in ("wsd", "wsd_s") else lr


@dataclass(frozen=True)
class TokensPerParamWarmup:
    """Porian et al. (2024): warm up for ``ratio · N`` tokens (1 per parameter), N non-embedding.

    Their finding: Kaplan et al.'s fixed 3000-step warmup is far too long for small
    models; warming up for as many tokens as the model has parameters fixes it.
    """

    ratio: float = 1.0

    def warmup_tokens(self, size: RunSize, batch_tokens: int) -> float | None:
        return self.ratio * size.n_nonembed


@dataclass(frozen=True)
class BatchSwitchBetas:
    """Porian et al. (2024), Table 4, as OLMo-core applies it: β2 by the batch used.

    ``(beta1, small)`` for batches under ``switch`` tokens, ``(beta1, large)`` at or
    above it.
    """

    beta1: float = 0.9
    small: float = 0.99
    large: float = 0.95
    switch: int = PORIAN_BETA2_SWITCH

    def betas(self, batch_tokens: int) -> tuple[float, float]:
        return (self.beta1, self.large if batch_tokens >= self.switch else self.small)


def deepseek_flops_per_token(n_layers: int, d_model: int, context: int) -> float:
    """DeepSeek LLM's non-embedding training FLOPs per token, ``M``.

    Parameters
    ----------
    n_layers, d_model, context : int
        ``n_layer``, ``d_model`` and ``l_seq`` of DeepSeek-AI (2024), section 3.1.

    Returns
    -------
    float
        ``72 · n_layer · d_model² + 6 · n_layer · d_model · l_seq``: the weights' matmuls
        (6 FLOPs per weight, 12 d² weights per layer) and attention, without the
        vocabulary's matmul.
    """
    return 72.0 * n_layers * d_model**2 + 6.0 * n_layers * d_model * context


def deepseek_compute(size: RunSize) -> float:
    """``C = M · D`` in FLOPs, M from :func:`deepseek_flops_per_token`, D = ``size.tokens``."""
    return deepseek_flops_per_token(size.n_layers, size.d_model, size.context) * size.tokens


@dataclass(frozen=True)
class DeepSeekBatch:
    """DeepSeek-AI (2024), eq. (1): ``B_opt = 0.2920 · C ** 0.3271`` tokens."""

    def batch_tokens(self, size: RunSize) -> float:
        return 0.2920 * deepseek_compute(size) ** 0.3271


@dataclass(frozen=True)
class DeepSeekLR:
    """DeepSeek-AI (2024), eq. (1): ``η_opt = 0.3118 · C ** -0.1250``, every schedule."""

    def lr(self, size: RunSize) -> float:
        return 0.3118 * deepseek_compute(size) ** -0.1250


@dataclass(frozen=True)
class StepsWarmup:
    """DeepSeek-AI (2024): ``steps`` warmup steps, capped at ``frac`` of the run.

    ``steps · batch`` tokens when that is at most ``frac · tokens``; otherwise None, so
    that the warmup is ``optim.warmup_frac`` of the run, computed as for ``stated``.
    """

    steps: int = 2000
    frac: float = 0.05

    def warmup_tokens(self, size: RunSize, batch_tokens: int) -> float | None:
        tokens = float(self.steps * batch_tokens)
        return tokens if tokens <= self.frac * size.tokens else None


@dataclass(frozen=True)
class RuleSet:
    """One rule per concern; ``None`` where the config lacks what a stated rule needs.

    Attributes
    ----------
    name : str
        One of :data:`RULES`.
    batch, lr, warmup, betas
        The rule objects above.
    """

    name: str
    batch: BatchRule | None
    lr: LRRule | None
    warmup: WarmupRule
    betas: BetasRule


def rule_set(optim: Mapping[str, Any]) -> RuleSet:
    """The rule set ``optim.rules`` names (``stated`` when the key is missing or null).

    Parameters
    ----------
    optim : Mapping
        The ``optim`` config section. ``stated`` reads ``lr_rule``, ``batch_rule``,
        ``betas``; ``deepseek`` reads ``warmup_frac``.

    Returns
    -------
    RuleSet

    Raises
    ------
    ValueError
        On an unknown name, in one line naming ``optim.rules`` and the valid values.
    """
    name = optim.get("rules") or "stated"
    if name not in RULES:
        raise ValueError(f"optim.rules must be one of {', '.join(RULES)}, got {name!r}")
    if name == "porian":
        return RuleSet(name, PorianBatch(), PorianLR(), TokensPerParamWarmup(), BatchSwitchBetas())
    if name == "deepseek":
        warmup = StepsWarmup(steps=2000, frac=float(optim.get("warmup_frac", 0.05)))
        return RuleSet(name, DeepSeekBatch(), DeepSeekLR(), warmup, FixedBetas(0.9, 0.95))
    batch_rule, lr_rule = optim.get("batch_rule"), optim.get("lr_rule")
    batch = lr = None
    if batch_rule:
        keys = ("base", "n_base", "exponent", "min", "max")
        batch = StatedBatch(**{k: float(batch_rule[k]) for k in keys})
    if lr_rule:
        lr = StatedLR(**{k: float(lr_rule[k]) for k in ("base", "d_base", "exponent")})
    b1, b2 = optim.get("betas", (0.9, 0.95))
    return RuleSet(name, batch, lr, ConfigWarmup(), FixedBetas(float(b1), float(b2)))


# ----------------------------------------------------------------------------------------
# What a rule set decides for one run


@dataclass(frozen=True)
class SizeRules:
    """What the rule set decided for one run, explicit values applied.

    Attributes
    ----------
    lr : float
        Peak learning rate.
    batch_tokens : int
        The batch in tokens, rounded to a multiple of ``batch_multiple`` (at least one).
    batch_target : float
        The batch before rounding: the rule's value, or ``optim.batch_tokens``.
    warmup_tokens : float or None
        Warmup length in tokens, to be turned into steps the way an explicit
        ``optim.warmup_tokens`` is (``ceil(warmup_tokens / batch_tokens)``; OLMo-core
        rounds); None: the explicit ``optim.warmup_steps`` / ``optim.warmup_tokens`` if
        set, else ``optim.warmup_frac`` of the run's steps, as without rules.
    betas : tuple of float
        AdamW (β1, β2), for ``batch_tokens``.
    source : str
        The rule set's name (``optim.rules``), for the run record.
    overrides : tuple of str
        The explicit ``optim`` keys that replaced a rule, in this order: ``batch_tokens``,
        ``lr``, ``warmup_steps``, ``warmup_tokens``.
    """

    lr: float
    batch_tokens: int
    batch_target: float
    warmup_tokens: float | None
    betas: tuple[float, float]
    source: str
    overrides: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (betas as a list), for the run record."""
        return {
            "lr": self.lr,
            "batch_tokens": self.batch_tokens,
            "batch_target": self.batch_target,
            "warmup_tokens": self.warmup_tokens,
            "betas": list(self.betas),
            "source": self.source,
            "overrides": list(self.overrides),
        }


def _explicit(optim: Mapping[str, Any], key: str) -> float | None:
    value = optim.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not float(value) > 0:
        raise ValueError(f"optim.{key} must be a positive number or null, got {value!r}")
    return float(value)


def resolve_rules(
    optim: Mapping[str, Any],
    *,
    n_params: float,
    n_nonembed: float,
    d_model: int,
    n_layers: int,
    context: int,
    tokens: float,
    schedule: str,
    batch_multiple: int = 1,
) -> SizeRules:
    """Peak learning rate, batch, warmup and betas for one run, by ``optim.rules``.

    Parameters
    ----------
    optim : Mapping
        The ``optim`` config section: ``rules`` (``stated`` when missing or null), the
        explicit ``lr``, ``batch_tokens``, ``warmup_steps``, ``warmup_tokens`` (null: use
        the rule), and
        what the ``stated`` rules read (``lr_rule``, ``batch_rule``, ``betas``) and the
        ``deepseek`` warmup cap (``warmup_frac``).
    n_params : float
        Parameters in the ``train.budget_params`` convention (the ``stated`` batch rule).
    n_nonembed : float
        Non-embedding parameters (``porian``'s N, as in OLMo-core).
    d_model, n_layers, context : int
        The model's width, depth and sequence length.
    tokens : float
        The run's (largest) token budget: DeepSeek's D, and the warmup cap.
    schedule : str
        ``cosine``, ``wsd`` or ``wsd_s`` (``porian`` halves its rate for the last two).
    batch_multiple : int
        The batch is rounded to a multiple of this many tokens, at least one multiple:
        ``micro_batch · context · world`` gives ``resolve_plan``'s rounding; 1 rounds to
        whole tokens. β2 (``porian``) and the ``deepseek`` warmup use the rounded batch.

    Returns
    -------
    SizeRules

    Raises
    ------
    ValueError
        An unknown ``optim.rules`` or schedule; a non-positive explicit value; ``stated``
        rules without ``optim.lr_rule``/``optim.batch_rule`` and no explicit value.
    """
    rules = rule_set(optim)
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if int(batch_multiple) < 1:
        raise ValueError(f"batch_multiple must be a positive integer, got {batch_multiple!r}")
    size = RunSize(
        n_params=float(n_params),
        n_nonembed=float(n_nonembed),
        d_model=int(d_model),
        n_layers=int(n_layers),
        context=int(context),
        tokens=float(tokens),
        schedule=schedule,
    )
    overrides = []

    target = _explicit(optim, "batch_tokens")
    if target is not None:
        overrides.append("batch_tokens")
    elif rules.batch is None:
        raise ValueError("optim.rules='stated' needs optim.batch_rule or optim.batch_tokens")
    else:
        target = rules.batch.batch_tokens(size)
    multiple = int(batch_multiple)
    batch_tokens = max(1, round(target / multiple)) * multiple

    lr = _explicit(optim, "lr")
    if lr is not None:
        overrides.append("lr")
    elif rules.lr is None:
        raise ValueError("optim.rules='stated' needs optim.lr_rule or optim.lr")
    else:
        lr = rules.lr.lr(size)

    explicit_warmup = [k for k in ("warmup_steps", "warmup_tokens") if optim.get(k) is not None]
    if explicit_warmup:
        overrides += explicit_warmup
        warmup_tokens = None
    else:
        warmup_tokens = rules.warmup.warmup_tokens(size, batch_tokens)

    return SizeRules(
        lr=float(lr),
        batch_tokens=int(batch_tokens),
        batch_target=float(target),
        warmup_tokens=None if warmup_tokens is None else float(warmup_tokens),
        betas=rules.betas.betas(batch_tokens),
        source=rules.name,
        overrides=tuple(overrides),
    )
