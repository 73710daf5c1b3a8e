"""Muennighoff et al. (2023, "Scaling Data-Constrained Language Models", eq. 5): the
Chinchilla law in the *effective* parameters and tokens of a run that repeats data,

    L = E + A / N'^alpha + B / D'^beta,
    D' = U_D + U_D·R*_D·(1 - exp(-R_D / R*_D)),   R_D = D / U_D - 1,
    N' = U_N + U_N·R*_N·(1 - exp(-R_N / R*_N)),   R_N = N / U_N - 1,

with U_D the unique tokens (``unique_tokens``), R_D the repeated epochs beyond the
first, and U_N = min(N, N_opt(U_D)) the parameters compute-optimal for the unique data,
R_N the excess parameters beyond them in the same units. Each repetition of the data is
worth ``exp(-1/R*_D)`` of the one before: repeated tokens lose half their value after
``R*_D · ln 2`` epochs (the half-life reported), and excess parameters likewise. On
single-epoch runs of models no larger than N_opt(U_D) (R_D = R_N = 0) it is
Chinchilla's law.

The paper takes N_opt(U_D) from the Chinchilla law itself, the size whose
compute-optimal data is U_D (its appendix A; :func:`optimal_unique_params`): U_D/19.6
for its C4 fit. The fitter needs U_N before it knows the law, so by default it uses
Chinchilla's 20 tokens per parameter, U_N = min(N, U_D/20); :func:`repetition_inputs`
takes any other, e.g. the paper's from a law held fixed
(:func:`analysis.repetition.fit_two_stage`).

The fitter reads the law in four inputs: ``N``, ``D`` and the two ratios ``rho_N = N /
U_N`` and ``rho_D = D / U_D`` (both >= 1; see :func:`repetition_inputs`), so that

    log N' = log N - log rho_N + log(1 + R*_N (1 - exp(-(rho_N - 1) / R*_N))),

and likewise for D'. ``N`` and ``D`` are centred as in Chinchilla's law; the ratios are
not (their values enter the exponentials as they are).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.laws.base import Law, fmt_number
from analysis.laws.jets import Jet, exp, lse, reciprocal, unpack, variables
from analysis.laws.powers import CHINCHILLA_GRID

__all__ = ["DataConstrained", "optimal_unique_params", "repetition_inputs"]

#: Tokens per parameter at which U_D unique tokens are compute-optimal (U_N = U_D / 20).
OPTIMAL_TOKENS_PER_PARAM = 20.0


def repetition_inputs(
    params: np.ndarray,
    tokens: np.ndarray,
    unique_tokens: np.ndarray,
    unique_params: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(N, D, rho_N, rho_D)`` for the law from parameters, tokens and unique tokens.

    Parameters
    ----------
    params, tokens, unique_tokens
        N, D and U_D of each run.
    unique_params
        The size compute-optimal for each run's unique tokens, N_opt(U_D), of which
        U_N = min(N, N_opt(U_D)) is taken; None: U_D / 20 (Chinchilla's 20 tokens per
        parameter). :func:`optimal_unique_params` gives the paper's, from a law.

    Raises
    ------
    ValueError
        When a value is not positive and finite.
    """
    n, d, u = (np.asarray(v, dtype=float) for v in (params, tokens, unique_tokens))
    optimal = u / OPTIMAL_TOKENS_PER_PARAM if unique_params is None else unique_params
    optimal = np.broadcast_to(np.asarray(optimal, dtype=float), u.shape)
    named = (("params", n), ("tokens", d), ("unique_tokens", u), ("unique_params", optimal))
    for name, v in named:
        if not (np.isfinite(v).all() and (v > 0).all()):
            raise ValueError(f"data_constrained: every {name} must be finite and > 0")
    u_n = np.minimum(n, optimal)
    return n, d, np.maximum(n / u_n, 1.0), np.maximum(d / u, 1.0)


def optimal_unique_params(unique_tokens: np.ndarray, chinchilla: Mapping[str, float]) -> np.ndarray:
    """The size whose compute-optimal data is ``unique_tokens`` under a Chinchilla law
    (Muennighoff et al. 2023, appendix A): ``N_opt = G (U_D G)^(beta/alpha)`` with ``G =
    (alpha A / (beta B))^(1/(alpha + beta))``, from Chinchilla's ``N_opt = G (C/6)^a``,
    ``D_opt = (C/6)^b / G``.

    ``chinchilla`` holds ``A``, ``B``, ``alpha``, ``beta`` (``E`` is not needed). With
    ``alpha = beta`` it is ``G^2 U_D``: U_D / 19.6 for the paper's C4 law.
    """
    a, b = float(chinchilla["alpha"]), float(chinchilla["beta"])
    g = (a * float(chinchilla["A"]) / (b * float(chinchilla["B"]))) ** (1.0 / (a + b))
    return g * (np.asarray(unique_tokens, dtype=float) * g) ** (b / a)


def _log(x: Any) -> Any:
    return x.log() if isinstance(x, Jet) else np.log(x)


def _effective(log_rho: np.ndarray, r_star: Any) -> Any:
    """``log(1 + R* (1 - exp(-(rho - 1)/R*)))``: the log of the effective units per unique
    unit, 0 without repetition."""
    repeats = np.expm1(log_rho)  # rho - 1 = R
    return _log(1.0 + r_star * (1.0 - exp(-(reciprocal(r_star) * repeats))))


@dataclass(frozen=True)
class DataConstrained(Law):
    """``L = E + A/N'^alpha + B/D'^beta`` in effective N' and D' (Muennighoff et al. 2023).

    Default grid of starts (uncentred, as Chinchilla's): ``e`` -1, 0, 1; ``a``, ``b``
    0, 8, 16, 24 (A, B up to 3e10); ``alpha``, ``beta`` 0.2, 0.5, 1, 1.5 (a coarser cut
    of Hoffmann et al.'s grid); ``log R*_N``, ``log R*_D`` at R* = 2, 10, 50 -- the
    paper's fits give R*_D about 15 and R*_N about 5. 3 x 4^4 x 3^2 = 6,912 starts.
    """

    name: str = "data_constrained"
    param_names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta", "R_N", "R_D")
    n_inputs: int = 4
    variables: tuple[str, ...] = ("N", "D", "rho_N", "rho_D")
    target: str = "L"
    log_params: tuple[bool, ...] = (True, True, True, False, False, True, True)

    @property
    def centred_inputs(self) -> tuple[bool, ...]:
        return (True, True, False, False)

    def predict(self, params: Mapping[str, float], *x: np.ndarray) -> np.ndarray:
        n, d, rho_n, rho_d = self._check_inputs(x)
        e, a, b, alpha, beta, r_n, r_d = self._values(params)
        u_n, u_d = n / rho_n, d / rho_d
        n_eff = u_n + u_n * r_n * (1 - np.exp(-(rho_n - 1) / r_n))
        d_eff = u_d + u_d * r_d * (1 - np.exp(-(rho_d - 1) / r_d))
        return e + a / n_eff**alpha + b / d_eff**beta

    def formula(
        self,
        params: Mapping[str, float] | None = None,
        *,
        variables: Sequence[str] | None = None,
        target: str | None = None,
    ) -> str:
        t = target or self.target
        if params is None:
            return f"{t} = E + A/N'^alpha + B/D'^beta (N', D' with R*_N, R*_D)"
        e, a, b, alpha, beta, r_n, r_d = (fmt_number(float(v)) for v in self._values(params))
        return f"{t} = {e} + {a}/N'^{alpha} + {b}/D'^{beta}, R*_N = {r_n}, R*_D = {r_d}"

    # The fitter's coordinates -------------------------------------------------------

    def shift(self, theta: np.ndarray, centre: np.ndarray, sign: float) -> np.ndarray:
        """As Chinchilla's, on N and D (the ratios are not centred)."""
        out = np.array(theta, dtype=float, copy=True)
        out[..., 1] += sign * out[..., 3] * float(centre[0])
        out[..., 2] += sign * out[..., 4] * float(centre[1])
        return out

    def log_predict(
        self, theta: np.ndarray, logx: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, list[Any], dict[tuple[int, int], Any]]:
        e, a, b, alpha, beta, log_rn, log_rd = variables(theta, order)
        x_n, x_d, log_rho_n, log_rho_d = logx
        # a jet first in every sum: numpy would try to add an array to it element-wise
        log_n_eff = _effective(log_rho_n, exp(log_rn)) + (x_n - log_rho_n)
        log_d_eff = _effective(log_rho_d, exp(log_rd)) + (x_d - log_rho_d)
        terms = [e + np.zeros_like(x_n), a - alpha * log_n_eff, b - beta * log_d_eff]
        return unpack(lse(terms), theta.shape[1], order)

    def default_grid(
        self, logx: np.ndarray | None = None, logy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        r_star = np.log([2.0, 10.0, 50.0])
        return {
            "log_E": CHINCHILLA_GRID["e"][::2].copy(),
            "log_A": np.array([0.0, 8.0, 16.0, 24.0]),
            "log_B": np.array([0.0, 8.0, 16.0, 24.0]),
            "alpha": np.array([0.2, 0.5, 1.0, 1.5]),
            "beta": np.array([0.2, 0.5, 1.0, 1.5]),
            "log_R_N": r_star,
            "log_R_D": r_star.copy(),
        }

    def derived(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """The compute-optimal a, b of the underlying Chinchilla law, and the half-lives
        (in repetitions) of repeated tokens and excess parameters, ``R* ln 2``."""
        alpha, beta = values[..., 3], values[..., 4]
        return {
            "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta),
            "half_life_N": values[..., 5] * math.log(2),
            "half_life_D": values[..., 6] * math.log(2),
        }
