"""Several token budgets from one training run: the trunk, its segments, its records.

A run asked for ``train.budgets`` (token counts) or ``train.budgets_per_param``
(multiples of N) trains one *trunk* and writes one record per budget, each in the
usual place and format (docs/run-record.md), so every analysis reads a budget like a
run. Two ways to get there, after Hägele et al. (2024) and OLMo-core's model ladder:

- ``optim.schedule=wsd``: the trunk stays at the peak rate; at ``budget·(1 − decay_frac)``
  a cooldown branch forks from it, decays to the budget and is recorded, and the trunk
  goes on from where the branch forked. Cost: the largest budget plus the cooldowns.
- ``optim.schedule=wsd_s``: one trajectory; each period between two budgets ends with a
  decay over ``decay_frac`` of the period, the decayed model is that budget's result,
  and the rate returns to the peak. Cost: the largest budget.

The run is a list of :class:`Segment`\\ s, each a stretch of optimiser steps that starts
from a known state and ends in one. The state that later budgets start from (the
trunk at its last fork, or the trajectory after its last decay) is kept on disk as the
trunk's *stable state*, so asking later for a larger budget continues from it instead
of starting over. Everything here is plain Python (no torch): the sweeper uses it to
find which budgets are done before it launches anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scaling import results

BUDGET_KEYS = ("budgets", "budgets_per_param")  # under `train`


@dataclass(frozen=True)
class Segment:
    """A stretch of optimiser steps ``[start, end)`` of a run.

    Attributes
    ----------
    start, end : int
        Steps done at its start and at its end.
    decay : tuple of int or None
        The steps ``(first, end)`` over which the rate decays; None on the trunk of a
        forked WSD run, which stays at the peak.
    budget : int or None
        The index of the budget whose record this segment completes, if any.
    start_key, key : str
        Names of the state it starts from and of the one it ends in. A segment can run
        only from a model in state ``start_key``: the previous segment's end, or the
        stable state on disk.
    stable : bool
        Whether its end state is the one later budgets start from (kept on disk).
    """

    start: int
    end: int
    decay: tuple[int, int] | None
    budget: int | None
    start_key: str
    key: str
    stable: bool


@dataclass(frozen=True)
class Budget:
    """One budget of a run: what it was asked for and the step it ends at."""

    index: int
    asked: float  # as written in the config: tokens, or a multiple of N
    tokens_target: int  # in tokens
    steps: int  # optimiser steps at its end (whole steps, at least the target)
    decay_start: int  # first step of its decay


def budget_list(train: Mapping[str, Any]) -> list[float] | None:
    """The budgets a run is asked for, as written (None for a one-budget run).

    Raises a one-line ``ValueError`` naming the key when both lists are given, a list
    is empty, a budget is not a positive number, or budgets do not increase.
    """
    given = [k for k in BUDGET_KEYS if train.get(k) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise ValueError("set train.budgets or train.budgets_per_param, not both")
    key = given[0]
    values = train[key]
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"train.{key} must be a non-empty list of numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"train.{key} must hold positive numbers, got {v!r}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"train.{key} must increase, got {list(values)}")
    for other in ("tokens", "flops"):
        if train.get(other) is not None:
            raise ValueError(f"set train.{key} or train.{other}, not both")
    return [float(v) for v in values]


def budget_tokens(train: Mapping[str, Any], n_params: int) -> list[int] | None:
    """The budgets in tokens: as given, or ``budgets_per_param × n_params``."""
    values = budget_list(train)
    if values is None:
        return None
    scale = n_params if train.get("budgets_per_param") is not None else 1
    return [int(round(v * scale)) for v in values]


def plan_budgets(
    tokens: Sequence[int],
    asked: Sequence[float],
    batch_tokens: int,
    *,
    schedule: str,
    decay_frac: float,
    warmup_steps: int,
) -> list[Budget]:
    """Each budget's last step and the step its decay starts, in whole optimiser steps.

    Under ``wsd_s`` a budget's decay takes ``decay_frac`` of its period (from the
    previous budget); under ``wsd`` it takes ``decay_frac`` of the whole budget. A
    decay is at least one step, and must start after the warmup and after the previous
    budget (``wsd_s``): budgets too close for that are refused with the fix.
    """
    out, previous = [], 0
    for i, (t, a) in enumerate(zip(tokens, asked, strict=True)):
        steps = max(1, math.ceil(t / batch_tokens))
        if steps <= previous:
            raise ValueError(
                f"budgets {i - 1} and {i} round to the same step ({steps}) at a batch of "
                f"{batch_tokens:,} tokens: space them further apart"
            )
        period = steps - previous if schedule == "wsd_s" else steps
        decay_start = steps - max(1, round(decay_frac * period))
        if decay_start < warmup_steps or (schedule == "wsd_s" and decay_start < previous):
            raise ValueError(
                f"budget {i} ({t:,} tokens = {steps} steps of {batch_tokens:,} tokens) leaves "
                f"no room for its decay after the warmup ({warmup_steps} steps) and the previous "
                "budget: space the budgets further apart, or shorten optim.warmup_*"
            )
        out.append(Budget(i, a, int(t), steps, decay_start))
        previous = steps
    return out


def segments(budgets: Sequence[Budget], schedule: str) -> list[Segment]:
    """The segments of a run with several budgets, in the order they are trained.

    ``wsd_s``: one segment per budget, each ending decayed and stable (the next starts
    from it). ``wsd``: for each budget, the trunk up to the budget's fork (its end is the
    stable state), then the cooldown branch; the next trunk segment starts again from
    the trunk at that fork.
    """
    if schedule not in ("wsd", "wsd_s"):
        raise ValueError(
            f"optim.schedule={schedule} trains one budget per run: sweep train.tokens instead, "
            "or use optim.schedule=wsd or wsd_s for several budgets from one run"
        )
    out: list[Segment] = []
    key, start = "init", 0
    for b in budgets:
        if schedule == "wsd_s":
            new = f"wsd_s:{b.steps}" if key == "init" else f"{key}>{b.steps}"
            out.append(Segment(start, b.steps, (b.decay_start, b.steps), b.index, key, new, True))
            key, start = new, b.steps
            continue
        trunk = f"trunk:{b.decay_start}"
        out.append(Segment(start, b.decay_start, None, None, key, trunk, True))
        branch = Segment(b.decay_start, b.steps, (b.decay_start, b.steps), b.index, trunk,
                         f"branch:{b.steps}", False)
        out.append(branch)
        key, start = trunk, b.decay_start
    return out


def single(budget: Budget, schedule: str) -> list[Segment]:
    """The one segment of a one-budget run: it ends in the run's own record."""
    decay = None if schedule == "cosine" else (budget.decay_start, budget.steps)
    return [Segment(0, budget.steps, decay, budget.index, "init", "run", False)]


def to_train(
    plan: Sequence[Segment],
    needed: set[int],
    checkpoint_key: str | None,
    stable_key: str | None,
) -> tuple[list[Segment], int, str]:
    """What is left to train for the budgets in ``needed``, and where to start.

    Returns the segments to run, dropping the cooldown branches of budgets already
    recorded and everything after the last needed one; the index in that list to start
    at; and what to start from: ``"checkpoint"`` (mid-segment), ``"stable"`` (the stable
    state on disk) or ``"scratch"``. A saved state is used only when every needed budget
    still lies ahead of it.
    """
    last = max(i for i, s in enumerate(plan) if s.budget in needed)
    todo = [
        s for s in plan[: last + 1] if s.budget is None or s.budget in needed or s.stable
    ]

    def ahead(i: int) -> bool:
        return all(s.budget not in needed for s in todo[:i])

    if checkpoint_key is not None:
        for i, s in enumerate(todo):
            if s.key == checkpoint_key and ahead(i):
                return todo, i, "checkpoint"
    if stable_key is not None:
        for i in range(len(todo) - 1, -1, -1):
            if todo[i].start_key == stable_key and ahead(i):
                return todo, i, "stable"
    return todo, 0, "scratch"


def record_config(config: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The config of budget ``index``'s record: the run's, plus ``budget: {index}``."""
    return {**config, "budget": {"index": int(index)}}


def record_ids(config: Mapping[str, Any]) -> list[str] | None:
    """The run ids of the records a run with several budgets writes (None: one budget)."""
    values = budget_list(config["train"])
    if values is None:
        return None
    return [results.run_id(record_config(config, k)) for k in range(len(values))]


def eval_stride(step: int, first_steps: int, n_evals: int) -> int:
    """Steps between evaluations of a trunk at ``step``: ``n_evals`` over its first budget,
    and the stride doubles with every doubling of the steps done.

    The stride depends on the first budget alone, so a budget's curve is sampled at the
    same steps however many budgets the trunk is later asked for (evenly spaced over
    the largest budget, the smaller ones would have few points or the larger too many):
    about ``n_evals`` evaluations per doubling.
    """
    base = max(1, first_steps // n_evals)
    doublings = max(0, math.floor(math.log2(max(step, 1) / first_steps))) if first_steps else 0
    return base * 2**doublings
