"""Bootstrap intervals of a law fitted by damped Newton: every resample refitted at once,
in one batch, from the full-data optimum and its close rivals (:func:`_bootstrap`), and
the percentile intervals of the free parameters and of the derived quantities they move
(:func:`_intervals`). What a resample draws (points, runs or trunks) is
:mod:`analysis.resample`'s; ``power``'s intervals are :mod:`analysis.power`'s."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis import progress
from analysis.constraints import Constraints
from analysis.fit.engine import _TIE, _distinct_rows, _natural
from analysis.laws import Law
from analysis.newton import BatchState, newton
from analysis.power import percentile_intervals
from analysis.resample import resample_counts

__all__: list[str] = []


def _bootstrap(
    law: Law,
    prob: Any,
    state: BatchState,
    order: np.ndarray,
    f_rank: np.ndarray,
    centre: np.ndarray,
    cons: Constraints | None,
    *,
    weights: np.ndarray,
    bootstrap: int,
    seed: int,
    groups: np.ndarray | None,
    gtol: float,
    max_iter: int,
) -> tuple[np.ndarray, float]:
    """Refit ``bootstrap`` resamples of the data of ``prob`` from the optima of the
    search's final ``state`` (its rows ranked by ``order``, ``f_rank`` their finite
    objectives); returns the natural parameters of each resample's best refit and the
    share of those that converged."""
    n = len(weights)
    # Each resample starts from the full-data optimum, and from up to two other
    # distinct local optima the grid found whose objective is within 25 % of the best:
    # resampling moves the objective by a few percent (its relative standard error
    # is about 1/sqrt(n)), enough for a resample to prefer a close rival basin but
    # not one that is far worse.
    rivals = order[f_rank[order] <= 1.25 * f_rank[order[0]]]
    seeds = state.theta[_distinct_rows(state.theta, rivals, count=3)]
    counts = resample_counts(n, bootstrap, seed, groups)
    boot_w = counts * weights  # same reduction as the full fit
    n_seed = len(seeds)
    theta0 = np.repeat(seeds[None], bootstrap, axis=0).reshape(-1, state.theta.shape[1])
    w_rep = np.repeat(boot_w, n_seed, axis=0)
    tol_rep = gtol * w_rep.sum(axis=1)
    with progress.bar(bootstrap * n_seed, f"{law.name} bootstrap") as update:
        boot = newton(prob, theta0, w_rep, tol_rep, max_iter=max_iter, on_progress=update)
    f_boot = np.where(np.isfinite(boot.f), boot.f, np.inf).reshape(bootstrap, n_seed)
    conv = boot.converged.reshape(bootstrap, n_seed)
    f_min = f_boot.min(axis=1, keepdims=True)
    tied_conv = (f_boot <= f_min + _TIE * np.abs(f_min)) & conv
    pick = np.where(tied_conv.any(axis=1), tied_conv.argmax(axis=1), f_boot.argmin(axis=1))
    rows = np.arange(bootstrap) * n_seed + pick
    samples = _natural(law, prob, boot.theta[rows], centre, cons)
    return samples, float(boot.converged[rows].mean())


def _intervals(
    law: Law, samples: np.ndarray, best: np.ndarray, level: float, cons: Constraints | None
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the free parameters and of the derived quantities that
    the constraints leave free to move (with ``alpha = beta`` tied, chinchilla's
    ``a = beta/(alpha+beta)`` is 1/2 by construction and gets none)."""
    der = law.derived(samples)
    if cons is None:
        names = list(law.param_names) + list(der)
        table = np.column_stack([samples] + list(der.values()))
        return percentile_intervals(names, table, level)
    free = cons.free_index()
    names = [law.param_names[i] for i in free]
    columns = [samples[:, i] for i in free]
    moved = best.copy()
    moved[free] *= 1.1  # every free parameter moved: a derived quantity that stays put
    moved = cons.impose_natural(moved)  # follows from the constraints alone
    at_best, at_moved = law.derived(best), law.derived(moved)
    for name, column in der.items():
        if abs(float(at_moved[name]) - float(at_best[name])) > 1e-12 * abs(float(at_best[name])):
            names.append(name)
            columns.append(column)
    return percentile_intervals(names, np.column_stack(columns), level)
