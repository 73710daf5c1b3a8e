"""The fitter's multi-start Newton search (analysis.fit.engine): its speed on the full
grid, its convergence flag, and the exact derivatives it steps on.

Expected values come from the law that generated synthetic data or from mathematics
(finite differences) -- never from running the fitter.
"""

from __future__ import annotations

import time

import numpy as np
from fit_fixtures import HOFFMANN, chinchilla_data

from analysis.fit import _LogProblem, _objective, fit


def test_full_grid_fit_is_fast() -> None:
    """4,500 starts on 240 points in well under the seconds a notebook loop takes."""
    n, d, loss = chinchilla_data(240, noise=0.01, seed=5)
    start = time.perf_counter()
    result = fit("chinchilla", (n, d), loss)
    assert time.perf_counter() - start < 10
    assert result.n_starts == 4500 and result.converged


def test_converged_flag_reflects_the_gradient() -> None:
    n, d, loss = chinchilla_data(60, noise=0.01, seed=3)
    stopped = fit("chinchilla", (n, d), loss, init=HOFFMANN, max_iter=1)
    assert not stopped.converged
    assert stopped.message.startswith("NOT converged")
    done = fit("chinchilla", (n, d), loss, init=HOFFMANN)
    assert done.converged and done.grad_norm <= 1e-12 * 60
    assert done.objective < stopped.objective


def test_gradient_and_hessian_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    for k in (1, 2):
        prob = _LogProblem(rng.uniform(15, 25, (k, 40)), np.log(rng.uniform(1.5, 3, 40)), 0.05)
        theta = np.column_stack(
            [rng.normal(0.5, 0.3, (6, 1)), rng.normal(8, 2, (6, k)), rng.uniform(0.2, 0.6, (6, k))]
        )
        weights = rng.integers(0, 3, (6, 40)).astype(float)
        _, g, hess, _ = _objective(prob, theta, weights)
        eps = 1e-6
        for p in range(theta.shape[1]):
            step = np.zeros_like(theta)
            step[:, p] = eps
            f_hi, g_hi = _objective(prob, theta + step, weights, order=1)
            f_lo, g_lo = _objective(prob, theta - step, weights, order=1)
            np.testing.assert_allclose(g[:, p], (f_hi - f_lo) / (2 * eps), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(
                hess[:, :, p], (g_hi - g_lo) / (2 * eps), rtol=1e-5, atol=1e-8
            )
