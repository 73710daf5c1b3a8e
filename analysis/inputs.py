"""What a fit accepts: one-dimensional, finite, positive columns of one length, and
enough points for the law's free parameters. Error messages name the column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.laws import Law

__all__ = ["check_column", "check_data"]


def check_column(values: Any, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but the other inputs have {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        kind = "NaN" if np.isnan(arr[bad[0]]) else "infinite"
        raise ValueError(
            f"{name} has {bad.size} NaN or infinite value(s) (first: {kind} at row "
            f"{bad[0]}); drop or fill them before fitting"
        )
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} non-positive value(s) (first: {float(arr[bad[0]])!r} at row "
            f"{bad[0]}); every value must be > 0 to fit in log space"
        )
    return arr


def check_data(
    law: Law,
    x: Any,
    y: Any,
    x_names: Sequence[str] | None,
    y_name: str | None,
    need: int,
    free: int | None = None,
    why: str | None = None,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Validate and convert the inputs of a fit of ``law`` (at least ``need`` points,
    ``free`` its free parameters when some are fixed or tied; ``why`` says where
    ``need`` comes from when it is not twice those, e.g. ``"min_points=5"``); error
    messages name the offending column."""
    if law.n_inputs == 1:
        # One input: a bare array (or list of numbers), or a 1-tuple holding it.
        xs = tuple(x) if isinstance(x, tuple) and len(x) == 1 else (x,)
    else:
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    if len(xs) != law.n_inputs:
        raise ValueError(
            f"law {law.name!r} needs {law.n_inputs} input array(s) "
            f"({', '.join(law.variables)}), got {len(xs)}"
        )
    if x_names is None:
        x_labels = [f"input {v!r}" for v in law.variables]
    else:
        x_labels = [f"column {c!r}" for c in x_names]
    y_label = f"column {y_name!r}" if y_name is not None else f"target {law.target!r}"
    y_arr = check_column(y, y_label, None)
    x_arrs = tuple(check_column(v, lab, len(y_arr)) for v, lab in zip(xs, x_labels, strict=True))
    if len(y_arr) < need:
        if why is None:
            what = (
                f"its {len(law.param_names)} parameters"
                if free is None
                else f"its {free} free parameter(s)"
            )
            why = f"twice {what}"
        raise ValueError(
            f"too few points to fit {law.name!r}: got {len(y_arr)}, need at least {need} ({why})"
        )
    return x_arrs, y_arr
