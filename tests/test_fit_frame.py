"""fit_frame (analysis.fit.frame): the columns it reads, the groups its bootstrap draws
(trunks, runs, a column), and the resamples it draws by default, as the command line.

Expected values come from the law that generated synthetic data -- never from running
the fitter.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fit_fixtures import HOFFMANN, chinchilla_data

from analysis.fit import fit, fit_frame
from analysis.io import DataWarning


def _trunk_chinchilla_frame(trunks: int, seed: int = 0) -> pd.DataFrame:
    """``trunks`` sizes 1e7..1e10, each a trunk with budgets at 5..160 tokens per
    parameter sharing a 2 % offset, on Hoffmann et al.'s law."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 1e10, trunks), 6)
    d = n * np.tile(np.geomspace(5, 160, 6), trunks)
    p = HOFFMANN
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    offsets = np.repeat(rng.normal(0, 0.02, trunks), 6)
    return pd.DataFrame(
        {"run": [f"r{i}" for i in range(n.size)], "trunk": np.repeat(np.arange(trunks), 6),
         "params": n, "tokens": d, "loss": loss * np.exp(offsets + rng.normal(0, 0.002, n.size))}
    )  # fmt: skip


def test_fit_frame_resamples_trunks_and_says_so() -> None:
    df = _trunk_chinchilla_frame(12)
    result = fit_frame(df, "chinchilla", bootstrap=100, seed=0)
    assert result.resampled == "trunks" and result.n_groups == 12
    assert "resampling 12 trunks" in result.message
    assert result.resampling() == (
        "100 resamples of 12 trunks (the budgets of one trunk drawn together)"
    )
    assert result.to_dict()["bootstrap"] == {
        "resamples": 100, "resampled": "trunks", "n_groups": 12
    }  # fmt: skip
    by_point = fit_frame(df, "chinchilla", bootstrap=100, seed=0, groups=None)
    assert by_point.resampled == "points" and by_point.n_groups == 72
    assert by_point.params == result.params
    # the shared offsets are a 2 % error per trunk that point resampling averages away
    width = {k: r.intervals["alpha"][1] - r.intervals["alpha"][0]
             for k, r in (("trunks", result), ("points", by_point))}  # fmt: skip
    assert width["trunks"] > 1.5 * width["points"]
    # a column named as the groups
    with pytest.warns(DataWarning, match="only 6 groups of 'batch'"):  # fewer than 10
        by_column = fit_frame(df.assign(batch=df["trunk"] // 2), "chinchilla", bootstrap=20,
                              groups="batch")  # fmt: skip
    assert by_column.resampled == "batch" and by_column.n_groups == 6
    assert by_column.resampling() == "20 resamples of 6 groups of 'batch'"
    with pytest.raises(ValueError, match="'nope'"):
        fit_frame(df, "chinchilla", groups="nope")
    with pytest.raises(ValueError, match="groups has 3 labels but there are 72 points"):
        fit("chinchilla", (df["params"], df["tokens"]), df["loss"], bootstrap=5, groups=[1, 2, 3])


def test_too_few_trunks_for_the_law_warn() -> None:
    """Chinchilla has five parameters and is fitted from ten points or more; a bootstrap
    over fewer trunks than that draws resamples that cannot pin every parameter."""
    with pytest.warns(DataWarning, match="bootstrap over only 6 trunks"):
        fit_frame(_trunk_chinchilla_frame(6), "chinchilla", bootstrap=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        fit_frame(_trunk_chinchilla_frame(10), "chinchilla", bootstrap=20)
        fit_frame(_trunk_chinchilla_frame(6), "chinchilla", bootstrap=0)


def test_fit_frame_bootstraps_as_the_command_line_does() -> None:
    n, d, loss = chinchilla_data(40, noise=0.01, seed=6)
    df = pd.DataFrame({"params": n, "tokens": d, "loss": loss})
    result = fit_frame(df, "chinchilla")
    assert result.bootstrap is not None and result.bootstrap.shape == (200, 5)
    assert set(result.intervals) >= {"E", "alpha", "a"}
    power = fit_frame(df.assign(flops=6 * n * d), "power", y="flops")
    assert power.bootstrap is None and power.interval_kind == "t"
    assert fit_frame(df, "chinchilla", bootstrap=0).intervals == {}
