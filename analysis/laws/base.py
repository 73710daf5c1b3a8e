"""The base of every law: :class:`Law`, what it predicts, how it prints, and the
coordinates the fitter works in.

A law that :mod:`analysis.fit` minimises by damped Newton (every law but ``power``)
also says how it is fitted:

* its *internal coordinates* (:meth:`Law.internal_names`): each natural parameter maps
  to one coordinate, either as itself or as its log (``log_params``), so a positive
  parameter needs no constraint;
* how those coordinates move when ``log x`` is centred on the data
  (:meth:`Law.shift`, an affine map), which the fitter does to decorrelate a
  coefficient from its exponent;
* its log-prediction with the Jacobian and second derivatives in centred internal
  coordinates (:meth:`Law.log_predict`, written with :mod:`analysis.laws.jets`);
* its default grid of starts (:meth:`Law.default_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Law", "fmt_number"]


def fmt_number(value: float) -> str:
    """Format a fitted number for a formula: four significant figures, no noise digits."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class Law:
    """A functional form ``target = f(variables; params)``.

    Attributes
    ----------
    name
        The registry key (``"power"``, ``"saturating"``, ``"chinchilla"``, ...).
    param_names
        Parameter names, in the order used for arrays of parameters (bootstrap samples).
    n_inputs
        How many input arrays :meth:`predict` takes.
    variables
        Default symbols of the inputs in :meth:`formula` (e.g. ``("N", "D")``).
    target
        Default symbol of the output in :meth:`formula`.
    log_params
        One flag per parameter: True when the fitter works with its log (it must be
        > 0). Empty for a law fitted in closed form.
    """

    name: str
    param_names: tuple[str, ...]
    n_inputs: int
    variables: tuple[str, ...]
    target: str
    log_params: tuple[bool, ...] = ()

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        """Evaluate the law at the inputs ``x`` (broadcast against each other)."""
        raise NotImplementedError

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        """The law as text: symbolic when ``params`` is None, else with the numbers in.

        ``variables`` and ``target`` rename the symbols (e.g. column names of a table).
        """
        raise NotImplementedError

    # ----------------------------------------------------------------------------------
    # What the fitter needs (laws fitted by damped Newton)

    @property
    def newton_fitted(self) -> bool:
        """Whether :mod:`analysis.fit` minimises this law by damped Newton."""
        return bool(self.log_flags())

    def log_flags(self) -> tuple[bool, ...]:
        """One flag per parameter: fitted as its log (True) or as itself."""
        return self.log_params

    def internal_names(self) -> tuple[str, ...]:
        """Names of the fitter's coordinates: ``log_<name>`` for a log parameter."""
        return tuple(
            f"log_{p}" if is_log else p
            for p, is_log in zip(self.param_names, self.log_flags(), strict=True)
        )

    def to_internal(self, params: Mapping[str, float]) -> np.ndarray:
        """Natural parameters -> internal coordinates (uncentred), one row.

        Raises
        ------
        ValueError
            When a parameter fitted as a log is not > 0.
        """
        values = [float(v) for v in self._values(params)]
        out = []
        for name, internal, value, is_log in zip(
            self.param_names, self.internal_names(), values, self.log_flags(), strict=True
        ):
            if is_log and not value > 0:
                raise ValueError(
                    f"init: {name} must be > 0 (it is fitted as exp({internal})), got {value}"
                )
            out.append(math.log(value) if is_log else value)
        return np.array(out, dtype=float)

    def to_params(self, theta: np.ndarray) -> np.ndarray:
        """Internal coordinates (uncentred) -> natural parameters, one row or a stack."""
        out = np.array(theta, dtype=float, copy=True)
        idx = [i for i, is_log in enumerate(self.log_flags()) if is_log]
        out[..., idx] = np.exp(out[..., idx])
        return out

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """Move internal coordinates to (sign -1) or from (sign +1) ``log x`` centred on
        ``centre`` (one value per input). Must be affine in ``theta``."""
        raise NotImplementedError

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        """``log ŷ`` for (S, P) centred internal ``theta`` at centred ``logx`` (K, n).

        Returns ``(s, jac, hess)``: ``s`` (S, n); for ``order >= 1`` ``jac``, one array
        per coordinate broadcasting to (S, n) (0 where it does not depend on it); for
        ``order >= 2`` ``hess``, ``{(p, q): array}`` for ``p <= q``, the nonzero second
        derivatives.
        """
        raise NotImplementedError

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Axes of the default grid of starts, keyed by :meth:`internal_names`
        (uncentred); ``logx`` (K, n) and ``logy`` (n,) place axes that depend on the data."""
        raise ValueError(f"law {self.name!r} is fitted in closed form and has no grid")

    @property
    def centred_inputs(self) -> tuple[bool, ...]:
        """Per input, whether the fitter centres its log on the data (all, unless a law
        needs an input's own value, as the repetition ratios of ``data_constrained``)."""
        return (True,) * self.n_inputs

    @property
    def level_coords(self) -> tuple[int, ...]:
        """Internal coordinates that, moved together by ``δ``, add ``δ`` to ``log ŷ`` at
        every point: the law's level in log space. The fitter moves each start of the
        default grid along them by the median log residual before ranking the starts
        (:func:`analysis.starts.level_starts`), so that a start is judged by its shape
        rather than by how near the grid's coarse level axes put it. ``()``: none, the
        starts are taken as they are."""
        return ()

    def prune_grid(self, points: np.ndarray) -> np.ndarray:
        """The rows of the default grid's product worth starting from (rows of internal
        coordinates, centred when :attr:`grid_centred`): all of them, unless the law
        drops starts that duplicate others (see
        :meth:`analysis.laws.broken.BrokenPowerLaw.prune_grid`)."""
        return points

    @property
    def search_patience(self) -> int | None:
        """Iterations the search of the starts waits once its best start has converged,
        where the law needs another value than the fitter's (``analysis.fit.PATIENCE``);
        None: the fitter's."""
        return None

    @property
    def grid_centred(self) -> bool:
        """Whether :meth:`default_grid` (and a grid given to the fitter) is in coordinates
        centred on the data (``log x`` less its mean, see :meth:`shift`) rather than
        uncentred ones."""
        return False

    def derived(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Quantities derived from natural parameters (last axis in param_names order)."""
        return {}

    def problem(self, logx: np.ndarray, logy: np.ndarray, delta: float) -> Any:
        """The engine's problem for centred ``logx`` (see :mod:`analysis.newton`)."""
        from analysis.newton import LawProblem

        return LawProblem(self, logx, logy, delta)

    # ----------------------------------------------------------------------------------
    # Helpers shared by the subclasses

    def _check_inputs(self, x: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        if len(x) != self.n_inputs:
            raise ValueError(
                f"law {self.name!r} takes {self.n_inputs} input(s) "
                f"({', '.join(self.variables)}), got {len(x)}"
            )
        return tuple(np.asarray(v, dtype=float) for v in x)

    def _values(self, params: Mapping[str, float]) -> list[Any]:
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise ValueError(
                f"law {self.name!r} needs parameters {', '.join(self.param_names)}; "
                f"missing {', '.join(missing)}"
            )
        # Scalars, or arrays that broadcast against the inputs (bootstrap samples).
        return [np.asarray(params[p], dtype=float) for p in self.param_names]

    def _symbols(
        self, variables: Sequence[str] | None, target: str | None
    ) -> tuple[list[str], str]:
        names = list(variables) if variables is not None else list(self.variables)
        if len(names) != self.n_inputs:
            raise ValueError(f"law {self.name!r} has {self.n_inputs} variable(s), got {names}")
        return names, target if target is not None else self.target
