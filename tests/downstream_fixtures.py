"""A tiny pretrained sweep with saved weights, trained once per test session.

Shared by the fine-tuning, compression and sources tests: two sizes of the smoke
experiment, trained for a few seconds each through `scaling.main.run` (the same path as
`scaling-train -m experiment=smoke train.save_model=true`).
"""

from __future__ import annotations

import functools
from pathlib import Path

SIZES = (16, 32)
# 64 steps of 1024 tokens (the smoke budget): seconds, and enough for weights that are
# no longer mostly the initial noise (below that, pruning *improves* the loss)
TOKENS = 65536


def compose(*overrides: str):
    """The project's config, composed with ``overrides`` as `scaling-train` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import scaling  # noqa: F401  (registers the config tree's resolvers)

    with initialize_config_module("sweeps", version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


@functools.cache
def pretrained_sweep(base: Path) -> Path:
    """Train the sizes of :data:`SIZES` with saved weights under ``base``; the sweep dir."""
    from scaling.main import run

    for d in SIZES:
        cfg = compose(
            "experiment=smoke",
            f"model.d_model={d}",
            f"train.tokens={TOKENS}",
            "train.save_model=true",
            # fp32, as compression evaluates: the saved weights must then give the
            # recorded loss to float rounding (bf16 autocast would differ by ~1e-5)
            "train.dtype=fp32",
            f"results_dir={base}",
        )
        summary = run(cfg)
        assert summary and summary["status"] == "completed", summary
    return base / "smoke"
