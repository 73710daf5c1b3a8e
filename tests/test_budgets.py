"""Several token budgets from one run: the budget list, its plan and segments, what is
left to train, the records' ids, and how ``resolve_plan`` turns a config into budgets."""

import math

import pytest

from scaling import budgets, results
from scaling.budgets import Budget, Segment
from scaling.plan import resolve_plan

BATCH = 1000  # tokens per step: a budget of 100_000 tokens is 100 steps
GRID = [100_000, 200_000, 400_000, 800_000]  # 100, 200, 400, 800 steps


def plan(schedule, tokens=GRID, *, decay_frac=0.2, warmup_steps=10, batch=BATCH):
    return budgets.plan_budgets(
        tokens,
        [float(t) for t in tokens],
        batch,
        schedule=schedule,
        decay_frac=decay_frac,
        warmup_steps=warmup_steps,
    )


# ----------------------------------------------------------------------------------------
# budget_list


def test_budget_list_reads_either_key_and_none_for_a_one_budget_run():
    assert budgets.budget_list({"tokens": 100}) is None
    assert budgets.budget_list({"budgets": None, "budgets_per_param": None}) is None
    assert budgets.budget_list({"budgets": [1, 2.5e3]}) == [1.0, 2500.0]
    assert budgets.budget_list({"budgets": None, "budgets_per_param": [5, 10]}) == [5.0, 10.0]
    assert budgets.budget_list({"budgets": (3,), "tokens": None, "flops": None}) == [3.0]
    assert budgets.budget_tokens({"budgets_per_param": [5, 10]}, 1234) == [6170, 12340]
    assert budgets.budget_tokens({"budgets": [1e6, 2.5e6]}, 1234) == [1_000_000, 2_500_000]


@pytest.mark.parametrize(
    "train, message",
    [
        (
            {"budgets": [1], "budgets_per_param": [1]},
            "set train.budgets or train.budgets_per_param, not both",
        ),
        ({"budgets": []}, "train.budgets must be a non-empty list of numbers"),
        ({"budgets_per_param": []}, "train.budgets_per_param must be a non-empty list"),
        ({"budgets": "1000"}, "train.budgets must be a non-empty list"),
        ({"budgets": 1000}, "train.budgets must be a non-empty list"),
        ({"budgets": [0, 10]}, "train.budgets must hold positive numbers, got 0"),
        ({"budgets_per_param": [5, -10]}, "train.budgets_per_param must hold positive numbers"),
        ({"budgets": [1, float("inf")]}, "train.budgets must hold positive numbers, got inf"),
        ({"budgets": [float("nan")]}, "train.budgets must hold positive numbers, got nan"),
        ({"budgets": [True, 2]}, "train.budgets must hold positive numbers, got True"),
        ({"budgets": ["5"]}, "train.budgets must hold positive numbers, got '5'"),
        ({"budgets": [10, 20, 15]}, "train.budgets must increase, got [10, 20, 15]"),
        ({"budgets_per_param": [10, 10]}, "train.budgets_per_param must increase"),
        ({"budgets": [1, 2], "tokens": 5}, "set train.budgets or train.tokens, not both"),
        ({"budgets": [1, 2], "flops": 1e15}, "set train.budgets or train.flops, not both"),
        (
            {"budgets_per_param": [1], "flops": 1e15},
            "set train.budgets_per_param or train.flops, not both",
        ),
    ],
)
def test_budget_list_errors_name_the_key(train, message):
    with pytest.raises(ValueError) as info:
        budgets.budget_list(train)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------
# plan_budgets


def test_wsd_s_decays_take_a_fifth_of_each_period():
    # periods 100, 100, 200, 400 steps: decays of 20, 20, 40, 80 steps before each end
    got = plan("wsd_s")
    assert [b.steps for b in got] == [100, 200, 400, 800]
    assert [b.decay_start for b in got] == [80, 180, 360, 720]
    assert got[2] == Budget(2, 400_000.0, 400_000, 400, 360)


def test_wsd_decays_take_a_fifth_of_each_budget():
    # each cooldown is 20 % of its whole budget: 20, 40, 80, 160 steps
    assert [b.decay_start for b in plan("wsd")] == [80, 160, 320, 640]


def test_budgets_end_at_whole_steps_at_least_the_target():
    # 99_001 tokens need 100 steps of 1000 (99 would fall short), 200_000 exactly 200
    got = plan("wsd_s", [99_001, 200_000, 399_999])
    assert [(b.tokens_target, b.steps) for b in got] == [
        (99_001, 100),
        (200_000, 200),
        (399_999, 400),
    ]
    assert [b.asked for b in got] == [99_001.0, 200_000.0, 399_999.0]
    assert [b.index for b in got] == [0, 1, 2]


def test_a_decay_is_at_least_one_step():
    # 0.1 % of 100 steps rounds to none: one step
    assert [b.decay_start for b in plan("wsd", [100_000], decay_frac=0.001)] == [99]
    assert [b.decay_start for b in plan("wsd_s", [100_000, 101_000], decay_frac=0.001)] == [
        99,
        100,
    ]
    # the whole period
    assert [b.decay_start for b in plan("wsd_s", GRID, decay_frac=1.0, warmup_steps=0)] == [
        0,
        100,
        200,
        400,
    ]


def test_budgets_rounding_to_the_same_step_are_refused():
    # 1500 and 2000 tokens are both 2 steps of 1000
    with pytest.raises(ValueError, match=r"budgets 0 and 1 round to the same step \(2\)"):
        plan("wsd_s", [1500, 2000], warmup_steps=0)
    with pytest.raises(ValueError, match=r"budgets 1 and 2 round to the same step \(200\)"):
        plan("wsd", [100_000, 199_500, 200_000])


def test_a_decay_starting_inside_the_warmup_is_refused():
    # the first decay starts at step 80 under both schedules
    for schedule in ("wsd", "wsd_s"):
        assert plan(schedule, warmup_steps=80)[0].decay_start == 80  # at its end: fine
        with pytest.raises(ValueError, match=r"budget 0 .*warmup \(81 steps\)") as info:
            plan(schedule, warmup_steps=81)
        assert "optim.warmup_" in str(info.value)


# ----------------------------------------------------------------------------------------
# segments


def test_wsd_s_segments_are_one_trajectory():
    segs = budgets.segments(plan("wsd_s"), "wsd_s")
    k1, k2, k3, k4 = "wsd_s:100", "wsd_s:100>200", "wsd_s:100>200>400", "wsd_s:100>200>400>800"
    assert [(s.start, s.end, s.decay, s.budget, s.start_key, s.key, s.stable) for s in segs] == [
        (0, 100, (80, 100), 0, "init", k1, True),
        (100, 200, (180, 200), 1, k1, k2, True),
        (200, 400, (360, 400), 2, k2, k3, True),
        (400, 800, (720, 800), 3, k3, k4, True),
    ]
    assert sum(s.end - s.start for s in segs) == 800  # the cost of the largest budget


def test_wsd_segments_fork_cooldowns_from_a_trunk():
    segs = budgets.segments(plan("wsd"), "wsd")
    assert [(s.start, s.end, s.decay, s.budget, s.start_key, s.key, s.stable) for s in segs] == [
        (0, 80, None, None, "init", "trunk:80", True),
        (80, 100, (80, 100), 0, "trunk:80", "branch:100", False),
        (80, 160, None, None, "trunk:80", "trunk:160", True),
        (160, 200, (160, 200), 1, "trunk:160", "branch:200", False),
        (160, 320, None, None, "trunk:160", "trunk:320", True),
        (320, 400, (320, 400), 2, "trunk:320", "branch:400", False),
        (320, 640, None, None, "trunk:320", "trunk:640", True),
        (640, 800, (640, 800), 3, "trunk:640", "branch:800", False),
    ]
    # the trunk to 640 plus four cooldowns of 20, 40, 80, 160 steps: 800 + 20 + 40 + 80
    assert sum(s.end - s.start for s in segs) == 940


def test_cosine_cannot_train_several_budgets():
    with pytest.raises(ValueError) as info:
        budgets.segments(plan("wsd"), "cosine")
    msg = str(info.value)
    assert msg.startswith("optim.schedule=cosine trains one budget per run")
    assert "optim.schedule=wsd or wsd_s" in msg and "\n" not in msg


def test_a_one_budget_run_is_one_segment():
    b = Budget(0, 100_000.0, 100_000, 100, 80)
    assert budgets.single(b, "cosine") == [Segment(0, 100, None, 0, "init", "run", False)]
    assert budgets.single(b, "wsd") == [Segment(0, 100, (80, 100), 0, "init", "run", False)]


# ----------------------------------------------------------------------------------------
# to_train


WSD = budgets.segments(plan("wsd"), "wsd")
WSD_S = budgets.segments(plan("wsd_s"), "wsd_s")


def spans(segs):
    return [(s.start, s.end) for s in segs]


def test_every_budget_needed_trains_everything_from_scratch():
    for segs in (WSD, WSD_S):
        assert budgets.to_train(segs, {0, 1, 2, 3}, None, None) == (segs, 0, "scratch")


def test_nothing_after_the_last_needed_budget_is_trained():
    todo, first, source = budgets.to_train(WSD, {0, 1}, None, None)
    assert spans(todo) == [(0, 80), (80, 100), (80, 160), (160, 200)]
    assert (first, source) == (0, "scratch")
    todo, first, source = budgets.to_train(WSD_S, {1}, None, None)
    assert spans(todo) == [(0, 100), (100, 200)] and (first, source) == (0, "scratch")


def test_wsd_continues_from_the_stable_trunk_and_drops_recorded_branches():
    # budgets 0 and 1 recorded; the stable state is the trunk at its second fork (160)
    todo, first, source = budgets.to_train(WSD, {2, 3}, None, "trunk:160")
    assert spans(todo) == [(0, 80), (80, 160), (160, 320), (320, 400), (320, 640), (640, 800)]
    assert all(s.budget not in (0, 1) for s in todo)
    assert (first, source) == (2, "stable")
    assert todo[first].start_key == "trunk:160"
    # the stable state at the third fork: budget 2's branch starts from it
    todo, first, source = budgets.to_train(WSD, {2, 3}, None, "trunk:320")
    assert (spans(todo)[first], source) == ((320, 400), "stable")


def test_a_checkpoint_mid_branch_resumes_that_branch():
    # budget 0 recorded, interrupted in budget 1's cooldown
    todo, first, source = budgets.to_train(WSD, {1, 2, 3}, "branch:200", "trunk:160")
    assert spans(todo) == [
        (0, 80),
        (80, 160),
        (160, 200),
        (160, 320),
        (320, 400),
        (320, 640),
        (640, 800),
    ]
    assert (first, source) == (2, "checkpoint")
    assert todo[first].key == "branch:200"
    # mid-trunk, once budget 1 is recorded
    todo, first, source = budgets.to_train(WSD, {2, 3}, "trunk:320", "trunk:160")
    assert (spans(todo)[first], source) == ((160, 320), "checkpoint")
    # a checkpoint past a budget still needed is no use: back to the stable trunk at 160,
    # budget 1's fork
    todo, first, source = budgets.to_train(WSD, {1, 2, 3}, "trunk:320", "trunk:160")
    assert (spans(todo)[first], source) == ((160, 200), "stable")


def test_a_needed_budget_before_the_saved_state_trains_from_scratch():
    # budget 0 has no record (deleted, say) but the trunk went on past its fork
    assert budgets.to_train(WSD, {0, 2, 3}, None, "trunk:160") == (
        budgets.to_train(WSD, {0, 2, 3}, None, None)[0],
        0,
        "scratch",
    )
    todo, first, source = budgets.to_train(WSD, {0, 1, 2, 3}, "branch:400", "trunk:320")
    assert (first, source) == (0, "scratch") and todo == WSD
    todo, first, source = budgets.to_train(WSD_S, {0, 2, 3}, None, "wsd_s:100>200")
    assert (first, source) == (0, "scratch")


def test_wsd_s_extends_from_the_state_at_the_end_of_a_budget():
    # budgets 0 and 1 recorded, the trajectory kept after budget 1's decay
    todo, first, source = budgets.to_train(WSD_S, {2, 3}, None, "wsd_s:100>200")
    assert (first, source) == (2, "stable")
    assert (todo[first].start, todo[first].budget) == (200, 2)
    # a launch that asks for a fifth budget continues from the fourth's end
    more = budgets.segments(plan("wsd_s", GRID + [1_600_000]), "wsd_s")
    todo, first, source = budgets.to_train(more, {4}, None, "wsd_s:100>200>400>800")
    assert (first, source) == (4, "stable")
    assert (todo[first].start, todo[first].end, todo[first].decay) == (800, 1600, (1440, 1600))


# ----------------------------------------------------------------------------------------
# run ids of a trunk and its records

SMOKE = ("experiment=smoke", "train.tokens=null")


def ids(config):
    """(the trunk's id, each record's id)."""
    n = len(budgets.budget_list(config["train"]))
    return results.run_id(config), [
        results.run_id(budgets.record_config(config, k)) for k in range(n)
    ]


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_adding_a_budget_keeps_every_id(resolved, schedule):
    three = resolved(*SMOKE, f"optim.schedule={schedule}", "train.budgets=[16384,32768,65536]")
    four = resolved(
        *SMOKE, f"optim.schedule={schedule}", "train.budgets=[16384,32768,65536,131072]"
    )
    trunk3, records3 = ids(three)
    trunk4, records4 = ids(four)
    assert trunk4 == trunk3
    assert records4[:3] == records3
    assert len(set(records4) | {trunk4}) == 5  # all distinct
    assert budgets.record_ids(four) == records4


def test_wsd_s_budget_changes_its_record_and_every_later_one(resolved):
    a = resolved(*SMOKE, "optim.schedule=wsd_s", "train.budgets=[16384,32768,65536]")
    b = resolved(*SMOKE, "optim.schedule=wsd_s", "train.budgets=[16384,40960,65536]")
    (trunk_a, ra), (trunk_b, rb) = ids(a), ids(b)
    assert trunk_a == trunk_b
    assert ra[0] == rb[0]
    assert ra[1] != rb[1] and ra[2] != rb[2]


def test_wsd_budget_changes_only_its_own_record(resolved):
    a = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets=[16384,32768,65536]")
    b = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets=[16384,40960,65536]")
    (trunk_a, ra), (trunk_b, rb) = ids(a), ids(b)
    assert trunk_a == trunk_b
    assert ra[0] == rb[0] and ra[2] == rb[2]
    assert ra[1] != rb[1]


@pytest.mark.parametrize("schedule", ["wsd", "wsd_s"])
def test_the_first_budget_decides_the_trunk(resolved, schedule):
    a = resolved(*SMOKE, f"optim.schedule={schedule}", "train.budgets=[16384,32768,65536]")
    b = resolved(*SMOKE, f"optim.schedule={schedule}", "train.budgets=[8192,32768,65536]")
    (trunk_a, ra), (trunk_b, rb) = ids(a), ids(b)
    assert trunk_a != trunk_b
    assert all(x != y for x, y in zip(ra, rb, strict=True))  # it sets every warmup


def test_budgets_per_param_ids_follow_the_same_rules(resolved):
    a = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets_per_param=[5,10]")
    b = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets_per_param=[5,10,20]")
    c = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets=[5,10]")
    assert ids(a)[0] == ids(b)[0] and ids(a)[1] == ids(b)[1][:2]
    assert ids(a)[0] != ids(c)[0]  # 5 tokens is not 5 per parameter


NEW_KEYS = (
    "optim.schedule",
    "optim.decay_frac",
    "optim.decay_shape",
    "optim.rules",
    "optim.warmup_tokens",
    "train.budgets",
    "train.budgets_per_param",
    "train.flops",
    "train.min_steps",
    "data.unique_tokens",
)


def _without(config, dotted_keys):
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for dotted in dotted_keys:
        section, key = dotted.split(".")
        del out[section][key]
    return out


def test_a_cosine_run_keeps_the_id_it_had_before_the_new_keys(resolved):
    cfg = resolved("experiment=smoke")
    assert cfg["optim"]["schedule"] == "cosine"
    old = _without(cfg, NEW_KEYS)
    assert all(k.split(".")[1] not in old[k.split(".")[0]] for k in NEW_KEYS)
    assert results.run_id(cfg) == results.run_id(old)
    # the decay settings change nothing a cosine run computes
    assert results.run_id(resolved("experiment=smoke", "optim.decay_frac=0.5")) == results.run_id(
        old
    )
    assert results.run_id(resolved("experiment=smoke", "optim.decay_shape=sqrt")) == (
        results.run_id(old)
    )
    # what the new keys change does change it
    assert results.run_id(resolved("experiment=smoke", "optim.schedule=wsd")) != results.run_id(old)


def test_under_wsd_the_decay_is_part_of_the_identity(resolved):
    base = ("experiment=smoke", "optim.schedule=wsd")
    rid = results.run_id(resolved(*base))
    assert results.run_id(resolved(*base, "optim.decay_frac=0.5")) != rid
    assert results.run_id(resolved(*base, "optim.decay_shape=sqrt")) != rid
    many = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets=[16384,32768]")
    many_half = resolved(
        *SMOKE, "optim.schedule=wsd", "train.budgets=[16384,32768]", "optim.decay_frac=0.5"
    )
    assert ids(many)[1][1] != ids(many_half)[1][1]


def test_a_wsd_record_is_not_the_cosine_run_of_its_size_and_tokens(resolved):
    cfg = resolved(*SMOKE, "optim.schedule=wsd", "train.budgets=[16384,32768,65536]")
    cosine = resolved("experiment=smoke", "train.tokens=65536")
    assert cfg["model"] == cosine["model"]
    assert ids(cfg)[1][2] != results.run_id(cosine)
    single_wsd = resolved("experiment=smoke", "train.tokens=65536", "optim.schedule=wsd")
    assert results.run_id(single_wsd) != results.run_id(cosine)


# ----------------------------------------------------------------------------------------
# resolve_plan: budgets, compute budgets and their checks

N = 10_000  # parameters (a number the rules scale with; no model is built)
CONTEXT = 64  # experiment=smoke: micro-batch 16 x 64 = 1024 tokens = optim.batch_tokens


@pytest.mark.parametrize("batches, steps", [(100.4, 100), (100.6, 101)])
def test_a_compute_budget_is_a_whole_number_of_batches(resolved, batches, steps):
    fpt = 1000.0  # FLOPs per token
    flops = int(batches * 1024 * fpt)  # 102_809_600 or 103_014_400: C / fpt = 1024 * batches
    cfg = resolved(*SMOKE, f"train.flops={flops}")
    p = resolve_plan(cfg, n_params=N, context=CONTEXT, flops_per_token=fpt)
    assert p["batch_tokens"] == 1024
    assert p["tokens_target"] == steps * 1024  # the nearest whole number of batches
    assert p["tokens_target"] % p["batch_tokens"] == 0
    assert abs(p["tokens_target"] - flops / fpt) <= 1024 / 2
    assert p["steps_total"] == steps
    assert p["flops_target"] == flops
    with pytest.raises(ValueError, match="train.flops needs the shape's FLOPs per token"):
        resolve_plan(cfg, n_params=N, context=CONTEXT)


def test_budgets_per_param_are_multiples_of_n_in_whole_steps(resolved):
    cfg = resolved(*SMOKE, "optim.schedule=wsd_s", "train.budgets_per_param=[5,10]")
    p = resolve_plan(cfg, n_params=N, context=CONTEXT)
    # 50_000 tokens: 48.8 batches of 1024, so 49 steps; 100_000: 97.7, so 98
    assert [b.tokens_target for b in p["budgets"]] == [50_000, 100_000]
    assert [b.steps for b in p["budgets"]] == [49, 98]
    assert [b.asked for b in p["budgets"]] == [5.0, 10.0]
    assert p["tokens_target"] == 100_000 and p["steps_total"] == 98
    assert p["trunk"] is True
    # wsd_s: decays of round(0.2 * 49) = 10 and round(0.2 * 49) = 10 steps
    assert [b.decay_start for b in p["budgets"]] == [39, 88]
    assert [(s.start, s.end, s.decay) for s in p["segments"]] == [
        (0, 49, (39, 49)),
        (49, 98, (88, 98)),
    ]


def test_a_trunks_warmup_is_a_share_of_its_first_budget(resolved):
    base = (*SMOKE, "optim.schedule=wsd", "optim.warmup_frac=0.25")
    # 32 steps of 1024 tokens first: a warmup of 8 steps, however many budgets follow
    two = resolve_plan(resolved(*base, "train.budgets=[32768,65536]"), n_params=N, context=CONTEXT)
    four = resolve_plan(
        resolved(*base, "train.budgets=[32768,65536,131072,262144]"), n_params=N, context=CONTEXT
    )
    assert two["warmup_steps"] == four["warmup_steps"] == 8
    assert four["steps_total"] == 256
    # a one-budget run warms up over a share of the whole run: 0.25 * 64
    one = resolve_plan(
        resolved("experiment=smoke", "optim.schedule=wsd", "optim.warmup_frac=0.25"),
        n_params=N,
        context=CONTEXT,
    )  # experiment=smoke: 65_536 tokens
    assert one["warmup_steps"] == 16


def test_resolve_plan_refuses_cosine_with_several_budgets(resolved):
    cfg = resolved(*SMOKE, "train.budgets=[32768,65536]")
    with pytest.raises(ValueError, match="optim.schedule=cosine trains one budget per run"):
        resolve_plan(cfg, n_params=N, context=CONTEXT)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.tokens=-1", "train.tokens"),
        ("train.tokens=0", "train.tokens"),
        ("optim.batch_tokens=0", "optim.batch_tokens"),
        ("train.flops=-5", "train.flops"),
        ("optim.schedule=linear", "optim.schedule"),
        ("optim.decay_frac=0", "optim.decay_frac"),
    ],
)
def test_resolve_plan_errors_name_the_key(resolved, override, key):
    extra = ("train.tokens=null",) if override.startswith("train.flops") else ()
    cfg = resolved("experiment=smoke", *extra, override)
    with pytest.raises(ValueError) as info:
        resolve_plan(cfg, n_params=N, context=CONTEXT, flops_per_token=1000.0)
    assert str(info.value).startswith(key)


def test_resolve_plan_wsd_s_lr_returns_to_the_peak_after_each_decay(resolved):
    from scaling.plan import lr_at

    cfg = resolved(
        *SMOKE, "optim.schedule=wsd_s", "train.budgets=[32768,65536]", "optim.warmup_steps=4"
    )
    p = resolve_plan(cfg, n_params=N, context=CONTEXT)
    # 32 and 64 steps; decays of round(0.2 * 32) = 6 steps: from 26 and from 58
    first, second = p["segments"]
    assert (first.decay, second.decay) == ((26, 32), (58, 64))
    assert lr_at(25, p, first.decay) == p["lr"]
    assert lr_at(31, p, first.decay) == pytest.approx(
        p["min_lr"] + (p["lr"] - p["min_lr"]) * (1 - 5 / 6)
    )
    assert lr_at(32, p, second.decay) == p["lr"]  # back to the peak
    assert p["min_lr"] == pytest.approx(0.1 * p["lr"])
    assert math.isclose(lr_at(64, p, second.decay), p["min_lr"])
