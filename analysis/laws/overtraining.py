"""Gadre et al. (2024, "Language models scale reliably with over-training and on
downstream tasks", eq. 4): the loss against compute C and the tokens per parameter
M = D/N it was spent at,

    L(C, M) = E + (A·M^eta + B·M^(-eta))·C^(-eta),

the paper's a and b written A and B here. At every M the loss falls as a power of C
with one exponent eta, and over-training (M above its optimum) only shifts the curve:
the term in brackets is smallest at M* = (B/A)^(1/(2·eta)), the compute-optimal tokens
per parameter (about 20 for Chinchilla's data). It is Chinchilla's additive law with
alpha = beta = eta (then N ∝ D ∝ sqrt C along the optimum), rewritten in the
variables an over-trained ladder is planned in.

In the fitter's coordinates (``E``, ``A``, ``B`` as logs, ``X_C = log C``,
``X_M = log M``)

    log L = LSE(log E, log A + eta·(X_M - X_C), log B - eta·(X_M + X_C)),

differentiated exactly by :mod:`analysis.laws.jets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.laws.base import Law, fmt_number
from analysis.laws.jets import lse, unpack, variables

__all__ = ["Overtraining"]

_FLOORS = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
_TERMS = np.geomspace(0.01, 1.0, 6)
_ETAS = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.6])


@dataclass(frozen=True)
class Overtraining(Law):
    """``L = E + (A·M^eta + B·M^(-eta))·C^(-eta)``, ``M = D/N`` (Gadre et al. 2024).

    Default grid of starts (in coordinates centred on the data: ``log C`` and ``log M``
    less their means ``m_C``, ``m_M``; ``L̄`` the median loss):

    * ``log_E``: ``log(L̄ · f)`` for f = 0.05, 0.2, 0.4, 0.6, 0.8, 0.95 -- the floor as a
      share of the loss, from almost nothing to almost all of it;
    * ``log_A``, ``log_B`` (centred: each term's value at the centre of the data):
      ``log(L̄ · t)`` for t from 0.01 to 1, six log-spaced -- the reducible loss of a
      real ladder is a few to some tens of percent of the loss, and either term may be
      the larger (over- or under-trained data);
    * ``eta``: 0.02, 0.05, 0.1, 0.2, 0.35, 0.6 (Gadre et al. fit about 0.12;
      Hoffmann's exponents are 0.28-0.34).

    6^4 = 1,296 starts.
    """

    name: str = "overtraining"
    param_names: tuple[str, ...] = ("E", "A", "B", "eta")
    n_inputs: int = 2
    variables: tuple[str, ...] = ("C", "M")
    target: str = "L"
    log_params: tuple[bool, ...] = (True, True, True, False)

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        c, m = self._check_inputs(x)
        e, a, b, eta = self._values(params)
        return e + (a * m**eta + b * m ** (-eta)) * c ** (-eta)

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        (vc, vm), t = self._symbols(variables, target)
        if params is None:
            return f"{t} = E + (A*{vm}^eta + B*{vm}^-eta) * {vc}^-eta"
        e, a, b, eta = (fmt_number(float(v)) for v in self._values(params))
        return f"{t} = {e} + ({a}*{vm}^{eta} + {b}*{vm}^-{eta}) * {vc}^-{eta}"

    # The fitter's coordinates -------------------------------------------------------

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """``log A + eta (X_M - X_C) = [log A + eta (m_M - m_C)] + eta (x_M - x_C)``, and
        ``log B - eta (X_M + X_C) = [log B - eta (m_M + m_C)] - eta (x_M + x_C)``."""
        m_c, m_m = float(centre[0]), float(centre[1])
        out = np.array(theta, dtype=float, copy=True)
        eta = out[..., 3].copy()
        out[..., 1] -= sign * eta * (m_m - m_c)
        out[..., 2] += sign * eta * (m_m + m_c)
        return out

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        log_e, log_a, log_b, eta = variables(theta, order)
        x_c, x_m = logx[0], logx[1]
        terms = [log_e + np.zeros_like(x_c), log_a + eta * (x_m - x_c), log_b - eta * (x_m + x_c)]
        return unpack(lse(terms), theta.shape[1], order)

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        if logy is None:
            raise ValueError("the default grid of 'overtraining' is placed on the data: give it")
        level = float(np.median(logy))  # log of the median loss
        return {
            "log_E": level + np.log(_FLOORS),
            "log_A": level + np.log(_TERMS),
            "log_B": level + np.log(_TERMS),
            "eta": _ETAS.copy(),
        }

    @property
    def grid_centred(self) -> bool:
        return True

    def derived(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """``M_opt = (B/A)^(1/(2 eta))``: the tokens per parameter that minimise the loss
        at a given compute."""
        a, b, eta = values[..., 1], values[..., 2], values[..., 3]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return {"M_opt": (b / a) ** (1 / (2 * eta))}
