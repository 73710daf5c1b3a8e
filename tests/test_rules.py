"""Tests of scaling.rules: each rule set's numbers against its paper's formulas, by hand."""

from __future__ import annotations

import json
import math

import pytest

from scaling.rules import (
    RULES,
    SizeRules,
    deepseek_flops_per_token,
    resolve_rules,
    rule_set,
)

# A model shape for the rules that read one; only `stated` (lr) and `deepseek` use it.
SHAPE = {"d_model": 128, "n_layers": 2, "context": 64}


def rules_for(optim, n=1e6, nonembed=None, tokens=2e7, schedule="cosine", multiple=1, **shape):
    return resolve_rules(
        optim,
        n_params=n,
        n_nonembed=n if nonembed is None else nonembed,
        tokens=tokens,
        schedule=schedule,
        batch_multiple=multiple,
        **{**SHAPE, **shape},
    )


def rounded(batch: float, multiple: int) -> int:
    return max(1, round(batch / multiple)) * multiple


# ----------------------------------------------------------------------------------- stated


def test_stated_is_the_adamw_yaml_formulas(resolved):
    optim = resolved()["optim"]
    assert optim.get("rules", "stated") == "stated"
    for d_model, n in [(16, 5e3), (64, 1e5), (128, 1e6), (384, 1.1e7)]:
        r = rules_for(optim, n=n, d_model=d_model, multiple=16 * 64)
        # lr = lr_rule.base * (lr_rule.d_base / d_model) ** lr_rule.exponent
        assert r.lr == pytest.approx(3.0e-3 * (128 / d_model) ** 1.0, rel=1e-12)
        # batch = batch_rule.base * (N / n_base) ** exponent, clamped, whole micro-batches
        assert r.batch_target == 16384 and r.batch_tokens == 16384
        assert r.warmup_tokens is None  # warmup_frac of the run, as before
        assert r.betas == (0.9, 0.95) and r.source == "stated" and r.overrides == ()


def test_stated_ladder_batch_grows_with_n_and_is_clamped(resolved):
    # the stated rules at the scale of a GPU ladder: batch ~ N^(1/3), lr ~ 1/sqrt(width)
    optim = resolved(
        "experiment=ladder", "optim.rules=stated", "optim.batch_rule.base=262144",
        "optim.batch_rule.n_base=1e7", "optim.batch_rule.exponent=0.333",
        "optim.batch_rule.min=131072", "optim.batch_rule.max=2097152",
        "optim.lr_rule.d_base=256", "optim.lr_rule.exponent=0.5",
    )["optim"]
    multiple = 16 * 2048 * 2  # micro_batch * context * world
    for n in [1e6, 1e7, 3e8, 1e9, 1e12]:
        r = rules_for(optim, n=n, d_model=512, multiple=multiple)
        want = min(max(262144 * (n / 1e7) ** 0.333, 131072), 2097152)
        assert r.batch_target == pytest.approx(want, rel=1e-12)
        assert r.batch_tokens == rounded(want, multiple)
        assert r.lr == pytest.approx(3.0e-3 * (256 / 512) ** 0.5, rel=1e-12)
    assert rules_for(optim, n=1e6, d_model=512).batch_target == 131072  # the floor
    assert rules_for(optim, n=1e12, d_model=512).batch_target == 2097152  # the ceiling


def test_stated_rounding_is_resolve_plans(resolved):
    optim = {**resolved()["optim"], "batch_tokens": 5000}
    micro, context, world = 8, 128, 2
    r = rules_for(optim, multiple=micro * context * world)
    # resolve_plan: grad_accum = max(1, round(batch / (micro * context * world))) * world
    grad_accum = max(1, round(5000 / (micro * context * world))) * world
    assert r.batch_tokens == grad_accum * micro * context == 4096
    assert r.batch_target == 5000 and r.overrides == ("batch_tokens",)
    tiny = rules_for({**optim, "batch_tokens": 10}, multiple=1024)
    assert tiny.batch_tokens == 1024  # never less than one micro-batch per process


# ----------------------------------------------------------------------------------- porian

PORIAN = {"rules": "porian"}
N_REF = 108e6


def test_porian_at_the_reference_size():
    r = rules_for(PORIAN, n=3e8, nonembed=N_REF)  # N is the non-embedding count
    assert r.lr == pytest.approx(0.0047, rel=1e-12)
    assert r.batch_target == pytest.approx(2048 * 160) and r.batch_tokens == 327_680
    assert r.betas == (0.9, 0.99)  # under 524,288 tokens
    assert r.warmup_tokens == N_REF  # one token per parameter
    assert r.source == "porian"


def test_porian_scales_as_the_paper_says():
    small, big = (rules_for(PORIAN, nonembed=k * N_REF) for k in (1, 8))
    assert big.batch_tokens == 4 * small.batch_tokens == 1_310_720  # (8)^(2/3)
    assert big.lr == pytest.approx(small.lr / 2, rel=1e-12)  # (8)^(-1/3)
    assert big.betas == (0.9, 0.95) and big.warmup_tokens == 8 * N_REF
    for n in [1e4, 3.3e5, 2.5e7, 1.2e9]:
        r = rules_for(PORIAN, nonembed=n)
        assert r.lr == pytest.approx(0.0047 * (n / N_REF) ** (-1 / 3), rel=1e-12)
        assert r.batch_tokens == round(327_680 * (n / N_REF) ** (2 / 3))


def test_porian_ignores_the_budget_convention_and_the_shape():
    a = rules_for(PORIAN, n=1e6, nonembed=5e5)
    b = rules_for(PORIAN, n=9e9, nonembed=5e5, d_model=2048, n_layers=16, context=2048)
    assert a == b


@pytest.mark.parametrize("schedule,factor", [("cosine", 1.0), ("wsd", 0.5), ("wsd_s", 0.5)])
def test_porian_rate_is_halved_under_wsd(schedule, factor):
    r = rules_for(PORIAN, nonembed=N_REF, schedule=schedule)
    assert r.lr == pytest.approx(0.0047 * factor, rel=1e-12)


def test_porian_beta2_switches_at_524288_tokens_of_the_batch_used():
    for batch, beta2 in [(524_287, 0.99), (524_288, 0.95), (524_289, 0.95), (1024, 0.99)]:
        assert rules_for({**PORIAN, "batch_tokens": batch}).betas == (0.9, beta2)
    # the rule's own target, just under the switch, rounds up onto it: β2 follows the batch
    n = N_REF * (520_000 / 327_680) ** 1.5
    r = rules_for(PORIAN, nonembed=n, multiple=16 * 2048)
    assert r.batch_target == pytest.approx(520_000) and r.batch_tokens == 524_288
    assert r.betas == (0.9, 0.95)
    assert rules_for(PORIAN, nonembed=n).betas == (0.9, 0.99)  # whole tokens: 520,000


# ----------------------------------------------------------------------------------- deepseek

DEEPSEEK = {"rules": "deepseek", "warmup_frac": 0.05}


def test_deepseek_compute_rules_by_hand():
    for n_layers, d_model, context, tokens in [(2, 32, 64, 65536), (16, 2048, 2048, 2e10)]:
        m = 72 * n_layers * d_model**2 + 6 * n_layers * d_model * context
        assert deepseek_flops_per_token(n_layers, d_model, context) == m
        c = m * tokens
        r = rules_for(DEEPSEEK, tokens=tokens, n_layers=n_layers, d_model=d_model, context=context)
        assert r.lr == pytest.approx(0.3118 * c**-0.1250, rel=1e-12)
        assert r.batch_target == pytest.approx(0.2920 * c**0.3271, rel=1e-12)
        assert r.batch_tokens == round(0.2920 * c**0.3271)
        assert r.betas == (0.9, 0.95) and r.source == "deepseek"


def test_deepseek_reproduces_its_7b_hyperparameters():
    # DeepSeek LLM 7B (Table 2): 30 layers, d_model 4096, 4096 context, 2T tokens, trained
    # with a batch of 2304 sequences of 4096 tokens and a peak rate of 4.2e-4
    r = rules_for(DEEPSEEK, tokens=2e12, n_layers=30, d_model=4096, context=4096)
    assert r.lr == pytest.approx(4.2e-4, rel=0.05)
    assert r.batch_tokens == pytest.approx(2304 * 4096, rel=0.1)


def test_deepseek_warmup_is_2000_steps_unless_that_exceeds_warmup_frac_of_the_run():
    long = rules_for(DEEPSEEK, tokens=2e12, n_layers=30, d_model=4096, context=4096)
    assert long.warmup_tokens == 2000 * long.batch_tokens
    tiny = rules_for(DEEPSEEK, tokens=65536, n_layers=2, d_model=32, context=64)
    assert 2000 * tiny.batch_tokens > 0.05 * 65536 and tiny.warmup_tokens is None
    # the cap is warmup_frac: a larger one lets a mid-sized run keep DeepSeek's 2000 steps
    mid = dict(tokens=5e8, n_layers=4, d_model=256, context=256, multiple=256)
    b = rules_for(DEEPSEEK, **mid).batch_tokens
    assert 2000 * b > 0.05 * 5e8  # so that both branches are exercised here
    assert rules_for(DEEPSEEK, **mid).warmup_tokens is None
    assert rules_for({**DEEPSEEK, "warmup_frac": 0.9}, **mid).warmup_tokens == 2000 * b


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "wsd_s"])
def test_deepseek_rate_does_not_depend_on_the_schedule(schedule):
    assert rules_for(DEEPSEEK, schedule=schedule).lr == rules_for(DEEPSEEK).lr


# ----------------------------------------------------------------------------------- common


@pytest.mark.parametrize("name", RULES)
def test_explicit_values_override_every_rule(name, resolved):
    optim = {**resolved()["optim"], "rules": name}
    r = rules_for(
        {**optim, "lr": 1e-3, "batch_tokens": 8192, "warmup_steps": 7},
        schedule="wsd",
        multiple=1024,
    )
    assert r.lr == 1e-3  # not halved for WSD either
    assert r.batch_tokens == 8192 and r.batch_target == 8192
    assert r.warmup_tokens is None  # resolve_plan then takes optim.warmup_steps
    assert r.overrides == ("batch_tokens", "lr", "warmup_steps")
    assert r.source == name
    tokens = rules_for({**optim, "warmup_tokens": 5000})
    assert tokens.warmup_tokens is None and tokens.overrides == ("warmup_tokens",)
    nulls = {"lr": None, "batch_tokens": None, "warmup_steps": None, "warmup_tokens": None}
    null = rules_for({**optim, **nulls})
    assert null.overrides == () and null.lr != 1e-3


def test_missing_or_null_rules_are_stated(resolved):
    optim = resolved()["optim"]
    base = rules_for({k: v for k, v in optim.items() if k != "rules"})
    assert rules_for({**optim, "rules": None}) == base
    assert rules_for({**optim, "rules": "stated"}) == base
    assert rule_set(optim).name == "stated"


def test_errors_name_the_key_and_the_valid_values(resolved):
    optim = resolved()["optim"]
    valid = r"optim\.rules must be one of stated, porian, deepseek, got 'kaplan'"
    with pytest.raises(ValueError, match=valid):
        rules_for({**optim, "rules": "kaplan"})
    with pytest.raises(ValueError, match=r"optim\.schedule must be one of cosine, wsd, wsd_s"):
        rules_for(optim, schedule="step")
    with pytest.raises(ValueError, match=r"optim\.lr must be a positive number or null"):
        rules_for({**optim, "lr": 0})
    with pytest.raises(ValueError, match=r"optim\.batch_tokens must be a positive"):
        rules_for({**optim, "batch_tokens": -5})
    bare = {k: v for k, v in optim.items() if k not in ("lr_rule", "batch_rule")}
    with pytest.raises(ValueError, match=r"needs optim\.batch_rule or optim\.batch_tokens"):
        rules_for(bare)
    with pytest.raises(ValueError, match=r"needs optim\.lr_rule or optim\.lr"):
        rules_for({**bare, "batch_tokens": 1024})
    assert rules_for({**bare, "batch_tokens": 1024, "lr": 0.01}).lr == 0.01
    with pytest.raises(ValueError, match="batch_multiple"):
        rules_for(optim, multiple=0)


def test_record_form_is_plain_json():
    r = rules_for(PORIAN, nonembed=N_REF, schedule="wsd_s", multiple=1024)
    d = r.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["betas"] == [0.9, 0.99] and d["source"] == "porian"
    assert set(d) == {f.name for f in SizeRules.__dataclass_fields__.values()}
    assert math.isclose(d["lr"], 0.0047 / 2)
