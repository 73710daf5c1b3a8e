"""The broken neural scaling laws (analysis/laws/broken.py) through the fitter: known
truths with one and two breaks recovered, and the default grid's pruned, levelled starts."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.fit import fit

BNSL_TRUTH = {"a": 0.5, "b": 20.0, "c0": 0.2, "c1": 0.4, "d1": 1e6, "f1": 0.5}


def test_bnsl_recovers_a_one_break_truth() -> None:
    """240 points over six decades with the break in the middle: exact without noise,
    and with 0.5 % noise the bootstrap intervals cover the truth."""
    from analysis.laws import get_law

    x = np.geomspace(1e3, 1e9, 240)
    clean = get_law("bnsl").predict(BNSL_TRUTH, x)
    exact = fit("bnsl", x, clean)
    assert exact.converged and exact.n_starts == 6000
    assert exact.params == pytest.approx(BNSL_TRUTH, rel=1e-6)
    rng = np.random.default_rng(0)
    noisy = fit("bnsl", x, clean * np.exp(rng.normal(0, 0.005, x.size)), bootstrap=200)
    assert noisy.converged and noisy.boot_converged > 0.95
    for name, value in BNSL_TRUTH.items():
        lo, hi = noisy.intervals[name]
        assert lo < value < hi, name
    assert noisy.identified


BNSL2_TRUTH = {"a": 0.5, "b": 20.0, "c0": 0.2, "c1": 0.4, "d1": 1e5, "f1": 0.5,
               "c2": -0.3, "d2": 1e7, "f2": 0.3}  # fmt: skip


def test_bnsl2_recovers_a_two_break_truth() -> None:
    """Two breaks two decades apart on six decades (the benchmark's set): exact without
    noise; with 0.5 % noise the search reaches the optimum of a fit started at the
    truth (a grid ranked by raw objective stopped 39 % above it, with a spurious second
    break at the end of the data), and the refits converge and cover the truth (at most
    one of nine intervals missing it, narrowly)."""
    from analysis.laws import get_law

    x = np.geomspace(1e3, 1e9, 240)
    clean = get_law("bnsl2").predict(BNSL2_TRUTH, x)
    exact = fit("bnsl2", x, clean)
    assert exact.converged and exact.n_starts == 5832
    assert exact.params == pytest.approx(BNSL2_TRUTH, rel=1e-6)
    rng = np.random.default_rng(0)
    y = clean * np.exp(rng.normal(0, 0.005, x.size))
    noisy = fit("bnsl2", x, y, bootstrap=200)
    from_truth = fit("bnsl2", x, y, init=BNSL2_TRUTH)
    assert noisy.converged and noisy.objective <= from_truth.objective * (1 + 1e-9)
    assert noisy.boot_converged > 0.95
    # nine 95 % intervals from one noisy draw: each misses with probability ~5 %, so
    # all nine covering is not guaranteed (on some CPUs' float rounding d2's upper bound
    # lands 0.03 % below the truth); at most one may miss, and then only narrowly
    missed = []
    for name, value in BNSL2_TRUTH.items():
        lo, hi = noisy.intervals[name]
        if not lo < value < hi:
            missed.append(name)
            assert min(abs(value - lo), abs(value - hi)) < 0.05 * (hi - lo), name
    assert len(missed) <= 1, missed


def test_the_two_break_grid_orders_its_breaks() -> None:
    """The default two-break grid keeps only starts with d1 < d2: each dropped row with
    d1 > d2 is a kept row with the breaks' labels swapped, the same curve."""
    from analysis.laws import get_law
    from analysis.starts import grid_points

    law = get_law("bnsl2")
    x = np.geomspace(1e3, 1e9, 60)
    logx, logy = np.log(x)[None], np.log(law.predict(BNSL2_TRUTH, x))
    points = grid_points(law, None, logx, logy, None)
    full = grid_points(law, law.default_grid(logx, logy), logx, logy, None)
    assert len(points) == 5832 and len(full) == 3**5 * 16 * 4
    assert (points[:, 4] < points[:, 7]).all()
    # every row of the full product with d1 > d2 is a kept row relabelled
    swapped = full[full[:, 4] > full[:, 7]][:, [0, 1, 2, 6, 7, 8, 3, 4, 5]]
    kept = {tuple(np.round(row, 12)) for row in points}
    assert all(tuple(np.round(row, 12)) in kept for row in swapped)
    curve_a = law.log_predict(full[full[:, 4] > full[:, 7]][:5], logx - logx.mean(), order=0)[0]
    curve_b = law.log_predict(swapped[:5], logx - logx.mean(), order=0)[0]
    np.testing.assert_allclose(curve_a, curve_b, rtol=1e-12)


def test_grid_starts_are_levelled_on_the_data() -> None:
    """Each default start is moved to the data's level: its log residuals have median 0,
    and its shape is kept (log ŷ moved by one constant at every point)."""
    from analysis.laws import get_law
    from analysis.starts import centre_of, grid_points, starts

    law = get_law("bnsl")
    x = np.geomspace(1e3, 1e9, 60)
    logx, logy = np.log(x)[None], np.log(law.predict(BNSL_TRUTH, x))
    centred = logx - centre_of(logx, law)[:, None]
    raw = grid_points(law, None, logx, logy, None)
    levelled = starts(law, None, None, logx, logy, None)
    s_raw = law.log_predict(raw, centred, order=0)[0]
    s_new = law.log_predict(levelled, centred, order=0)[0]
    ok = np.isfinite(s_raw).all(axis=1)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(np.median(logy - s_new[ok], axis=1), 0.0, atol=1e-9)
    moved = s_new[ok] - s_raw[ok]
    np.testing.assert_allclose(moved - moved[:, :1], 0.0, atol=1e-9)
    assert np.abs(moved).max() > 0.5  # the grid's levels were off, and were moved
    # a grid given is taken as given
    grid = law.default_grid(logx, logy)
    np.testing.assert_array_equal(starts(law, None, grid, logx, logy, None), raw)
