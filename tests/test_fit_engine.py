"""The fitter's multi-start Newton search (analysis.fit.engine): its speed on the full
grid and its convergence flag (the derivatives it steps on: tests/test_newton.py).

Expected values come from the law that generated synthetic data or from mathematics
(finite differences) -- never from running the fitter.
"""

from __future__ import annotations

import time

from fit_fixtures import HOFFMANN, chinchilla_data

from analysis.fit import fit


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
