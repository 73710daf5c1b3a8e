"""The fitter's engine: the Huber objective of a law's log residuals with its exact
gradient and Hessian, and a damped Newton method that minimises many problems at once
(one row per start, or per bootstrap resample).

A *problem* holds the data in log space and evaluates the objective of S parameter rows
at once (its ``block`` method):

* :class:`LawProblem`, for any law: the law supplies ``log ŷ``, its Jacobian and its
  second derivatives in the fitter's internal coordinates
  (:meth:`analysis.laws.base.Law.log_predict`); the Huber objective and its derivatives
  are built from them here (:func:`huber_terms`);
* :class:`LogProblem`, the same objective for a sum of powers
  (``y = E + Σ A_j x_j^(-alpha_j)``, a log-sum-exp of terms linear in the parameters)
  fused into one pass that exploits that structure: 2-3 times faster, the same values;
* :class:`AffineProblem`, either of them over fewer free coordinates ``φ`` with
  ``θ = offset + T φ``: how parameters are fixed or tied.

:mod:`analysis.fit` builds the problems and reads the results; this module knows
nothing about tables, only arrays of internal parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AffineProblem",
    "BatchState",
    "LawProblem",
    "LogProblem",
    "huber_terms",
    "newton",
    "objective",
]


@dataclass(frozen=True)
class LogProblem:
    """Data of a sum-of-powers fit in log space: ``logx`` is (K, n), ``logy`` is (n,)."""

    logx: np.ndarray
    logy: np.ndarray
    delta: float

    @property
    def k(self) -> int:
        return self.logx.shape[0]

    def block(self, theta: np.ndarray, weights: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        return _objective_block(self, theta, weights, order)


@dataclass(frozen=True)
class LawProblem:
    """Data of a fit of any law in log space: ``logx`` (K, n) centred, ``logy`` (n,)."""

    law: Any
    logx: np.ndarray
    logy: np.ndarray
    delta: float

    def block(self, theta: np.ndarray, weights: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        # Starts in a wide grid overflow (a break sharpness e^-10, an exponent at 0): their
        # rows come out inf or NaN and are dropped by the search, which is not news.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            s, jac, hess = self.law.log_predict(theta, self.logx, order=min(order, 2))
            return huber_terms(s, jac, hess, self.logy, self.delta, weights, order,
                               theta.shape[1])  # fmt: skip


@dataclass(frozen=True)
class AffineProblem:
    """``inner`` over free coordinates ``φ`` (S, F): ``θ = offset + φ Tᵀ`` with ``T``
    (P, F). The gradient is ``Tᵀ g`` and the Hessian ``Tᵀ H T``; the damping's scales
    ``Σ_p T_pf² scale_p`` (the Gauss-Newton diagonal in φ, up to its cross terms)."""

    inner: Any
    offset: np.ndarray
    transform: np.ndarray

    @property
    def logy(self) -> np.ndarray:
        return self.inner.logy

    def full(self, phi: np.ndarray) -> np.ndarray:
        """The inner problem's coordinates of free coordinates ``phi``."""
        return self.offset + phi @ self.transform.T

    def block(self, phi: np.ndarray, weights: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        out = self.inner.block(self.full(phi), weights, order)
        if order == 0:
            return out
        t = self.transform
        g = out[1] @ t
        if order == 1:
            return out[0], g
        hess = np.einsum("pf,spq,qg->sfg", t, out[2], t)
        scale = out[3] @ (t * t)
        scale += 1e-12 * scale.max(axis=1, keepdims=True) + 1e-300
        return out[0], g, hess, scale


def huber_terms(
    s: np.ndarray,
    jac: list[Any],
    hess: dict[tuple[int, int], Any],
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray,
    order: int,
    p_count: int,
) -> tuple[np.ndarray, ...]:
    """The Huber objective of ``r = s - log y`` and its derivatives from those of ``s``.

    ``f = Σ c h(r)``, ``g = Σ c h'(r) ∇s``, ``H = Σ c h''(r) ∇s∇sᵀ + Σ c h'(r) ∇²s``
    (``c`` the weights), and the Gauss-Newton diagonal ``Σ c (∂s/∂θ_p)²`` as the
    damping's parameter scales. ``jac`` and ``hess`` as
    :meth:`analysis.laws.base.Law.log_predict` returns them.
    """
    r = s - logy
    absr = np.abs(r)
    quad = absr <= delta
    huber = np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta))
    f = (huber * weights).sum(axis=-1)
    if order == 0:
        return (f,)
    rows = s.shape[0]
    dh = np.clip(r, -delta, delta) * weights
    jac = [np.broadcast_to(j, s.shape) for j in jac]
    g = np.empty((rows, p_count))
    for p in range(p_count):
        g[:, p] = (dh * jac[p]).sum(axis=-1)
    if order == 1:
        return f, g
    cw = quad * weights  # h'' is 1 inside the quadratic part, 0 outside
    h = np.empty((rows, p_count, p_count))
    scale = np.empty((rows, p_count))
    for p in range(p_count):
        cj = cw * jac[p]
        scale[:, p] = (weights * jac[p] * jac[p]).sum(axis=-1)
        for q in range(p, p_count):
            entry = (cj * jac[q]).sum(axis=-1)
            second = hess.get((p, q))
            if second is not None:
                entry = entry + (dh * second).sum(axis=-1)
            h[:, p, q] = h[:, q, p] = entry
    scale += 1e-12 * scale.max(axis=1, keepdims=True) + 1e-300
    return f, g, h, scale


# Rows of parameters evaluated per block: about 32k (row, point) pairs, so that the
# block's temporaries stay in the CPU cache. Evaluating thousands of starts as one
# (S, n) block is 2-3x slower, limited by memory traffic rather than arithmetic.
_BLOCK_ELEMENTS = 32_768


def objective(
    prob: LogProblem, theta: np.ndarray, weights: np.ndarray, order: int = 2
) -> tuple[np.ndarray, ...]:
    """The objective of every row of ``theta`` (and its derivatives up to ``order``),
    evaluated by ``prob.block`` over row blocks (see ``_BLOCK_ELEMENTS``)."""
    rows = max(1, _BLOCK_ELEMENTS // prob.logy.shape[0])
    if theta.shape[0] <= rows:
        return prob.block(theta, weights, order)
    parts = [
        prob.block(theta[i : i + rows], _row(weights, slice(i, i + rows)), order)
        for i in range(0, theta.shape[0], rows)
    ]
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _objective_block(
    prob: LogProblem, theta: np.ndarray, weights: np.ndarray, order: int = 2
) -> tuple[np.ndarray, ...]:
    """Huber objective of S parameter vectors at once, with its derivatives.

    Parameters
    ----------
    theta
        (S, P) internal parameters ``(e, a_1..a_K, alpha_1..alpha_K)``.
    weights
        (n,) shared or (S, n) per-row weights of the points (bootstrap counts).
    order
        0: objective only; 1: and gradient; 2: and Hessian and parameter scales.

    Returns
    -------
    f (S,); then g (S, P); then H (S, P, P) and the Gauss-Newton diagonal (S, P).

    Notes
    -----
    Term j of the log-sum-exp is ``t_0 = e`` or ``t_j = a_j - alpha_j X_j`` (with
    ``X_j = log x_j``), and ``s = LSE(t)``. Its gradient is ``∂s/∂e = w_0``,
    ``∂s/∂a_j = w_j``, ``∂s/∂alpha_j = -w_j X_j``, with ``w = softmax(t)``. Each
    quantity is kept as one contiguous (S, n) array per term, and sums over points are
    matrix-vector products, which is several times faster than (S, K+1, n) stacks.
    """
    k, delta = prob.k, prob.delta
    e = theta[:, :1]
    terms = [np.broadcast_to(e, (theta.shape[0], prob.logy.shape[0]))]
    terms += [theta[:, 1 + j, None] - theta[:, 1 + k + j, None] * prob.logx[j] for j in range(k)]
    top = terms[0]
    for t in terms[1:]:
        top = np.maximum(top, t)
    # Shifted by the max, so no overflow. Terms more than e^-40 below the largest change
    # nothing in double precision; clipping them there keeps exp and the products below
    # out of subnormal numbers, which are many times slower to compute with.
    expd = [np.exp(np.maximum(t - top, -40.0)) for t in terms]
    total = expd[0] + expd[1] if k else expd[0]
    for ex in expd[2:]:
        total += ex
    r = top + np.log(total) - prob.logy  # log ŷ - log y
    absr = np.abs(r)
    quad = absr <= delta
    huber = np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta))
    f = (huber * weights).sum(axis=-1)
    if order == 0:
        return (f,)

    inv = 1.0 / total
    w = [ex * inv for ex in expd]  # softmax weights of the terms, (S, n) each
    dh = np.clip(r, -delta, delta) * weights  # Huber derivative times weight
    p_count = theta.shape[1]
    g = np.empty((theta.shape[0], p_count))
    dhw = [dh * wj for wj in w]
    for j in range(k + 1):
        g[:, j] = dhw[j].sum(axis=-1)
    for j in range(1, k + 1):
        g[:, k + j] = -(dhw[j] @ prob.logx[j - 1])
    if order == 1:
        return f, g

    # Hessian of Σ c h(r(θ)):  Σ c [h''(r) ∇s∇sᵀ + h'(r) ∇²s], where for a log-sum-exp
    # of terms linear in θ,  ∇²s = Σ_j w_j ∇t_j∇t_jᵀ - ∇s∇sᵀ.  So
    #   H = Σ c (h'' - h') ∇s∇sᵀ  +  Σ_j Σ c h' w_j ∇t_j∇t_jᵀ.
    # Every entry is a sum over points of w_i w_j (or w_j) times 1, X_i, X_j or X_i X_j.
    q = quad * weights - dh
    hess = np.zeros((theta.shape[0], p_count, p_count))
    logx = [None, *prob.logx]  # logx[j] belongs to term j (term 0 has none)

    def coef(j: int) -> int:  # index of the log-coefficient of term j
        return j

    def expo(j: int) -> int:  # index of the exponent of term j >= 1
        return k + j

    for i in range(k + 1):
        for j in range(i, k + 1):
            qw = q * w[i] * w[j]
            # ∇s_p∇s_q restricted to terms (i, j): coefficients give 1, exponents -X.
            hess[:, coef(i), coef(j)] += qw.sum(axis=-1)
            if j >= 1:
                hess[:, coef(i), expo(j)] -= qw @ logx[j]
            if i >= 1:
                hess[:, expo(i), coef(j)] -= qw @ logx[i]
            if i >= 1 and j >= 1:
                hess[:, expo(i), expo(j)] += qw @ (logx[i] * logx[j])
            if i != j:  # the (j, i) block is the transpose of (i, j)
                hess[:, coef(j), coef(i)] = hess[:, coef(i), coef(j)]
                if j >= 1:
                    hess[:, expo(j), coef(i)] = hess[:, coef(i), expo(j)]
                if i >= 1:
                    hess[:, coef(j), expo(i)] = hess[:, expo(i), coef(j)]
                if i >= 1 and j >= 1:
                    hess[:, expo(j), expo(i)] = hess[:, expo(i), expo(j)]
    # The log-sum-exp curvature, Σ c h' w_j ∇t_j∇t_jᵀ with ∇t_j = e_coef(j) - X_j e_expo(j).
    hess[:, 0, 0] += dhw[0].sum(axis=-1)
    for j in range(1, k + 1):
        s1 = dhw[j] @ logx[j]
        hess[:, coef(j), coef(j)] += g[:, j]
        hess[:, coef(j), expo(j)] -= s1
        hess[:, expo(j), coef(j)] -= s1
        hess[:, expo(j), expo(j)] += dhw[j] @ (logx[j] * logx[j])

    # Diagonal of the Gauss-Newton matrix Σ c ∇s∇sᵀ: the damping's parameter scales.
    scale = np.empty_like(g)
    for j in range(k + 1):
        cw2 = weights * w[j] * w[j]
        scale[:, coef(j)] = cw2.sum(axis=-1)
        if j >= 1:
            scale[:, expo(j)] = cw2 @ (logx[j] * logx[j])
    scale += 1e-12 * scale.max(axis=1, keepdims=True) + 1e-300
    return f, g, hess, scale


def _row(weights: np.ndarray, idx: np.ndarray | slice) -> np.ndarray:
    """Select rows of per-problem weights; shared (1-D) weights pass through."""
    return weights if weights.ndim == 1 else weights[idx]


@dataclass
class BatchState:
    """Where a batch of Newton runs stands: one row per problem."""

    theta: np.ndarray
    f: np.ndarray
    g: np.ndarray
    nit: np.ndarray
    converged: np.ndarray


def newton(
    prob: LogProblem,
    theta0: np.ndarray,
    weights: np.ndarray,
    gtol: np.ndarray,
    max_iter: int,
    patience: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchState:
    """Minimise S problems at once by Levenberg-Marquardt with exact derivatives.

    Each row has its own damping ``lam``: a step solves ``(H + lam D) p = -g`` with
    ``D`` the diagonal of the Gauss-Newton matrix ``Σ ∇s∇sᵀ``, which puts parameters of
    very different sensitivity (an exponent multiplies log x, a log-coefficient does not)
    on one scale. ``lam`` shrinks after good steps, making
    the method Newton's near the optimum (fast, quadratic convergence), and grows after
    failed ones, making it a short, scaled gradient step where the Hessian is indefinite.
    Rows stop when their largest gradient component is below ``gtol`` (per row), or when
    the damping has blown up (no further progress possible in floating point).

    ``patience``: for rows that are starts of one problem (not bootstrap resamples),
    stop them all ``patience`` iterations after the row with the lowest objective has
    converged -- the rest are then crawling through flat or degenerate regions (an
    exponent run to 0, a break pushed off the data) that would hold the whole batch to
    ``max_iter``. None: every row runs to its own end.

    ``on_progress``: called after every iteration with the number of rows that are done
    (a progress bar's hook).
    """
    theta = np.array(theta0, dtype=float)
    s_count, p = theta.shape
    f, g, hess, scale = objective(prob, theta, weights)
    nit = np.zeros(s_count, dtype=int)
    converged = np.abs(g).max(axis=1) <= gtol
    active = ~converged & _finite(f, g, hess)
    lam = np.full(s_count, 1e-3)
    eye = np.eye(p)
    waited = 0
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        if patience is not None:
            best = int(np.argmin(np.where(np.isfinite(f), f, np.inf)))
            waited = waited + 1 if converged[best] else 0
            if waited > patience:
                break
        gi, hi = g[idx], hess[idx]
        damped = hi + (lam[idx, None] * scale[idx])[:, :, None] * eye
        step = _solve(damped, -gi)
        trial = theta[idx] + step
        (f_trial,) = objective(prob, trial, _row(weights, idx), order=0)
        # Gain ratio: actual decrease over the decrease the quadratic model predicted.
        predicted = -(
            np.einsum("sp,sp->s", gi, step) + 0.5 * np.einsum("sp,spq,sq->s", step, hi, step)
        )
        actual = f[idx] - f_trial
        # Near the optimum the decrease drops below floating-point resolution of f; such
        # steps are still taken (the gradient test, not f, decides convergence).
        tiny = np.abs(actual) <= 1e-14 * np.abs(f[idx])
        descent = np.einsum("sp,sp->s", gi, step) < 0
        ok = np.isfinite(f_trial) & descent & ((actual > 0) | tiny)
        rho = np.where(predicted > 0, actual / np.where(predicted > 0, predicted, 1.0), 0.0)
        rho[tiny & ok] = 1.0  # no measurable change: the model is as good as f can tell
        nit[idx] += 1

        good, bad = idx[ok], idx[~ok]
        # Trust-region style damping update: shrink after steps the quadratic model
        # predicted well, grow after poor or failed ones.
        lam[good] *= np.where(rho[ok] > 0.75, 0.2, np.where(rho[ok] < 0.25, 2.0, 1.0))
        lam[good] = np.maximum(lam[good], 1e-15)
        lam[bad] *= 4.0
        if good.size:
            theta[good] = trial[ok]
            fg, gg, hg, sg = objective(prob, theta[good], _row(weights, good))
            f[good], g[good], hess[good], scale[good] = fg, gg, hg, sg
            converged[good] = np.abs(gg).max(axis=1) <= gtol[good]
        stalled = lam > 1e20
        active = ~converged & ~stalled & _finite(f, g, hess)
        if on_progress is not None:
            on_progress(int(s_count - active.sum()))
    return BatchState(theta=theta, f=f, g=g, nit=nit, converged=converged)


def _finite(f: np.ndarray, g: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """Rows whose objective and derivatives are all finite. A row whose derivatives
    overflowed (a start run into an extreme corner: a break sharpness of e^-60) can
    take no Newton step, and one NaN in a batched solve fails it for every row, so
    such a row stops where it is, not converged."""
    return np.isfinite(f) & np.isfinite(g).all(axis=1) & np.isfinite(hess).all(axis=(1, 2))


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve of small systems; a singular one gets a least-squares step instead."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("spq,sq->sp", np.linalg.pinv(a), b)
