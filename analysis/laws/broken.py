"""Broken neural scaling laws (Caballero et al. 2022, "Broken Neural Scaling Laws",
eq. 1): a power law whose exponent changes smoothly at each of a few breaks,

    y = a + b·x^(-c0)·Π_i (1 + (x/d_i)^(1/f_i))^(-c_i·f_i),

with ``a`` the floor, ``b`` and ``c0`` the first segment's coefficient and exponent,
and for break i its position ``d_i``, the change ``c_i`` of the log-log slope across it
(the slope goes from ``-c0`` to ``-(c0 + c_1)``, ...) and its sharpness ``f_i`` (the
width of the bend in units of ``log x``; small is sharp). ``bnsl`` has one break,
``bnsl2`` two.

In the fitter's coordinates (``a``, ``b``, ``d_i``, ``f_i`` as logs, ``X = log x``) the
log of the prediction is a log-sum-exp of two terms,

    log ŷ = LSE(log a, log b - c0·X - Σ_i c_i·f_i·softplus((X - log d_i)/f_i)),

since ``(1 + (x/d)^(1/f))^(-c·f) = exp(-c·f·log(1 + e^((X - log d)/f)))``; it is
differentiated exactly by :mod:`analysis.laws.jets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.laws.base import Law, fmt_number
from analysis.laws.jets import exp, lse, reciprocal, softplus, unpack, variables

__all__ = ["BrokenPowerLaw"]


def _names(breaks: int) -> tuple[str, ...]:
    out = ["a", "b", "c0"]
    for i in range(1, breaks + 1):
        out += [f"c{i}", f"d{i}", f"f{i}"]
    return tuple(out)


def _flags(breaks: int) -> tuple[bool, ...]:
    return (True, True, False) + (False, True, True) * breaks


@dataclass(frozen=True)
class BrokenPowerLaw(Law):
    """A broken neural scaling law with ``breaks`` breaks (1: ``bnsl``, 2: ``bnsl2``).

    Default grid of starts (``default_grid``, in coordinates centred on the data:
    ``log x`` less its mean ``m``), placed on the data because a break can only be found
    where there are points, and a floor only below them:

    * ``log_a``: ``a`` at 0.001, 0.3, 0.6 and 0.9 times the smallest ``y`` (from no
      floor to one just under the data); two breaks: 0.001, 0.5, 0.97 (data that reach
      their floor end within a few percent of it);
    * ``log_b`` (centred: ``log b - c0·m``, the first segment at the centre of the
      data): ``e^-4.5 .. e^0`` times the median ``y`` (4 values), so that ``y - a`` is
      matched whatever share of ``y`` the floor takes;
    * ``c0``: -0.5, 0, 0.25, 0.5, 1 (from a rising first segment, as in double
      descent, to the steep slopes of error rates on easy tasks);
    * ``c_i``: -1, -0.3, 0.3, 1, 2 (the slope flattening or steepening by a lot or a
      little);
    * ``log_d_i`` (centred: ``log d_i - m``): 5 positions evenly inside the range of
      ``log x`` (1/6 to 5/6 of it); two breaks: 4 (1/5 to 4/5), the first break before
      the second (:meth:`prune_grid`: 6 pairs of the 16);
    * ``log_f_i``: ``f`` at 0.1, 0.5, 2 (sharp to a bend over 2 e-folds of x); two
      breaks: 0.2, 1.

    One break: 4 x 4 x 5 x 5 x 5 x 3 = 6,000 starts. Two: 3 x 3 x 3 x 3 x 3 (a, b, c0,
    c1, c2 on 3 values each) x 6 (d1 < d2) x 2 x 2 (f1, f2) = 5,832.

    Before they are ranked, the starts are moved to the level of the data: ``log a``
    and ``log b`` together by the median log residual (:attr:`level_coords`), which
    keeps each start's shape. The grid's level axes then set the floor's share of the
    loss rather than the loss itself, and the starts are ranked by shape. With the
    patience of 100 iterations (:attr:`search_patience`) this found the optimum of 17
    of 20 synthetic two-break sets (four truths, five noise draws) where the grid of
    15,552 starts ranked by their raw objective found 8, and that of 15 of 15 one-break sets
    where it found 12.
    """

    name: str = "bnsl"
    param_names: tuple[str, ...] = _names(1)
    n_inputs: int = 1
    variables: tuple[str, ...] = ("x",)
    target: str = "y"
    log_params: tuple[bool, ...] = _flags(1)
    breaks: int = 1

    def _log_curve(self, values: list[Any], logx: Any) -> Any:
        """``log(y - a)``: the broken power law without its floor, in log space."""
        out = np.log(values[1]) - values[2] * logx
        for i in range(self.breaks):
            c, d, f = values[3 + 3 * i : 6 + 3 * i]
            out = out - c * f * np.logaddexp(0.0, (logx - np.log(d)) / f)
        return out

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        (xv,) = self._check_inputs(x)
        values = self._values(params)
        return values[0] + np.exp(self._log_curve(values, np.log(xv)))

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        (v,), t = self._symbols(variables, target)
        if params is None:
            text = f"{t} = a + b·{v}^(-c0)"
            for i in range(1, self.breaks + 1):
                text += f"·(1 + ({v}/d{i})^(1/f{i}))^(-c{i}·f{i})"
            return text
        values = [float(p) for p in self._values(params)]
        a, b, c0 = (fmt_number(p) for p in values[:3])
        text = f"{t} = {a} + {b}·{v}^{fmt_number(-values[2])}"
        for i in range(self.breaks):
            c, d, f = values[3 + 3 * i : 6 + 3 * i]
            power = f"-{fmt_number(c)}" if c >= 0 else fmt_number(-c)
            text += f"·(1 + ({v}/{fmt_number(d)})^(1/{fmt_number(f)}))^({power}·{fmt_number(f)})"
        return text

    # The fitter's coordinates -------------------------------------------------------

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """``log b - c0·X = (log b - c0·m) - c0·(X - m)``, and ``X - log d = (X - m) -
        (log d - m)``: centring moves ``log b`` by ``c0·m`` and each ``log d`` by ``m``."""
        out = np.array(theta, dtype=float, copy=True)
        m = float(centre[0])
        out[..., 1] += sign * out[..., 2] * m
        for i in range(self.breaks):
            out[..., 4 + 3 * i] += sign * m
        return out

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        v = variables(theta, order)
        big_x = logx[0]
        curve = v[1] - v[2] * big_x
        for i in range(self.breaks):
            c, log_d, log_f = v[3 + 3 * i : 6 + 3 * i]
            f = exp(log_f)
            z = (log_d - big_x) * (-1.0) * reciprocal(f)
            curve = curve - c * f * softplus(z)
        s = lse([v[0] + np.zeros_like(big_x), curve])
        return unpack(s, theta.shape[1], order)

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        if logx is None or logy is None:
            raise ValueError(f"the default grid of {self.name!r} is placed on the data: give it")
        lo, hi = float(logx[0].min()), float(logx[0].max())
        m = float(logx[0].mean())
        y_min, y_med = float(np.exp(logy.min())), float(np.exp(np.median(logy)))
        one = self.breaks == 1
        floors = [1e-3, 0.3, 0.6, 0.9] if one else [1e-3, 0.5, 0.97]
        scales = [-4.5, -3.0, -1.5, 0.0] if one else [-3.0, -1.5, 0.0]
        c0s = [-0.5, 0.0, 0.25, 0.5, 1.0] if one else [0.0, 0.5, 1.0]
        cis = [-1.0, -0.3, 0.3, 1.0, 2.0] if one else [-1.0, 0.3, 1.0]
        spots = np.linspace(lo, hi, 7)[1:-1] if one else np.linspace(lo, hi, 6)[1:-1]
        sharp = [0.1, 0.5, 2.0] if one else [0.2, 1.0]
        axes: dict[str, np.ndarray] = {
            "log_a": np.log(y_min * np.array(floors)),
            "log_b": np.log(y_med) + np.array(scales),
            "c0": np.array(c0s),
        }
        for i in range(1, self.breaks + 1):
            axes[f"c{i}"] = np.array(cis)
            axes[f"log_d{i}"] = np.array(spots) - m
            axes[f"log_f{i}"] = np.log(sharp)
        return axes

    @property
    def level_coords(self) -> tuple[int, ...]:
        # log ŷ = LSE(log a, log b - ...): adding δ to log a and log b adds δ to both
        # terms, hence to log ŷ, whatever the exponents and breaks.
        return (0, 1)

    def prune_grid(self, points: np.ndarray) -> np.ndarray:
        """Two breaks or more: only the rows whose break positions increase. A row with
        ``d1 > d2`` is another row with the breaks' labels swapped (the axes of both
        breaks are the same), the same curve, and one with ``d1 = d2`` starts both
        breaks on one spot; dropped, they leave the search its budget for distinct
        shapes (on synthetic two-break sets it then finds the optimum more often)."""
        if self.breaks < 2:
            return points
        where = [4 + 3 * i for i in range(self.breaks)]
        return points[np.all(np.diff(points[:, where], axis=1) > 0, axis=1)]

    @property
    def search_patience(self) -> int | None:
        # The starts that end at the optimum are often still descending when a worse
        # local optimum has converged. On synthetic sets (levelled starts), the
        # fitter's default of 25 cut them off in 1 of 15 one-break fits; with two
        # breaks 100 found the optimum of 17 of 20 sets, 50 found 14. It costs about a
        # quarter more search time.
        return 100

    @property
    def grid_centred(self) -> bool:
        # The first segment's coefficient is searched at the centre of the data:
        # uncentred (log b = log b' + c0·m) it would depend on c0, which no product grid
        # of starts can follow.
        return True


BNSL = BrokenPowerLaw()
BNSL2 = BrokenPowerLaw(name="bnsl2", param_names=_names(2), log_params=_flags(2), breaks=2)
