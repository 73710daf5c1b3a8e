"""The starts of a fit: the law's grid of starting points (or one ``init``), with the
fixed and tied parameters imposed, in the coordinates the engine works in.

The default grid is a product of axes placed on the data; a law may drop rows of it
that duplicate others (:meth:`Law.prune_grid`) and have its starts moved to the
level of the data (:meth:`Law.level_coords`, :func:`level_starts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from analysis.constraints import Constraints
from analysis.laws import Law

__all__ = ["centre_of", "grid_points", "level_starts", "starts"]


def grid_points(
    law: Law,
    grid: Mapping[str, Sequence[float]] | None,
    logx: np.ndarray,
    logy: np.ndarray,
    cons: Constraints | None,
) -> np.ndarray:
    """The starts as rows of internal coordinates: uncentred, or centred when the law's
    grid is (:attr:`Law.grid_centred`); with constraints, uncentred and imposed."""
    names = law.internal_names()
    axes = dict(law.default_grid(logx, logy) if grid is None else grid)
    # A fixed or tied parameter's axis may be left out: it is set from the constraint.
    bound = set() if cons is None else {
        names[law.param_names.index(p)] for p in (*cons.fixed, *cons.tied)
    }  # fmt: skip
    unknown = set(axes) - set(names)
    missing = set(names) - set(axes) - bound
    if unknown or missing:
        need = [n for n in names if n not in bound]
        raise ValueError(
            f"grid for {law.name!r} must have exactly the keys {', '.join(need)} "
            "(log-coefficients and exponents)"
        )
    for name in bound:
        axes[name] = [0.0]  # a placeholder, replaced below
    mesh = np.meshgrid(*[np.asarray(axes[nm], dtype=float) for nm in names], indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    if cons is None:
        # Only the default grid, unconstrained, is pruned: a grid given is taken as
        # given, and a fixed or tied parameter can break the symmetry that makes rows
        # duplicates (a fixed break position gives the breaks an order).
        return law.prune_grid(points) if grid is None else points
    if law.grid_centred:
        # The fixed values are set in centred coordinates too, where they are the same
        # (an exponent), before undoing the centring; the rest is imposed after it.
        points = law.shift(cons.impose(points), centre_of(logx, law), +1.0)
    points = cons.impose(points)
    _, first = np.unique(points, axis=0, return_index=True)
    return points[np.sort(first)]


def centre_of(logx: np.ndarray, law: Law | None = None) -> np.ndarray:
    """Where the fitter centres ``log x``: the mean of each input over the data, 0 for
    the inputs ``law`` reads uncentred (:attr:`Law.centred_inputs`)."""
    centre = logx.mean(axis=1)
    if law is not None:
        centre = np.where(np.asarray(law.centred_inputs[: len(centre)], dtype=bool), centre, 0.0)
    return centre


def starts(
    law: Law,
    init: Mapping[str, float] | None,
    grid: Mapping[str, Sequence[float]] | None,
    logx: np.ndarray,
    logy: np.ndarray,
    cons: Constraints | None,
) -> np.ndarray:
    """The starts in centred internal coordinates (all of them, free or not)."""
    centre = centre_of(logx, law)
    if init is not None:
        if cons is not None:  # fixed and tied parameters may be left out of init
            init = {**{p: 1.0 for p in (*cons.fixed, *cons.tied)}, **init}
        start = law.to_internal(init)[None, :]
        if cons is not None:
            start = cons.impose(start)
        return law.shift(start, centre, -1.0)
    points = grid_points(law, grid, logx, logy, cons)
    if not (law.grid_centred and cons is None):
        points = law.shift(points, centre, -1.0)
    bound = set() if cons is None else {*cons.fixed, *cons.tied, *cons.tied.values()}
    coords = law.level_coords
    if grid is None and coords and not bound & {law.param_names[i] for i in coords}:
        points = level_starts(law, points, logx - centre[:, None], logy)
    return points


def level_starts(law: Law, points: np.ndarray, logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Move each start (rows of centred internal coordinates) along the law's level
    coordinates (:attr:`Law.level_coords`) by the median of its log residuals
    ``log y - log ŷ`` at centred ``logx``.

    Moving them together by ``δ`` adds ``δ`` to ``log ŷ`` everywhere, so the start's
    shape is kept and its level set where the fit's objective wants it: the Huber loss
    with its small threshold is nearly the sum of absolute log residuals, whose best
    constant shift is their median. A grid's level axes are coarse (a factor of e^1.5
    for the broken power laws); off by that much, every start's objective is dominated
    by its level, and the best shapes are not the starts ranked first. Starts whose
    prediction is not finite are left where they are (the search drops them).
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s, _, _ = law.log_predict(points, logx, order=0)
        shift = np.median(logy - s, axis=1)
    out = np.array(points, dtype=float, copy=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    for i in law.level_coords:
        out[:, i] += shift
    return out
