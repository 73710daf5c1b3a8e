"""The generic engine: every law's Jacobian and second derivatives against finite
differences, the Huber objective built from them, the fused sum-of-powers objective
held to the generic one, and fixed and tied parameters recovering a known truth.

Expected values are finite differences of the laws' own predictions (``Law.predict``,
written independently of the derivatives), or the synthetic truths.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.constraints import make_constraints
from analysis.fit import fit
from analysis.laws import LAWS, get_law
from analysis.newton import LawProblem, LogProblem, objective

NEWTON_LAWS = [name for name, law in LAWS.items() if law.newton_fitted]


def _data(law_name: str, rng: np.random.Generator, n: int = 30):
    """Centred log inputs, and rows of centred internal coordinates near a sane law."""
    law = get_law(law_name)
    logx = rng.uniform(-3, 3, (law.n_inputs, n))
    if law_name == "data_constrained":  # log rho_N, log rho_D >= 0: up to 20 repetitions
        logx[2:] = rng.uniform(0, 3, (2, n))
    rows = {
        "saturating": lambda: [rng.normal(0.5, 0.2), rng.normal(1, 0.3), rng.uniform(0.2, 0.6)],
        "chinchilla": lambda: [rng.normal(0.5, 0.2), rng.normal(1, 0.3), rng.normal(1, 0.3),
                               rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6)],
        "bnsl": lambda: [rng.normal(-1, 0.3), rng.normal(0, 0.3), rng.uniform(0, 0.5),
                         rng.normal(0.5, 0.3), rng.normal(0, 1), rng.normal(-0.5, 0.3)],
        "bnsl2": lambda: [rng.normal(-1, 0.3), rng.normal(0, 0.3), rng.uniform(0, 0.5),
                          rng.normal(0.5, 0.3), rng.normal(-1, 0.5), rng.normal(-0.5, 0.3),
                          rng.normal(-0.3, 0.3), rng.normal(1, 0.5), rng.normal(-0.5, 0.3)],
        "kaplan": lambda: [rng.normal(8, 1), rng.normal(6, 1), rng.uniform(0.05, 0.3),
                           rng.uniform(0.05, 0.3)],
        "data_constrained": lambda: [rng.normal(0.5, 0.2), rng.normal(1, 0.3),
                                     rng.normal(1, 0.3), rng.uniform(0.2, 0.6),
                                     rng.uniform(0.2, 0.6), rng.normal(1.5, 0.5),
                                     rng.normal(2.5, 0.5)],
        "overtraining": lambda: [rng.normal(0.3, 0.2), rng.normal(-1, 0.3), rng.normal(-1, 0.3),
                                 rng.uniform(0.05, 0.5)],
    }[law_name]  # fmt: skip
    theta = np.array([rows() for _ in range(5)])
    return law, logx, theta


def _log_predict_from_predict(law, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """log ŷ from the natural parameters and Law.predict, centring undone by hand
    (zero centre: centred and uncentred coordinates coincide)."""
    values = law.to_params(law.shift(theta, np.zeros(law.n_inputs), +1.0))
    params = {p: values[:, i, None] for i, p in enumerate(law.param_names)}
    return np.log(law.predict(params, *np.exp(logx)))


@pytest.mark.parametrize("name", NEWTON_LAWS)
def test_log_prediction_matches_the_law(name: str) -> None:
    law, logx, theta = _data(name, np.random.default_rng(1))
    s, _, _ = law.log_predict(theta, logx, order=0)
    np.testing.assert_allclose(s, _log_predict_from_predict(law, theta, logx), rtol=1e-12,
                               atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("name", NEWTON_LAWS)
def test_jacobian_and_second_derivatives_match_finite_differences(name: str) -> None:
    law, logx, theta = _data(name, np.random.default_rng(2))
    s, jac, hess = law.log_predict(theta, logx, order=2)
    p_count = theta.shape[1]
    eps = 1e-5
    for p in range(p_count):
        step = np.zeros_like(theta)
        step[:, p] = eps
        s_hi = _log_predict_from_predict(law, theta + step, logx)
        s_lo = _log_predict_from_predict(law, theta - step, logx)
        np.testing.assert_allclose(np.broadcast_to(jac[p], s.shape), (s_hi - s_lo) / (2 * eps),
                                   rtol=1e-6, atol=1e-8, err_msg=f"{name} d/d{p}")  # fmt: skip
        _, jac_hi, _ = law.log_predict(theta + step, logx, order=1)
        _, jac_lo, _ = law.log_predict(theta - step, logx, order=1)
        for q in range(p_count):
            fd = (np.broadcast_to(jac_hi[q], s.shape) - np.broadcast_to(jac_lo[q], s.shape)) / (
                2 * eps
            )
            exact = hess.get((min(p, q), max(p, q)), 0.0)
            np.testing.assert_allclose(np.broadcast_to(exact, s.shape), fd, rtol=1e-5,
                                       atol=1e-7, err_msg=f"{name} d2/d{p}d{q}")  # fmt: skip


def _assert_objective_derivatives(prob, theta, weights, tol: tuple[float, ...]) -> None:
    """The objective's gradient and Hessian against central differences of its value and
    gradient; ``tol``: the gradient's rtol and atol, then the Hessian's."""
    _, g, hess, scale = objective(prob, theta, weights)
    assert (scale > 0).all()
    eps = 1e-6
    for p in range(theta.shape[1]):
        step = np.zeros_like(theta)
        step[:, p] = eps
        f_hi, g_hi = objective(prob, theta + step, weights, order=1)
        f_lo, g_lo = objective(prob, theta - step, weights, order=1)
        np.testing.assert_allclose(g[:, p], (f_hi - f_lo) / (2 * eps), rtol=tol[0], atol=tol[1])
        np.testing.assert_allclose(
            hess[:, :, p], (g_hi - g_lo) / (2 * eps), rtol=tol[2], atol=tol[3]
        )


@pytest.mark.parametrize("name", NEWTON_LAWS)
def test_huber_objective_derivatives_match_finite_differences(name: str) -> None:
    rng = np.random.default_rng(3)
    law, logx, theta = _data(name, rng)
    logy = law.log_predict(theta[:1], logx, order=0)[0][0] + rng.normal(0, 0.05, logx.shape[1])
    prob = LawProblem(law, logx, logy, delta=0.02)
    weights = rng.integers(0, 3, (len(theta), logx.shape[1])).astype(float)
    _assert_objective_derivatives(prob, theta, weights, tol=(1e-5, 1e-8, 1e-4, 1e-6))


def test_the_fused_sum_of_powers_derivatives_match_finite_differences() -> None:
    """The sum-of-powers problem the Chinchilla fit steps on, with one and two powers."""
    rng = np.random.default_rng(0)
    for k in (1, 2):
        prob = LogProblem(rng.uniform(15, 25, (k, 40)), np.log(rng.uniform(1.5, 3, 40)), 0.05)
        theta = np.column_stack(
            [rng.normal(0.5, 0.3, (6, 1)), rng.normal(8, 2, (6, k)), rng.uniform(0.2, 0.6, (6, k))]
        )
        weights = rng.integers(0, 3, (6, 40)).astype(float)
        _assert_objective_derivatives(prob, theta, weights, tol=(1e-6, 1e-9, 1e-5, 1e-8))


@pytest.mark.parametrize("name", ["saturating", "chinchilla"])
def test_fused_sum_of_powers_objective_equals_the_generic_one(name: str) -> None:
    law, logx, theta = _data(name, np.random.default_rng(4))
    rng = np.random.default_rng(5)
    logy = np.log(rng.uniform(1.5, 3.0, logx.shape[1]))
    weights = rng.integers(0, 3, (len(theta), logx.shape[1])).astype(float)
    fused = objective(LogProblem(logx, logy, 0.05), theta, weights)
    generic = objective(LawProblem(law, logx, logy, 0.05), theta, weights)
    for a, b in zip(fused, generic, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_affine_problem_derivatives_match_finite_differences() -> None:
    """Chinchilla with E fixed and beta tied to alpha, over its 3 free coordinates."""
    law, logx, theta = _data("chinchilla", np.random.default_rng(6))
    centre = np.array([18.0, 21.0])
    logy = np.log(np.random.default_rng(7).uniform(1.5, 3.0, logx.shape[1]))
    cons = make_constraints(law, ["E=1.7"], ["alpha=beta"])
    prob = cons.problem(LogProblem(logx, logy, 0.05), centre)
    phi = theta[:, [1, 2, 3]]
    _, g, hess, _ = objective(prob, phi, np.ones(logx.shape[1]))
    eps = 1e-6
    for p in range(3):
        step = np.zeros_like(phi)
        step[:, p] = eps
        f_hi, g_hi = objective(prob, phi + step, np.ones(logx.shape[1]), order=1)
        f_lo, g_lo = objective(prob, phi - step, np.ones(logx.shape[1]), order=1)
        np.testing.assert_allclose(g[:, p], (f_hi - f_lo) / (2 * eps), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(hess[:, :, p], (g_hi - g_lo) / (2 * eps), rtol=1e-4, atol=1e-6)
    # every full point it maps to has E fixed and beta = alpha, whatever phi
    full = law.shift(prob.full(phi), centre, +1.0)
    np.testing.assert_allclose(full[:, 0], np.log(1.7), rtol=1e-12)
    np.testing.assert_allclose(full[:, 4], full[:, 3], rtol=1e-12)


# --------------------------------------------------------------------------------------
# Fixed and tied parameters recover a known truth
# --------------------------------------------------------------------------------------

TIED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.3, "beta": 0.3}


def _tied_chinchilla(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 120))
    d = n * np.exp(rng.uniform(np.log(2), np.log(200), 120))
    p = TIED
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    return n, d, loss * np.exp(rng.normal(0, noise, n.size))


def test_fixed_and_tied_chinchilla_recovers_its_truth_exactly() -> None:
    n, d, loss = _tied_chinchilla(0.0)
    result = fit("chinchilla", (n, d), loss, fix={"E": 1.69}, tie=["alpha=beta"])
    assert result.converged
    assert result.params["E"] == 1.69  # exactly the value given
    assert result.params["beta"] == result.params["alpha"]
    for name, value in TIED.items():
        assert result.params[name] == pytest.approx(value, rel=1e-6)
    assert result.fixed == {"E": 1.69} and result.tied == {"beta": "alpha"}
    assert result.n_starts == 6 * 6 * 5  # the grid over the free a, b, alpha only


def test_intervals_are_for_the_free_parameters_only() -> None:
    n, d, loss = _tied_chinchilla(0.01, seed=1)
    result = fit("chinchilla", (n, d), loss, fix={"E": 1.69}, tie={"beta": "alpha"},
                 bootstrap=100, seed=0)  # fmt: skip
    # a = beta/(alpha+beta) is 1/2 by construction: no interval for it either
    assert set(result.intervals) == {"A", "B", "alpha"}
    for name in ("A", "B", "alpha"):
        lo, hi = result.intervals[name]
        assert lo < TIED[name] < hi
    assert (result.bootstrap[:, 0] == 1.69).all()
    assert (result.bootstrap[:, 4] == result.bootstrap[:, 3]).all()
    d_out = result.to_dict()
    assert d_out["fixed"] == {"E": 1.69} and d_out["tied"] == {"beta": "alpha"}
    assert result.identified
    # fixing an exponent alone leaves a = beta/(alpha+beta) free to move: it keeps one
    alone = fit("chinchilla", (n, d), loss, fix={"alpha": 0.3}, bootstrap=50, seed=0)
    assert set(alone.intervals) == {"E", "A", "B", "beta", "a", "b"}


def test_a_fixed_break_sharpness_recovers_a_bnsl_truth() -> None:
    truth = {"a": 0.5, "b": 20.0, "c0": 0.2, "c1": 0.4, "d1": 1e6, "f1": 0.5}
    x = np.geomspace(1e3, 1e9, 60)
    y = get_law("bnsl").predict(truth, x)
    result = fit("bnsl", x, y, fix=["f1=0.5"], bootstrap=20)
    assert result.converged and result.params["f1"] == 0.5
    for name, value in truth.items():
        assert result.params[name] == pytest.approx(value, rel=1e-5)
    assert set(result.intervals) == {"a", "b", "c0", "c1", "d1"}


def test_a_row_with_overflowed_derivatives_stops_where_it_is() -> None:
    """A start whose objective is finite but whose derivatives overflowed (a break
    sharpness of e^-400) takes no step and stays unconverged; the other rows of the
    batch are minimised as if it were not there."""
    from analysis.newton import newton

    law = get_law("bnsl")
    logx = np.linspace(-3, 3, 40)[None]
    good = [-1.0, 0.0, 0.3, 0.5, 0.0, np.log(0.5)]
    theta = np.array([good, [-1.0, 0.0, 0.3, 0.5, 0.001, -400.0]])
    logy = law.log_predict(theta[:1], logx, order=0)[0][0] + 0.01 * np.sin(np.arange(40))
    prob = LawProblem(law, logx, logy, 1e-3)
    f, g, hess, _ = objective(prob, theta, np.ones(40))
    assert np.isfinite(f).all() and not np.isfinite(hess[1]).all()  # the case at hand
    start = theta + [[0.05, -0.05, 0.02, 0.0, 0.1, 0.0], [0.0] * 6]
    state = newton(prob, start, np.ones(40), np.full(2, 1e-10), max_iter=200)
    alone = newton(prob, start[:1], np.ones(40), np.full(1, 1e-10), max_iter=200)
    assert state.converged.tolist() == [True, False]
    assert state.nit[1] == 0 and (state.theta[1] == start[1]).all()
    np.testing.assert_array_equal(state.theta[0], alone.theta[0])
