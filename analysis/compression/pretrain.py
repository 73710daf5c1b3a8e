"""The pretraining law the critical D needs: the source sweep's own Chinchilla fit, and
the critical D of every quantization fit at a size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.compression.critical import CriticalTokens, critical_tokens
from analysis.compression.result import CompressionFit
from analysis.io.downstream import COMPRESS_SUFFIX, FINETUNE_SUFFIX

if TYPE_CHECKING:
    from analysis.fit import FitResult


def pretrain_dir(path: str | Path) -> Path:
    """The pretraining sweep directory of ``path`` (itself, or the sweep whose
    ``-finetune``/``-compress`` directory it is)."""
    path = Path(path)
    for suffix in (FINETUNE_SUFFIX, COMPRESS_SUFFIX):
        if path.name.endswith(suffix):
            return path.parent / path.name[: -len(suffix)]
    return path


def load_pretrain(path: str | Path, params: str = "nonembed") -> pd.DataFrame:
    """The pretraining runs of the sweep of ``path``, one row per run, read as
    ``scaling-analyze fit`` reads them (:func:`analysis.io.load`).

    Raises
    ------
    DataError
        When the directory holds no pretraining records.
    """
    from analysis.io import load

    return load(pretrain_dir(path), params=params)


def fit_pretrain_law(
    runs: pd.DataFrame, *, bootstrap: int = 200, seed: int = 0, level: float = 0.95
) -> FitResult:
    """The Chinchilla fit ``L(N, D) = E + A/N^alpha + B/D^beta`` of the pretraining runs,
    as ``scaling-analyze fit --law chinchilla`` makes it."""
    from analysis.fit import fit_frame
    from analysis.io import require

    used = require(runs, ["params", "tokens", "loss"], "the chinchilla fit of the critical D")
    return fit_frame(used, "chinchilla", y="loss", bootstrap=bootstrap, seed=seed, level=level)


def critical_tokens_table(
    quantization: dict[str, CompressionFit], pretrain_law: FitResult, params: float
) -> list[CriticalTokens]:
    """The critical D of every quantization fit at ``params``, at each of its bits.

    ``B`` and ``beta`` come from ``pretrain_law`` (a chinchilla fit), with its bootstrap
    samples where it has them.
    """
    names = list(pretrain_law.law_form.param_names)
    b_samples = beta_samples = None
    if pretrain_law.bootstrap is not None and len(pretrain_law.bootstrap):
        b_samples = pretrain_law.bootstrap[:, names.index("B")]
        beta_samples = pretrain_law.bootstrap[:, names.index("beta")]
    out = []
    for fit in quantization.values():
        for bits in np.unique(fit.x[2]):
            out.append(
                critical_tokens(
                    fit,
                    params,
                    float(bits),
                    B=pretrain_law.params["B"],
                    beta=pretrain_law.params["beta"],
                    B_samples=b_samples,
                    beta_samples=beta_samples,
                    pretrain_identified=pretrain_law.identified,
                )
            )
    return out
