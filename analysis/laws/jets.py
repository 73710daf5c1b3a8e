"""Values with their exact first and second derivatives, for writing a law's
log-prediction once and getting its Jacobian and Hessian with it.

A :class:`Jet` holds a value ``v`` (an array broadcasting to (S, n): S parameter rows,
n points), its gradient ``g`` as ``{p: array}`` and its Hessian ``h`` as
``{(p, q): array}`` with ``p <= q``, over the P internal coordinates of a law. Only
nonzero entries are stored, so a term that depends on two coordinates carries two
gradient and at most three Hessian entries, whatever P is: the second derivatives of a
law with nine parameters cost what its structure needs, not 45 dense products. This is
second-order forward differentiation written out for the handful of operations the
laws use (sums, products, exp, log, softplus, log-sum-exp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Jet", "exp", "lse", "reciprocal", "softplus", "unpack", "variables"]

# Terms of a log-sum-exp more than e^-40 below the largest change nothing in double
# precision; clipping them there keeps exp out of subnormal numbers (slow to compute).
_LSE_FLOOR = -40.0


@dataclass
class Jet:
    """A value with its nonzero first and second derivatives (see the module doc)."""

    v: Any
    g: dict[int, Any] = field(default_factory=dict)
    h: dict[tuple[int, int], Any] = field(default_factory=dict)

    def __add__(self, other: Jet | Any) -> Jet:
        if not isinstance(other, Jet):
            return Jet(self.v + other, dict(self.g), dict(self.h))
        return Jet(self.v + other.v, _merge(self.g, other.g, 1.0), _merge(self.h, other.h, 1.0))

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return self.scale(-1.0)

    def __sub__(self, other: Jet | Any) -> Jet:
        return self + (-other if isinstance(other, Jet) else -np.asarray(other))

    def __rsub__(self, other: Any) -> Jet:
        return (-self) + other

    def scale(self, c: Any) -> Jet:
        """Multiplied by a constant (an array free of the parameters)."""
        return Jet(self.v * c, {p: c * d for p, d in self.g.items()},
                   {pq: c * d for pq, d in self.h.items()})  # fmt: skip

    def __mul__(self, other: Jet | Any) -> Jet:
        if not isinstance(other, Jet):
            return self.scale(other)
        x, y = self, other
        g = _merge({p: y.v * d for p, d in x.g.items()}, {p: x.v * d for p, d in y.g.items()}, 1.0)
        h = _merge(
            {pq: y.v * d for pq, d in x.h.items()}, {pq: x.v * d for pq, d in y.h.items()}, 1.0
        )
        # The cross terms gx gyᵀ + gy gxᵀ, stored on the upper triangle.
        for p, dp in x.g.items():
            for q, dq in y.g.items():
                key = (p, q) if p <= q else (q, p)
                term = dp * dq * (2.0 if p == q else 1.0)
                h[key] = h[key] + term if key in h else term
        return Jet(x.v * y.v, g, h)

    __rmul__ = __mul__

    def apply(self, value: Any, d1: Any, d2: Any) -> Jet:
        """``f(self)`` given ``f``, ``f'`` and ``f''`` at ``self.v`` (chain rule)."""
        g = {p: d1 * d for p, d in self.g.items()}
        h = {pq: d1 * d for pq, d in self.h.items()}
        items = list(self.g.items())
        for i, (p, dp) in enumerate(items):
            for q, dq in items[i:]:
                key = (p, q) if p <= q else (q, p)
                term = d2 * dp * dq
                h[key] = h[key] + term if key in h else term
        return Jet(value, g, h)

    def exp(self) -> Jet:
        e = np.exp(self.v)
        return self.apply(e, e, e)

    def log(self) -> Jet:
        inv = 1.0 / self.v
        return self.apply(np.log(self.v), inv, -inv * inv)

    def reciprocal(self) -> Jet:
        inv = 1.0 / self.v
        return self.apply(inv, -inv * inv, 2.0 * inv * inv * inv)

    def __truediv__(self, other: Jet | Any) -> Jet:
        if not isinstance(other, Jet):
            return self.scale(1.0 / np.asarray(other))
        return self * other.reciprocal()


def _merge(a: dict, b: dict, sign: float) -> dict:
    out = dict(a)
    for key, d in b.items():
        out[key] = out[key] + sign * d if key in out else sign * d
    return out


def variables(theta: np.ndarray, order: int = 2) -> list[Any]:
    """One jet per column of (S, P) ``theta``: the coordinate itself, as an (S, 1) column;
    plain (S, 1) arrays when ``order`` is 0 (values only, nothing to differentiate)."""
    if order == 0:
        return [theta[:, p : p + 1] for p in range(theta.shape[1])]
    return [Jet(theta[:, p : p + 1], {p: 1.0}) for p in range(theta.shape[1])]


def unpack(s: Jet | Any, count: int, order: int) -> tuple[Any, list[Any], dict]:
    """A law's ``(s, jac, hess)`` from its log-prediction ``s`` over ``count`` coordinates
    (the form :meth:`analysis.laws.base.Law.log_predict` returns)."""
    if not isinstance(s, Jet):
        return s, [], {}
    jac = [s.g.get(p, 0.0) for p in range(count)]
    return s.v, jac, (s.h if order >= 2 else {})


def exp(x: Jet | Any) -> Jet | Any:
    """``e^x`` of a jet or of a plain array."""
    return x.exp() if isinstance(x, Jet) else np.exp(x)


def reciprocal(x: Jet | Any) -> Jet | Any:
    """``1/x`` of a jet or of a plain array."""
    return x.reciprocal() if isinstance(x, Jet) else 1.0 / x


def softplus(x: Jet | Any) -> Jet | Any:
    """``log(1 + e^x)``, with ``σ(x)`` and ``σ(x)(1 - σ(x))`` as its derivatives (a plain
    array gives a plain array: the value alone, as a fit's screening asks)."""
    if not isinstance(x, Jet):
        return np.logaddexp(0.0, x)
    sig = 0.5 * (1.0 + np.tanh(0.5 * x.v))  # the logistic function, without overflow
    return x.apply(np.logaddexp(0.0, x.v), sig, sig * (1.0 - sig))


def lse(terms: list[Jet | Any]) -> Jet | Any:
    """``log Σ_j exp(t_j)``, computed shifted by the largest term.

    The Hessian is written ``Σ_j w_j (h_j + (g_j - g)(g_j - g)ᵀ)`` with ``w`` the
    softmax weights and ``g`` the gradient of the result, which has no cancellation.
    """
    if not any(isinstance(t, Jet) for t in terms):  # values only
        top = terms[0]
        for t in terms[1:]:
            top = np.maximum(top, t)
        total = sum(np.exp(np.maximum(t - top, _LSE_FLOOR)) for t in terms)
        return top + np.log(total)
    jets = [t if isinstance(t, Jet) else Jet(t) for t in terms]
    top = jets[0].v
    for t in jets[1:]:
        top = np.maximum(top, t.v)
    expd = [np.exp(np.maximum(t.v - top, _LSE_FLOOR)) for t in jets]
    total = expd[0]
    for e in expd[1:]:
        total = total + e
    value = top + np.log(total)
    w = [e / total for e in expd]
    keys = sorted({p for t in jets for p in t.g})
    if len(jets) == 2:
        # Two terms: Σ_j w_j (g_j - g)(g_j - g)ᵀ = w_0 w_1 ΔΔᵀ with Δ = g_1 - g_0, half
        # the products of the general form (every law here has two terms).
        (w0, w1), (t0, t1) = w, jets
        g = {}
        for p in keys:
            a, b = t0.g.get(p), t1.g.get(p)
            g[p] = w0 * a + w1 * b if a is not None and b is not None else (
                w0 * a if a is not None else w1 * b)  # fmt: skip
        h = {pq: w0 * d for pq, d in t0.h.items()}
        for pq, d in t1.h.items():
            h[pq] = h[pq] + w1 * d if pq in h else w1 * d
        w01 = w0 * w1
        delta = {p: t1.g.get(p, 0.0) - t0.g.get(p, 0.0) for p in keys}
        for i, p in enumerate(keys):
            wd = w01 * delta[p]
            for q in keys[i:]:
                term = wd * delta[q]
                h[(p, q)] = h[(p, q)] + term if (p, q) in h else term
        return Jet(value, g, h)
    g = {p: sum(wj * t.g[p] for wj, t in zip(w, jets, strict=True) if p in t.g) for p in keys}
    h: dict[tuple[int, int], Any] = {}
    for wj, t in zip(w, jets, strict=True):
        for pq, d in t.h.items():
            h[pq] = h[pq] + wj * d if pq in h else wj * d
        dev = {p: t.g.get(p, 0.0) - g[p] for p in keys}
        for i, p in enumerate(keys):
            for q in keys[i:]:
                term = wj * dev[p] * dev[q]
                h[(p, q)] = h[(p, q)] + term if (p, q) in h else term
    return Jet(value, g, h)
