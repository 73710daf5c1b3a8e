"""Powers: ``power`` (``y = a x^k``) and the sums of decaying powers, ``saturating``
(``y = E + A x^(-alpha)``) and ``chinchilla`` (``L = E + A/N^alpha + B/D^beta``,
Hoffmann et al. 2022, eq. 2).

The two saturating forms share one structure, a constant plus a sum of decaying powers,
``y = E + sum_j A_j * x_j^(-alpha_j)``; :class:`SumOfPowers` implements it once. In the
fitter's coordinates ``(e, a_1..a_K, alpha_1..alpha_K)`` with ``E = exp(e)``,
``A_j = exp(a_j)``, its log is a log-sum-exp of terms linear in the coordinates,

    log ŷ = LSE(e, a_1 - alpha_1 log x_1, ..., a_K - alpha_K log x_K),

which the engine evaluates with a fused objective of its own
(:class:`analysis.newton.LogProblem`); :meth:`SumOfPowers.log_predict` gives the same
derivatives through the generic path, and the tests hold the two to each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.laws.base import Law, fmt_number
from analysis.laws.jets import lse, unpack, variables

__all__ = ["Chinchilla", "PowerLaw", "SaturatingPowerLaw", "SumOfPowers"]

# The Hoffmann/Besiroglu grid of starts, in the fitter's internal coordinates
# (5 x 6 x 6 x 5 x 5 = 4,500 starts).
CHINCHILLA_GRID: dict[str, np.ndarray] = {
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "b": np.arange(0.0, 25.1, 5.0),
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
}
# For one input the grid can afford to be finer (9 * 11 * 9 = 891 starts).
SATURATING_GRID: dict[str, np.ndarray] = {
    "e": np.linspace(-1.0, 1.0, 9),
    "a": np.arange(0.0, 25.1, 2.5),
    "alpha": np.linspace(0.0, 2.0, 9),
}


@dataclass(frozen=True)
class PowerLaw(Law):
    """``y = a * x^k``, a straight line in log-log coordinates (fitted in closed form)."""

    name: str = "power"
    param_names: tuple[str, ...] = ("a", "k")
    n_inputs: int = 1
    variables: tuple[str, ...] = ("x",)
    target: str = "y"

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        (xv,) = self._check_inputs(x)
        a, k = self._values(params)
        return a * xv**k

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        (v,), t = self._symbols(variables, target)
        if params is None:
            return f"{t} = a * {v}^k"
        a, k = (float(v) for v in self._values(params))
        return f"{t} = {fmt_number(a)} * {v}^{fmt_number(k)}"


@dataclass(frozen=True)
class SumOfPowers(Law):
    """``y = E + sum_j A_j * x_j^(-alpha_j)``: a floor plus one decaying power per input.

    ``param_names`` is ordered ``(E, A_1, ..., A_K, alpha_1, ..., alpha_K)``; the fitter
    depends on that order."""

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        xs = self._check_inputs(x)
        values = self._values(params)
        k = self.n_inputs
        floor, coefs, exps = values[0], values[1 : 1 + k], values[1 + k :]
        out = np.asarray(floor, dtype=float)
        for coef, exp, xv in zip(coefs, exps, xs, strict=True):
            out = out + coef * xv ** (-exp)
        return out

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        names, t = self._symbols(variables, target)
        k = self.n_inputs
        if params is None:
            symbols = list(self.param_names)
        else:
            symbols = [fmt_number(float(v)) for v in self._values(params)]
        floor, coefs, exps = symbols[0], symbols[1 : 1 + k], symbols[1 + k :]
        terms = [f"{c}/{v}^{e}" for c, v, e in zip(coefs, names, exps, strict=True)]
        return f"{t} = {floor} + " + " + ".join(terms)

    # The fitter's coordinates -------------------------------------------------------

    def log_flags(self) -> tuple[bool, ...]:
        """The floor and the coefficients as logs, the exponents as themselves."""
        k = self.n_inputs
        return (True,) * (1 + k) + (False,) * k

    def internal_names(self) -> tuple[str, ...]:
        """``(e, a_1.., alpha_1..)``: the coefficients' names in lower case stand for their
        logs (for chinchilla ``("e", "a", "b", "alpha", "beta")``, ``E = exp(e)``)."""
        k = self.n_inputs
        coefs = [p.lower() for p in self.param_names[: 1 + k]]
        return (*coefs, *self.param_names[1 + k :])

    def to_internal(self, params: Mapping[str, float]) -> np.ndarray:
        k = self.n_inputs
        values = [float(v) for v in self._values(params)]
        for name, v in zip(self.param_names[: 1 + k], values[: 1 + k], strict=True):
            if not v > 0:
                raise ValueError(
                    f"init: {name} must be > 0 (it is fitted as exp({name.lower()})), got {v}"
                )
        return np.array([math.log(v) for v in values[: 1 + k]] + list(values[1 + k :]))

    def to_params(self, theta: np.ndarray) -> np.ndarray:
        k = self.n_inputs
        out = np.array(theta, dtype=float, copy=True)
        out[..., : 1 + k] = np.exp(out[..., : 1 + k])
        return out

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """``a_j - alpha_j log x_j = (a_j - alpha_j m_j) - alpha_j (log x_j - m_j)``."""
        k = len(centre)
        out = np.array(theta, dtype=float, copy=True)
        out[..., 1 : 1 + k] += sign * out[..., 1 + k :] * centre
        return out

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        k = self.n_inputs
        v = variables(theta, order)
        terms = [v[0]] + [v[1 + j] - v[1 + k + j] * logx[j] for j in range(k)]
        s = lse(terms)
        s = s + np.zeros((theta.shape[0], logx.shape[1]))  # full (S, n) even for one term
        return unpack(s, theta.shape[1], order)

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Hoffmann et al.'s grid as Besiroglu et al. searched it: e from -1 to 1, the
        log-coefficients 0 to 25 (A, B up to 7e10) and the exponents 0 to 2, for
        chinchilla; finer axes for saturating (one input: the grid can afford it); the
        coarse axes for another sum of powers. Independent of the data."""
        if self.name == "chinchilla":
            return {k: v.copy() for k, v in CHINCHILLA_GRID.items()}
        if self.name == "saturating":
            return {k: v.copy() for k, v in SATURATING_GRID.items()}
        k = self.n_inputs
        axes = [CHINCHILLA_GRID["e"]] + [CHINCHILLA_GRID["a"]] * k
        axes += [CHINCHILLA_GRID["alpha"]] * k
        return dict(zip(self.internal_names(), (a.copy() for a in axes), strict=True))

    def derived(self, values: np.ndarray) -> dict[str, np.ndarray]:
        if self.name != "chinchilla":
            return {}
        alpha, beta = values[..., 3], values[..., 4]
        return {"a": beta / (alpha + beta), "b": alpha / (alpha + beta)}

    def problem(self, logx: np.ndarray, logy: np.ndarray, delta: float) -> Any:
        """The fused sum-of-powers objective (faster than the generic one, same values)."""
        from analysis.newton import LogProblem

        return LogProblem(logx=logx, logy=logy, delta=delta)


@dataclass(frozen=True)
class SaturatingPowerLaw(SumOfPowers):
    """``y = E + A * x^(-alpha)``: loss against one of N, C or D."""

    name: str = "saturating"
    param_names: tuple[str, ...] = ("E", "A", "alpha")
    n_inputs: int = 1
    variables: tuple[str, ...] = ("x",)
    target: str = "y"


@dataclass(frozen=True)
class Chinchilla(SumOfPowers):
    """``L = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022)."""

    name: str = "chinchilla"
    param_names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
    n_inputs: int = 2
    variables: tuple[str, ...] = ("N", "D")
    target: str = "L"
