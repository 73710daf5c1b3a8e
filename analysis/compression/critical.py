"""The critical pretraining tokens past which more data makes a quantized model worse."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.compression.result import CompressionFit
from analysis.result import plain_float

# --------------------------------------------------------------------------------------
# The critical pretraining data


@dataclass
class CriticalTokens:
    """The pretraining tokens past which more data makes the quantized model worse.

    With ``L(N, D) = E + A/N^alpha + B/D^beta`` and Kumar et al.'s ``delta``, the loss
    after quantization ``L + delta`` has zero D-derivative at

        D* = [B·beta·N^gamma_N·e^(P/gamma_post) / (gamma_D·C_T)]^(1/(gamma_D + beta))

    (a minimum, when ``gamma_D > 0``).

    Attributes
    ----------
    scheme, params, bits
        The quantization scheme, N and P.
    tokens
        ``D*``, or None with ``reason``.
    interval
        Percentile interval over the bootstrap resamples (a resample with
        ``gamma_D <= 0`` has no D*: counted as inf), or None.
    reason
        Why there is no D* (empty when there is one).
    notes
        E.g. that the pretraining fit it rests on is not identified.
    """

    scheme: str
    params: float
    bits: float
    tokens: float | None
    interval: tuple[float, float] | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "params": self.params,
            "bits": self.bits,
            "tokens": None if self.tokens is None else plain_float(self.tokens),
            "interval": None if self.interval is None else [plain_float(v) for v in self.interval],
            "level": self.level,
            "reason": self.reason,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        head = f"{self.scheme} P={self.bits:g} at N = {self.params:.4g}: "
        if self.tokens is None:
            return head + f"no critical D ({self.reason})"
        text = head + f"D* = {self.tokens:.4g}"
        if self.interval is not None:
            text += f" [{self.interval[0]:.4g}, {self.interval[1]:.4g}]"
        return text + "".join(f"; {n}" for n in self.notes)


def _d_star(B: Any, beta: Any, gamma_d: Any, delta_at_d1: Any) -> np.ndarray:
    """``[B·beta / (gamma_D·delta(N, 1, P))]^(1/(gamma_D+beta))``; inf where gamma_D <= 0.

    ``delta(N, 1, P) = C_T·N^(-gamma_N)·e^(-P/gamma_post)`` is the law at D = 1, which
    holds the held inputs' factors when some were held.
    """
    B, beta = np.asarray(B, dtype=float), np.asarray(beta, dtype=float)
    g, k = np.asarray(gamma_d, dtype=float), np.asarray(delta_at_d1, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # in logs: B·beta/(g·k) spans far more than a float's exponent
        log_d = (np.log(B * beta) - np.log(g) - np.log(k)) / (g + beta)
        out = np.exp(log_d)
    return np.where(g > 0, out, np.inf)


def critical_tokens(
    fit: CompressionFit,
    N: float,
    P: float,
    *,
    B: float,
    beta: float,
    B_samples: np.ndarray | None = None,
    beta_samples: np.ndarray | None = None,
    pretrain_identified: bool = True,
) -> CriticalTokens:
    """The critical pretraining tokens ``D*`` of a quantization fit at ``N`` and ``P``.

    Parameters
    ----------
    fit
        A ``quantization`` :class:`CompressionFit`.
    N, P
        Model size (the fit's convention) and weight bits.
    B, beta
        The data term of the pretraining Chinchilla law, ``B/D^beta``.
    B_samples, beta_samples
        Bootstrap samples of ``B`` and ``beta`` (resample i of the pretraining fit is
        paired with resample i of the compression fit: they are independent fits);
        None: the point values for every resample.
    pretrain_identified
        False when the Chinchilla fit is not identified: the result says so.

    Returns
    -------
    CriticalTokens
        ``tokens`` None, with the reason, when ``gamma_D`` is not positive, its interval
        includes 0, or the fit does not determine it.
    """
    if fit.form != "quantization":
        raise ValueError(f"a critical D needs a quantization fit, not {fit.form}")
    out = CriticalTokens(scheme=fit.scheme, params=float(N), bits=float(P), tokens=None,
                         level=fit.level)  # fmt: skip
    if not pretrain_identified:
        out.notes.append("rests on a pretraining fit that is not identified")
    if not fit.identified:
        out.notes.append(f"from a {fit.scheme} fit that is not identified")
    g = fit.params["gamma_D"]
    k = float(fit.predict(N, 1.0, P))
    interval = fit.intervals.get("gamma_D")
    if not math.isfinite(g) or not math.isfinite(k):
        out.reason = "the fit does not determine gamma_D (or delta at this P)"
        return out
    if g <= 0:
        out.reason = (
            f"gamma_D = {g:.3g} <= 0: more pretraining data never makes the quantized model worse"
        )
        return out
    if interval is not None and interval[0] <= 0:
        out.reason = (
            f"the interval of gamma_D [{interval[0]:.3g}, {interval[1]:.3g}] includes 0: "
            "the data do not tell whether more pretraining hurts the quantized model"
        )
        return out
    out.tokens = float(_d_star(B, beta, g, k))
    if fit.bootstrap is not None and len(fit.bootstrap):
        ks = fit.predict_samples(N, 1.0, P)
        gs = fit.bootstrap[:, 1]
        m = len(gs)
        bs = np.full(m, B) if B_samples is None else np.asarray(B_samples, dtype=float)
        betas = np.full(m, beta) if beta_samples is None else np.asarray(beta_samples, float)
        m = min(m, len(bs), len(betas))
        d = _d_star(bs[:m], betas[:m], gs[:m], ks[:m])
        d = d[~np.isnan(d)]
        if len(d):
            tail = 100 * (1 - fit.level) / 2
            # "nearest" picks resamples' values: no interpolation between inf and a number
            lo, hi = np.percentile(d, [tail, 100 - tail], method="nearest")
            out.interval = (float(lo), float(hi))
    return out
