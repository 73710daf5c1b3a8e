"""Learning-rate schedules: cosine, warmup-stable-decay (WSD) and its repeated form WSD-S.

Every schedule starts with a linear warmup to the peak rate. Then:

- ``cosine``: down to ``min_lr`` at the run's last step (Loshchilov & Hutter 2017; the
  schedule of Chinchilla, Hoffmann et al. 2022). Its intermediate points are *not* what a
  shorter run would reach: each budget needs its own run.
- ``wsd``: constant at the peak, then one decay over the last ``decay_frac`` of the run
  (Hu et al. 2024, MiniCPM; Hägele et al. 2024 show a 20 % cooldown matches cosine at
  every budget). With several budgets the stable *trunk* never decays: each budget's
  cooldown forks from the trunk at ``budget · (1 − decay_frac)``.
- ``wsd_s``: one trajectory through every budget; each period between two budgets ends
  with a decay over ``decay_frac`` of that period, after which the rate returns to the
  peak (Wen et al. 2024, "river valley"; OLMo-core's model ladder).

A decay runs from the peak to ``min_lr`` with one of three shapes: ``linear``,
``cosine``, or ``sqrt`` (Hägele et al.'s 1 − √progress, their best).

Which steps decay is decided by :mod:`scaling.budgets`; this module only turns a step
and a decay window into a rate.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "wsd_s")
DECAY_SHAPES = ("linear", "cosine", "sqrt")


def check(schedule: str, decay_shape: str, decay_frac: float) -> None:
    """Raise a one-line ``ValueError`` naming the bad ``optim`` key and its valid values."""
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if decay_shape not in DECAY_SHAPES:
        raise ValueError(
            f"optim.decay_shape must be one of {', '.join(DECAY_SHAPES)}, got {decay_shape!r}"
        )
    if not 0 < decay_frac <= 1:
        raise ValueError(f"optim.decay_frac must be in (0, 1], got {decay_frac!r}")


def decay_factor(progress: float, shape: str) -> float:
    """How much of the way from ``min_lr`` to the peak is left: 1 at the start, 0 at the end."""
    p = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - p
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if shape == "sqrt":
        return 1.0 - math.sqrt(p)
    raise ValueError(f"optim.decay_shape must be one of {', '.join(DECAY_SHAPES)}, got {shape!r}")


def warmup_lr(step: int, lr: float, warmup_steps: int) -> float | None:
    """The warmup rate at ``step`` (0-based: the rate of the step's update), None after it."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return None


def cosine_lr(step: int, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to ``lr``, then cosine down to ``min_lr`` at ``total_steps``."""
    warm = warmup_lr(step, lr, warmup_steps)
    if warm is not None:
        return warm
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (lr - min_lr) * decay_factor(progress, "cosine")


def wsd_lr(
    step: int,
    lr: float,
    min_lr: float,
    warmup_steps: int,
    decay: tuple[int, int] | None,
    shape: str,
) -> float:
    """Linear warmup, the peak, and a decay from ``decay[0]`` to ``decay[1]`` (steps).

    ``decay`` is None on the stable trunk of a forked WSD run, which never decays. The
    rate of the last step before ``decay[1]`` is one step short of ``min_lr``, as the
    cosine schedule's is.
    """
    warm = warmup_lr(step, lr, warmup_steps)
    if warm is not None:
        return warm
    if decay is None or step < decay[0]:
        return lr
    start, end = decay
    progress = (step - start) / max(1, end - start)
    return min_lr + (lr - min_lr) * decay_factor(progress, shape)
