"""The scaling-law forms: what each one predicts and how it prints. No fitting here.

Three forms are provided:

``power``
    ``y = a * x^k`` -- e.g. training compute against parameters, ``C ∝ N^k``.
``saturating``
    ``y = E + A * x^(-alpha)`` -- loss against one size variable (N, C or D), with an
    irreducible floor ``E``.
``chinchilla``
    ``L = E + A / N^alpha + B / D^beta`` -- loss against parameters N and tokens D
    (Hoffmann et al. 2022, eq. 2).

The two saturating forms share one structure, a constant plus a sum of decaying powers,
``y = E + sum_j A_j * x_j^(-alpha_j)``; :class:`SumOfPowers` implements it once, and the
fitter (``analysis.fit``) relies on that structure for its log-sum-exp parametrisation.
Parameters are passed as mappings keyed by ``Law.param_names``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LAWS",
    "Chinchilla",
    "Law",
    "PowerLaw",
    "SaturatingPowerLaw",
    "SumOfPowers",
    "get_law",
]


def _num(value: float) -> str:
    """Format a fitted number for a formula: four significant figures, no noise digits."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class Law:
    """A functional form ``target = f(variables; params)``.

    Attributes
    ----------
    name
        The registry key (``"power"``, ``"saturating"``, ``"chinchilla"``).
    param_names
        Parameter names, in the order used for arrays of parameters (bootstrap samples).
    n_inputs
        How many input arrays :meth:`predict` takes.
    variables
        Default symbols of the inputs in :meth:`formula` (e.g. ``("N", "D")``).
    target
        Default symbol of the output in :meth:`formula`.
    """

    name: str
    param_names: tuple[str, ...]
    n_inputs: int
    variables: tuple[str, ...]
    target: str

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

    # Helpers shared by the subclasses.
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


@dataclass(frozen=True)
class PowerLaw(Law):
    """``y = a * x^k``, a straight line in log-log coordinates."""

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
        return f"{t} = {_num(a)} * {v}^{_num(k)}"


@dataclass(frozen=True)
class SumOfPowers(Law):
    """``y = E + sum_j A_j * x_j^(-alpha_j)``: a floor plus one decaying power per input.

    ``param_names`` is ordered ``(E, A_1, ..., A_K, alpha_1, ..., alpha_K)``; the fitter
    depends on that order.
    """

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
            symbols = [_num(float(v)) for v in self._values(params)]
        floor, coefs, exps = symbols[0], symbols[1 : 1 + k], symbols[1 + k :]
        terms = [f"{c}/{v}^{e}" for c, v, e in zip(coefs, names, exps, strict=True)]
        return f"{t} = {floor} + " + " + ".join(terms)


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


LAWS: dict[str, Law] = {law.name: law for law in (PowerLaw(), SaturatingPowerLaw(), Chinchilla())}


def get_law(name: str | Law) -> Law:
    """Look a law up by name (a :class:`Law` passes through unchanged).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}") from None
