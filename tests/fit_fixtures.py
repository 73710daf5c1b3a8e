"""Synthetic data shared by the fitter's tests (test_fit*.py): Hoffmann et al.'s
published law and points drawn from it."""

from __future__ import annotations

import numpy as np

# Hoffmann et al.'s published values (the paper's fit, which stopped short of the optimum).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_data(
    count: int, noise: float, seed: int, params: dict[str, float] = HOFFMANN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` runs of sizes N 1e7..1e10 and D/N 2..200 (log-uniform) on ``params``'
    law, with log-normal noise of s.d. ``noise``: ``(N, D, loss)``."""
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), count))
    d = n * np.exp(rng.uniform(np.log(2), np.log(200), count))
    loss = params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]
    return n, d, loss * np.exp(rng.normal(0, noise, count))
