"""The starts of a fit: the law's grid of starting points (or one ``init``), with the
fixed and tied parameters imposed, in the coordinates the engine works in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from analysis.constraints import Constraints
from analysis.laws import Law

__all__ = ["centre_of", "grid_points", "starts"]


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
        return points
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
    if law.grid_centred and cons is None:
        return points
    return law.shift(points, centre, -1.0)
