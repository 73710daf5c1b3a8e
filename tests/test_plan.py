"""A run's plan: the schedule it follows and the per-size rules it resolves."""

import math

import pytest

from scaling.plan import lr_at, resolve_plan

TINY = ("experiment=smoke", "model.d_model=32")


def test_schedule_warms_up_then_decays_to_ten_percent(resolved):
    cfg = resolved(*TINY)
    plan = resolve_plan(cfg, n_params=10_000, context=64)
    lrs = [lr_at(s, plan) for s in range(plan["steps_total"])]
    peak = max(lrs)
    assert peak == pytest.approx(plan["lr"])
    warm = plan["warmup_steps"]
    assert lrs[:warm] == sorted(lrs[:warm])  # increasing during warmup
    assert lrs[warm:] == sorted(lrs[warm:], reverse=True)  # then non-increasing
    assert lr_at(plan["steps_total"], plan) == pytest.approx(0.1 * plan["lr"])


def test_budget_and_rules_follow_the_config(resolved):
    cfg = resolved(
        "experiment=demo",
        "model.d_model=64",
        "train.budgets=null",
        "optim.batch_tokens=null",
        "optim.batch_rule.base=8192",
        "optim.batch_rule.n_base=1e5",
        "optim.batch_rule.exponent=0.5",
        "optim.lr_rule.base=3e-3",
        "optim.lr_rule.exponent=1.0",
    )
    n = 100_000
    plan = resolve_plan(cfg, n_params=n, context=128)
    # 20 tokens per parameter, reached in whole optimiser steps
    assert plan["tokens_target"] == 20 * n
    assert plan["steps_total"] == math.ceil(20 * n / plan["batch_tokens"])
    # batch rule: base * (N / n_base)^exponent, here exactly the base at n_base
    assert plan["batch_tokens"] == 8192
    assert plan["batch_tokens"] == plan["grad_accum"] * plan["micro_batch"] * 128
    # learning-rate rule: base * d_base / d_model
    assert plan["lr"] == pytest.approx(3e-3 * 128 / 64)
    # a larger model gets a larger batch under the sqrt rule
    assert resolve_plan(cfg, n_params=400_000, context=128)["batch_tokens"] > 8192
