"""Learning-rate schedules: warmup, cosine, WSD decays of three shapes, and their checks."""

import math

import pytest

from scaling import schedules
from scaling.plan import lr_at, phase_of

LR, MIN_LR = 1.0, 0.1  # peak and floor: a decay covers 0.9 of rate


def test_warmup_is_linear_to_the_peak_then_done():
    # the rate of the update at step s (0-based) is lr * (s + 1) / warmup
    assert [schedules.warmup_lr(s, 2.0, 4) for s in range(4)] == [0.5, 1.0, 1.5, 2.0]
    assert schedules.warmup_lr(4, 2.0, 4) is None
    assert schedules.warmup_lr(0, 2.0, 0) is None  # no warmup at all
    # both schedules start with it
    for s, want in enumerate([0.25, 0.5, 0.75, 1.0]):
        assert schedules.cosine_lr(s, LR, MIN_LR, 4, 20) == pytest.approx(want)
        assert schedules.wsd_lr(s, LR, MIN_LR, 4, (10, 20), "linear") == pytest.approx(want)
        assert schedules.wsd_lr(s, LR, MIN_LR, 4, None, "sqrt") == pytest.approx(want)


def test_cosine_reaches_min_lr_at_the_last_step_and_only_falls_after_warmup():
    warm, total = 4, 20
    # right after warmup: the peak (progress 0); halfway through the 16 cosine steps: the
    # midpoint 0.1 + 0.9 * 0.5; a quarter in: 0.1 + 0.9 * (1 + cos(pi/4)) / 2
    assert schedules.cosine_lr(4, LR, MIN_LR, warm, total) == pytest.approx(1.0)
    assert schedules.cosine_lr(12, LR, MIN_LR, warm, total) == pytest.approx(0.55)
    quarter = 0.1 + 0.9 * (1 + math.sqrt(2) / 2) / 2
    assert schedules.cosine_lr(8, LR, MIN_LR, warm, total) == pytest.approx(quarter)
    assert schedules.cosine_lr(total, LR, MIN_LR, warm, total) == pytest.approx(MIN_LR)
    assert schedules.cosine_lr(total + 7, LR, MIN_LR, warm, total) == pytest.approx(MIN_LR)
    after = [schedules.cosine_lr(s, LR, MIN_LR, warm, total) for s in range(warm, total + 1)]
    assert all(b < a for a, b in zip(after, after[1:], strict=False))  # strictly falling
    assert min(after) >= MIN_LR - 1e-12


def test_wsd_stays_at_the_peak_until_its_decay_and_a_trunk_forever():
    for s in (4, 10, 59, 60):  # 60 is the decay's first step: progress 0, still the peak
        assert schedules.wsd_lr(s, LR, MIN_LR, 4, (60, 100), "linear") == LR
    for s in (4, 100, 10**6):
        assert schedules.wsd_lr(s, LR, MIN_LR, 4, None, "linear") == LR
    # the decay ends at min_lr and stays there
    for s in (100, 150):
        assert schedules.wsd_lr(s, LR, MIN_LR, 4, (60, 100), "linear") == pytest.approx(MIN_LR)
    # the last step of the decay is one step short of min_lr: 0.1 + 0.9 * 1/40
    assert schedules.wsd_lr(99, LR, MIN_LR, 4, (60, 100), "linear") == pytest.approx(0.1225)


@pytest.mark.parametrize(
    "shape, at_quarter, at_half",
    [
        # share of the way from min_lr to the peak that is left at progress 1/4 and 1/2
        ("linear", 0.75, 0.5),
        ("cosine", (1 + math.cos(math.pi / 4)) / 2, 0.5),
        ("sqrt", 0.5, 1 - math.sqrt(0.5)),
    ],
)
def test_decay_shapes_at_a_quarter_and_half_of_the_window(shape, at_quarter, at_half):
    window = (60, 100)  # 40 steps: progress 1/4 at step 70, 1/2 at step 80
    assert schedules.decay_factor(0.25, shape) == pytest.approx(at_quarter, abs=1e-15)
    assert schedules.decay_factor(0.5, shape) == pytest.approx(at_half, abs=1e-15)
    assert schedules.decay_factor(0.0, shape) == 1.0
    assert schedules.decay_factor(1.0, shape) == pytest.approx(0.0, abs=1e-15)
    got_q = schedules.wsd_lr(70, LR, MIN_LR, 4, window, shape)
    got_h = schedules.wsd_lr(80, LR, MIN_LR, 4, window, shape)
    assert got_q == pytest.approx(0.1 + 0.9 * at_quarter, rel=1e-12)
    assert got_h == pytest.approx(0.1 + 0.9 * at_half, rel=1e-12)
    lrs = [schedules.wsd_lr(s, LR, MIN_LR, 4, window, shape) for s in range(60, 101)]
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[0] == LR and lrs[-1] == pytest.approx(MIN_LR)


def test_the_three_shapes_differ_where_they_should():
    # a quarter in, sqrt has fallen furthest (to 0.5), cosine least (to ~0.854)
    sqrt_q, lin_q, cos_q = (schedules.decay_factor(0.25, s) for s in ("sqrt", "linear", "cosine"))
    assert sqrt_q < lin_q < cos_q
    # progress outside [0, 1] is clamped
    assert schedules.decay_factor(-1.0, "sqrt") == 1.0
    assert schedules.decay_factor(2.0, "cosine") == pytest.approx(0.0, abs=1e-15)


def _one_line_error(call, *args) -> str:
    with pytest.raises(ValueError) as info:
        call(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_check_refuses_unknown_schedule_and_shape_naming_the_key():
    msg = _one_line_error(schedules.check, "onecycle", "linear", 0.2)
    assert msg.startswith("optim.schedule must be one of cosine, wsd, wsd_s")
    assert "'onecycle'" in msg
    msg = _one_line_error(schedules.check, "wsd", "exp", 0.2)
    assert msg.startswith("optim.decay_shape must be one of linear, cosine, sqrt")
    assert "'exp'" in msg
    msg = _one_line_error(schedules.decay_factor, 0.5, "exp")
    assert msg.startswith("optim.decay_shape")
    for schedule in schedules.SCHEDULES:
        for shape in schedules.DECAY_SHAPES:
            schedules.check(schedule, shape, 0.2)  # every valid pair passes


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.0000001, 1.5, float("nan")])
def test_check_refuses_decay_frac_outside_zero_one(frac):
    msg = _one_line_error(schedules.check, "wsd", "linear", frac)
    assert msg.startswith("optim.decay_frac must be in (0, 1]")


@pytest.mark.parametrize("frac", [1e-9, 0.2, 1.0])
def test_check_accepts_decay_frac_in_zero_one(frac):
    schedules.check("wsd_s", "sqrt", frac)


def test_lr_at_and_phase_follow_the_plan_and_the_segments_decay():
    plan = {
        "schedule": "wsd_s",
        "lr": LR,
        "min_lr": MIN_LR,
        "warmup_steps": 4,
        "steps_total": 100,
        "decay_shape": "linear",
    }
    assert lr_at(0, plan, (80, 100)) == pytest.approx(0.25)
    assert lr_at(50, plan, (80, 100)) == LR
    assert lr_at(90, plan, (80, 100)) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 / 2
    assert lr_at(90, plan, None) == LR  # the same step on a stable trunk
    # phase of the update that led to `step` steps done: updates 0..3 warm up, update 80
    # is the decay's first
    assert [phase_of(s, plan, (80, 100)) for s in (1, 4, 5, 80, 81, 100)] == [
        "warmup",
        "warmup",
        "stable",
        "stable",
        "decay",
        "decay",
    ]
    assert phase_of(90, plan, None) == "stable"
    cosine = {**plan, "schedule": "cosine"}
    assert lr_at(100, cosine) == pytest.approx(MIN_LR)
    assert lr_at(52, cosine) == pytest.approx(0.55)  # (52 - 4) / 96 = 1/2
    assert phase_of(5, cosine, None) == "cosine"
