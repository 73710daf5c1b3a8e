"""What a fit assumes unless told: the fewest points it accepts (:func:`min_points`, or
``fit``'s ``min_points`` checked by :func:`points_needed`), the bootstrap resamples
:func:`analysis.fit.fit_frame` draws (:func:`default_bootstrap`), and the default grid
of starts with the names of its internal coordinates (:func:`default_grid`,
:func:`internal_names`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.laws import Law, get_law

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "default_bootstrap",
    "default_grid",
    "internal_names",
    "min_points",
    "points_needed",
]

#: Bootstrap resamples of a saturating or chinchilla fit when none are asked for (the
#: command line's default too): enough for stable 95 % percentile intervals (the 2.5 %
#: tail holds 5 samples) while keeping a chinchilla fit to seconds.
DEFAULT_BOOTSTRAP = 200

# A fit needs some residual degrees of freedom to mean anything: with as many points
# as parameters any curve of the form passes through them exactly and the intervals are
# meaningless. We ask for at least twice as many points as parameters (4 for power,
# 6 for saturating, 10 for chinchilla).
_MIN_POINTS_PER_PARAM = 2


def min_points(law: str | Law, free: int | None = None) -> int:
    """The fewest points :func:`analysis.fit.fit` accepts for ``law`` unless told (twice
    its parameter count, or twice ``free``, the parameters left free by ``fix`` and
    ``tie``)."""
    count = len(get_law(law).param_names) if free is None else free
    return _MIN_POINTS_PER_PARAM * count


def points_needed(law: str | Law, free: int | None = None, asked: int | None = None) -> int:
    """The fewest points a fit of ``law`` takes: :func:`min_points` when ``asked`` (the
    ``min_points`` keyword of :func:`analysis.fit.fit`) is None, else ``asked``, which
    must be an integer no smaller than the number of free parameters (``free``, or all
    the law's parameters).

    Raises
    ------
    ValueError
        When ``asked`` is not an integer, or is below the number of free parameters.
    """
    if asked is None:
        return min_points(law, free)
    law = get_law(law)
    count = len(law.param_names) if free is None else free
    if isinstance(asked, bool) or not isinstance(asked, (int, np.integer)):
        raise ValueError(f"min_points must be an integer or None, got {asked!r}")
    if asked < count:
        raise ValueError(
            f"min_points={asked} is below the {count} free parameter(s) of {law.name!r}: "
            f"fewer points than parameters cannot determine the fit; pass min_points >= "
            f"{count}, or min_points=None for the default ({min_points(law, free)}, twice "
            "the free parameters)"
        )
    return int(asked)


def default_bootstrap(law: str | Law) -> int:
    """Resamples :func:`analysis.fit.fit_frame` draws unless told: none for ``power``
    (its Student-t intervals are exact for a straight line in log-log with normal
    errors), :data:`DEFAULT_BOOTSTRAP` for the others."""
    return 0 if get_law(law).name == "power" else DEFAULT_BOOTSTRAP


def internal_names(law: str | Law) -> tuple[str, ...]:
    """Names of the fitter's internal coordinates (:meth:`Law.internal_names`).

    For chinchilla ``("e", "a", "b", "alpha", "beta")``, i.e. ``E = exp(e)``,
    ``A = exp(a)``, ``B = exp(b)``; for bnsl ``("log_a", "log_b", "c0", ...)``.
    """
    return get_law(law).internal_names()


def default_grid(law: str | Law, x: Any = None, y: Any = None) -> dict[str, np.ndarray]:
    """The default grid of starting points, keyed by :func:`internal_names`.

    The sums of powers have one grid for all data; ``bnsl``, ``bnsl2`` and ``kaplan``
    place theirs on the data ``x`` (one array, or a tuple ``(N, D)``) and ``y``, in
    coordinates centred on it (see each law's docstring).
    """
    law = get_law(law)
    logx = logy = None
    if x is not None:
        xs = x if isinstance(x, (tuple, list)) and law.n_inputs > 1 else (x,)
        logx = np.log(np.vstack([np.asarray(v, dtype=float) for v in xs]))
    if y is not None:
        logy = np.log(np.asarray(y, dtype=float))
    return law.default_grid(logx, logy)
