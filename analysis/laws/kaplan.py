"""Kaplan et al. (2020, "Scaling Laws for Neural Language Models", eq. 1.5): the loss
against parameters N and tokens D as one power of a sum,

    L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D,

with no floor: at D → ∞ it is ``(N_c/N)^alpha_N``, at N → ∞ ``(D_c/D)^alpha_D``. It is
here to be compared with the additive form of Hoffmann et al. (``chinchilla``), which
adds the two terms and a floor instead. Kaplan et al. report N_c = 6.4e13,
D_c = 1.8e13, alpha_N = 0.076, alpha_D = 0.103 (their Table 2, nats, non-embedding N).

In the fitter's coordinates (``N_c``, ``D_c`` as logs, ``X_N = log N``, ``X_D = log D``)

    log L = alpha_D · LSE((alpha_N/alpha_D)(log N_c - X_N), log D_c - X_D),

differentiated exactly by :mod:`analysis.laws.jets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.laws.base import Law, fmt_number
from analysis.laws.jets import lse, reciprocal, unpack, variables

__all__ = ["Kaplan"]

_EXPONENTS = np.array([0.03, 0.06, 0.12, 0.25, 0.5, 1.0])
_SCALES = np.geomspace(1.0, 64.0, 7)


@dataclass(frozen=True)
class Kaplan(Law):
    """``L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D`` (Kaplan et al. 2020).

    Default grid of starts (``default_grid``, in coordinates centred on the data:
    ``log N`` and ``log D`` less their means ``m_N``, ``m_D``):

    * ``alpha_N``, ``alpha_D``: 0.03, 0.06, 0.12, 0.25, 0.5, 1 (Kaplan's 0.076 and
      0.103 and Hoffmann's 0.28-0.34 inside, doubling steps);
    * ``log_N_c`` (centred: ``log N_c - m_N``) and ``log_D_c`` (``log D_c - m_D``):
      ``log L̄ · 1, 2, 4, ..., 64`` with ``L̄`` the median loss. At the centre of the
      data each term alone gives ``log L = alpha · (log N_c - m_N)``, so the centred
      log-scale is ``log L / alpha``: from ``log L̄`` (alpha = 1) to 33 ``log L̄``
      (alpha = 0.03), which the 7 doublings span.

    6 x 6 x 7 x 7 = 1,764 starts.
    """

    name: str = "kaplan"
    param_names: tuple[str, ...] = ("N_c", "D_c", "alpha_N", "alpha_D")
    n_inputs: int = 2
    variables: tuple[str, ...] = ("N", "D")
    target: str = "L"
    log_params: tuple[bool, ...] = (True, True, False, False)

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        n, d = self._check_inputs(x)
        n_c, d_c, a_n, a_d = self._values(params)
        # In log space: (N_c/N)^(a_N/a_D) overflows for the wild values a bootstrap
        # resample can take long before the sum's power does.
        inner = np.logaddexp((a_n / a_d) * (np.log(n_c) - np.log(n)), np.log(d_c) - np.log(d))
        return np.exp(a_d * inner)

    def derived(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """The compute-optimal exponents at ``C = 6ND``: N_opt ∝ C^a, D_opt ∝ C^b.

        With ``D = C/(6N)`` the bracket is ``(N_c/N)^p + 6 D_c N / C`` with
        ``p = alpha_N/alpha_D``; it is least where ``p N_c^p N^(-p-1) = 6 D_c / C``, so
        ``N_opt ∝ C^(1/(1+p))``: ``a = alpha_D/(alpha_N + alpha_D)`` and ``b = 1 - a``,
        the same form as Hoffmann et al.'s ``beta/(alpha + beta)`` for ``chinchilla``.
        """
        a_n, a_d = values[..., 2], values[..., 3]
        return {"a": a_d / (a_n + a_d), "b": a_n / (a_n + a_d)}

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        (vn, vd), t = self._symbols(variables, target)
        if params is None:
            return f"{t} = [(N_c/{vn})^(alpha_N/alpha_D) + D_c/{vd}]^alpha_D"
        n_c, d_c, a_n, a_d = (fmt_number(float(v)) for v in self._values(params))
        return f"{t} = [({n_c}/{vn})^({a_n}/{a_d}) + {d_c}/{vd}]^{a_d}"

    # The fitter's coordinates -------------------------------------------------------

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """``log N_c - X_N = (log N_c - m_N) - (X_N - m_N)``; the same for D."""
        out = np.array(theta, dtype=float, copy=True)
        out[..., 0] += sign * float(centre[0])
        out[..., 1] += sign * float(centre[1])
        return out

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        log_nc, log_dc, a_n, a_d = variables(theta, order)
        u_n = (log_nc - logx[0]) * a_n * reciprocal(a_d)
        u_d = log_dc - logx[1]
        s = a_d * lse([u_n, u_d])
        return unpack(s, theta.shape[1], order)

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        if logy is None:
            raise ValueError("the default grid of 'kaplan' is placed on the data: give it")
        level = float(np.median(logy))
        # A median loss of 1 (log 0) would put every start at N_c = the centre.
        level = level if abs(level) > 0.05 else 0.05
        return {
            "log_N_c": level * _SCALES,
            "log_D_c": level * _SCALES,
            "alpha_N": _EXPONENTS.copy(),
            "alpha_D": _EXPONENTS.copy(),
        }

    @property
    def grid_centred(self) -> bool:
        return True
