"""What one run will do, decided before it starts: its data, shape, budgets and rules.

:func:`plan_run` prepares the corpus and turns the family's one size knob into a shape;
:func:`resolve_plan` applies the per-size rules stated in the config (scaling/rules.py)
and lays out the token budgets (scaling/budgets.py). :func:`lr_at` and :func:`phase_of`
read the plan at one step. Nothing here writes to a run's directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scaling import budgets, rules, schedules
from scaling.data import DataSpec, prepare, repeated_windows
from scaling.families import param_counts, shape_for
from scaling.flops import flops_per_token


def resolve_plan(
    cfg: Mapping[str, Any],
    n_params: int,
    context: int,
    world: int = 1,
    flops_per_token: float | None = None,
    *,
    n_nonembed: int | None = None,
    n_layers: int | None = None,
) -> dict[str, Any]:
    """Token budgets, batch, learning rate and schedule for one model size.

    Parameters
    ----------
    cfg : Mapping
        The run config (``optim`` and ``train`` sections are read).
    n_params : int
        The parameter count the rules scale with (``train.budget_params`` convention).
    context : int
        Sequence length in tokens.
    world : int
        Data-parallel processes: the micro-batches of a step are shared among them, so
        their number is rounded to a multiple of it.
    flops_per_token : float, optional
        The shape's analytic training FLOPs per token; needed for ``train.flops``.
    n_nonembed, n_layers : int, optional
        Non-embedding parameters and depth, for the ``porian`` and ``deepseek`` rules
        (``optim.rules``); default: ``n_params`` and ``model.n_layers``.

    Returns
    -------
    dict
        ``tokens_target, batch_tokens, micro_batch, grad_accum, steps_total, lr, min_lr,
        betas, rules, warmup_steps, eval_every`` — stored in the record's ``optim`` and ``summary`` —
        and ``schedule, decay_frac, decay_shape, flops_target``, ``budgets`` (one
        :class:`scaling.budgets.Budget` each) and ``segments`` (what the loop trains).
    """
    optim, train = cfg["optim"], cfg["train"]
    schedule = optim.get("schedule", "cosine")
    decay_frac = float(optim.get("decay_frac", 0.2))
    decay_shape = optim.get("decay_shape", "linear")
    schedules.check(schedule, decay_shape, decay_frac)

    # tokens: several budgets from one run, a compute budget, an explicit count, or
    # tokens_per_param * N (Chinchilla's compute-optimal ratio is ~20)
    many = budgets.budget_tokens(train, n_params)
    flops_target = None
    if many is not None:
        targets, asked = many, budgets.budget_list(train)
    elif train.get("flops") is not None:
        flops_target = _positive(train["flops"], "train.flops")
        if not flops_per_token:
            raise ValueError("train.flops needs the shape's FLOPs per token")
        targets = asked = [flops_target / flops_per_token]  # made whole steps below
    else:
        tokens = train.get("tokens")
        if tokens is None:
            tokens = _positive(train["tokens_per_param"], "train.tokens_per_param") * n_params
        targets = [_positive(tokens, "train.tokens")]
        asked = [targets[0]]
    if optim.get("rules") == "deepseek" and many is not None and len(many) > 1:
        raise ValueError(
            "optim.rules=deepseek sets the rate and batch from one compute budget: use it "
            "with train.tokens or train.flops, or optim.rules=porian with several budgets"
        )

    # batch, peak rate, warmup and betas by the per-size rules (scaling/rules.py); a
    # trunk's follow from its first budget, so asking it for more budgets changes none
    micro = int(train["micro_batch"])
    sized = rules.resolve_rules(
        optim,
        n_params=n_params,
        n_nonembed=n_nonembed if n_nonembed is not None else n_params,
        d_model=cfg["model"]["d_model"],
        n_layers=n_layers or cfg["model"].get("n_layers") or 1,
        context=context,
        tokens=targets[0],
        schedule=schedule,
        batch_multiple=micro * context * world,
    )
    batch_tokens, lr = sized.batch_tokens, sized.lr
    grad_accum = batch_tokens // (micro * context)
    if flops_target is not None:
        # whole steps, as close to the asked compute as they come
        steps = max(1, round(flops_target / (flops_per_token * batch_tokens)))
        targets = [steps * batch_tokens]
    steps_total = max(1, math.ceil(targets[-1] / batch_tokens))
    if train.get("max_steps") and many is None:
        steps_total = min(steps_total, int(train["max_steps"]))

    # warmup: explicit steps or tokens, the rule's, else a share of the (first) budget;
    # a trunk's warmup must not depend on how many budgets it is later asked for
    first_steps = max(1, math.ceil(targets[0] / batch_tokens))
    if optim.get("warmup_steps") is not None:
        warmup = int(optim["warmup_steps"])
    elif optim.get("warmup_tokens") is not None:
        warmup = math.ceil(float(optim["warmup_tokens"]) / batch_tokens)
    elif sized.warmup_tokens is not None:
        warmup = math.ceil(sized.warmup_tokens / batch_tokens)
    else:
        warmup = round(optim["warmup_frac"] * (first_steps if many else steps_total))
    warmup = min(int(warmup), steps_total)

    if many is not None:
        plan_budgets = budgets.plan_budgets(
            targets, asked, batch_tokens,
            schedule=schedule, decay_frac=decay_frac, warmup_steps=warmup,
        )
        segments = budgets.segments(plan_budgets, schedule)
    else:
        if schedule == "cosine":
            decay_start = warmup
        else:  # plain WSD: warmup, constant, one decay over the last decay_frac
            decay_start = max(warmup, steps_total - max(1, round(decay_frac * steps_total)))
        only = budgets.Budget(0, asked[0], int(targets[0]), steps_total, decay_start)
        plan_budgets, segments = [only], budgets.single(only, schedule)
    n_evals = max(1, int(train["n_evals"]))
    return {
        "tokens_target": int(targets[-1]),
        "batch_tokens": batch_tokens,
        "micro_batch": micro,
        "grad_accum": grad_accum,
        "steps_total": steps_total,
        "lr": lr,
        "min_lr": lr * optim["min_lr_ratio"],
        "betas": list(sized.betas),
        "rules": sized.source,
        "warmup_steps": warmup,
        "eval_every": max(1, steps_total // n_evals),
        "schedule": schedule,
        "decay_frac": decay_frac,
        "decay_shape": decay_shape,
        "flops_target": flops_target,
        "trunk": many is not None,
        "budgets": plan_budgets,
        "segments": segments,
    }


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return value


def lr_at(step: int, plan: Mapping[str, Any], decay: tuple[int, int] | None = None) -> float:
    """The learning rate of the update made at ``step`` (0-based).

    Cosine runs decay over the whole run; under WSD and WSD-S, ``decay`` is the decay
    window of the segment being trained (None on a stable trunk).
    """
    if plan.get("schedule", "cosine") == "cosine":
        return schedules.cosine_lr(
            step, plan["lr"], plan["min_lr"], plan["warmup_steps"], plan["steps_total"]
        )
    return schedules.wsd_lr(
        step, plan["lr"], plan["min_lr"], plan["warmup_steps"], decay, plan["decay_shape"]
    )


def phase_of(step: int, plan: Mapping[str, Any], decay: tuple[int, int] | None) -> str:
    """What the schedule was doing at the update that led to ``step`` steps done."""
    if step <= plan["warmup_steps"]:
        return "warmup"
    if plan["schedule"] == "cosine":
        return "cosine"
    return "decay" if decay is not None and step > decay[0] else "stable"


def plan_run(cfg: Mapping[str, Any], world: int = 1) -> tuple:
    """Data, shape and plan of a run: ``(spec, data, shape, counts, fpt, plan)``.

    The tokenized corpus is prepared (or found in the cache), the family's shape rule
    turns the one size knob into an architecture, and :func:`resolve_plan` applies the
    per-size rules. Nothing is written to the run's directory.
    """
    mcfg = cfg["model"]
    # data: tokenized once per corpus+tokenizer and shared by every run of the sweep
    spec = DataSpec.from_config(cfg["data"])
    data = prepare(spec)
    # model: the family's shape rule turns the one size knob into an architecture
    shape = shape_for(
        mcfg["family"],
        mcfg["d_model"],
        vocab_size=data.vocab_size,
        context=mcfg["context"],
        n_layers=mcfg.get("n_layers"),
        n_heads=mcfg.get("n_heads"),
        d_ff=mcfg.get("d_ff"),
    )
    counts = param_counts(shape)
    fpt = flops_per_token(shape)
    # a data-constrained run draws from the first unique_tokens tokens, epoch after epoch
    if spec.unique_tokens is not None:
        repeated_windows(spec.unique_tokens, shape.context, len(data.train))
    plan = resolve_plan(
        cfg, counts[cfg["train"]["budget_params"]], shape.context, world, fpt,
        n_nonembed=counts["nonembed"], n_layers=shape.n_layers,
    )
    return spec, data, shape, counts, fpt, plan


def too_short(cfg: Mapping[str, Any]) -> str | None:
    """Why a run is not worth training (fewer steps than ``train.min_steps``), or None.

    IsoFLOP grids cross every size with every compute budget; at a small budget the
    largest sizes get too few steps to mean anything, and are skipped.
    """
    least = cfg["train"].get("min_steps")
    if not least:
        return None
    *_, counts, _, plan = plan_run(cfg)
    if plan["steps_total"] >= int(least):
        return None
    asked = plan["flops_target"]
    budget = f"{asked:.3g} FLOPs" if asked else f"{plan['tokens_target']:,} tokens"
    return (
        f"{budget} gives N = {counts['nonembed']:,} only {plan['steps_total']} steps of "
        f"{plan['batch_tokens']:,} tokens, under train.min_steps={least}: skipped"
    )
