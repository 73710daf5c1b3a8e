"""Fixed and tied parameters: ``--fix E=1.69``, ``--tie alpha=beta``.

A fixed parameter keeps its value; a tied one takes the value of the parameter it is
tied to (Muennighoff et al. 2023 fit their C4 law with ``alpha = beta``). The fitter
then searches only the *free* coordinates: the internal coordinates (see
:meth:`analysis.laws.base.Law.internal_names`) of the parameters that are neither fixed
nor follow another. In the coordinates the engine works in -- ``log x`` centred on the
data -- the constrained set is an affine subspace, ``θ = offset + T φ`` with ``φ`` the
centred free coordinates themselves, so the search keeps the conditioning the
centring gives (:class:`analysis.newton.AffineProblem`).

Tied parameters must be fitted alike: both as logs (``A = B``) or both as themselves
(``alpha = beta``); ``--tie alpha=beta`` keeps ``alpha`` and sets ``beta`` to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.laws import Law
from analysis.newton import AffineProblem

__all__ = ["Constraints", "make_constraints", "parse_assignments"]


def parse_assignments(items: Sequence[str] | None, option: str) -> list[tuple[str, str]]:
    """``["E=1.69", "alpha=beta"]`` -> ``[("E", "1.69"), ("alpha", "beta")]``.

    Raises
    ------
    ValueError
        For an item without exactly one ``=``, naming the option and the item.
    """
    out = []
    for item in items or ():
        left, sep, right = str(item).partition("=")
        if not sep or not left.strip() or not right.strip() or "=" in right:
            raise ValueError(f"{option} {item!r}: expected NAME=VALUE, e.g. {option} E=1.69"
                             if option == "--fix" else
                             f"{option} {item!r}: expected NAME=NAME, e.g. {option} alpha=beta")  # fmt: skip
        out.append((left.strip(), right.strip()))
    return out


@dataclass(frozen=True)
class Constraints:
    """Which parameters of ``law`` are fixed (natural values) and which follow another
    (``tied[follower] = leader``)."""

    law: Law
    fixed: dict[str, float] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)

    @property
    def free(self) -> tuple[str, ...]:
        """The parameters searched: neither fixed nor tied to another."""
        return tuple(p for p in self.law.param_names if p not in self.fixed and p not in self.tied)

    def free_index(self) -> list[int]:
        names = self.law.param_names
        return [names.index(p) for p in self.free]

    def impose(self, theta: np.ndarray) -> np.ndarray:
        """Uncentred internal rows with the fixed values and ties set exactly."""
        out = np.array(theta, dtype=float, copy=True)
        names, flags = self.law.param_names, self.law.log_flags()
        for name, value in self.fixed.items():
            i = names.index(name)
            out[..., i] = math.log(value) if flags[i] else value
        for follower, leader in self.tied.items():
            out[..., names.index(follower)] = out[..., names.index(leader)]
        return out

    def impose_natural(self, values: np.ndarray) -> np.ndarray:
        """Natural parameter rows with the fixed values exact (not ``exp(log v)``)."""
        out = np.array(values, dtype=float, copy=True)
        names = self.law.param_names
        for name, value in self.fixed.items():
            out[..., names.index(name)] = value
        for follower, leader in self.tied.items():
            out[..., names.index(follower)] = out[..., names.index(leader)]
        return out

    def problem(self, inner: Any, centre: np.ndarray) -> AffineProblem:
        """``inner`` (in centred coordinates) over the centred free coordinates."""
        law, p_count = self.law, len(self.law.param_names)
        names = law.param_names
        free = self.free_index()
        # Centring is affine: θ_c = C θ_u + o.
        o = law.shift(np.zeros(p_count), centre, -1.0)
        c_mat = np.column_stack([law.shift(np.eye(p_count)[j], centre, -1.0) - o
                                 for j in range(p_count)])  # fmt: skip
        # θ_u = θ0 + M ψ, ψ the free parameters' uncentred coordinates.
        theta0 = self.impose(np.zeros(p_count))
        for i in free:
            theta0[i] = 0.0
        for follower in self.tied:
            theta0[names.index(follower)] = 0.0
        m_mat = np.zeros((p_count, len(free)))
        for j, i in enumerate(free):
            m_mat[i, j] = 1.0
        for follower, leader in self.tied.items():
            m_mat[names.index(follower), free.index(names.index(leader))] = 1.0
        base = c_mat @ theta0 + o
        cm = c_mat @ m_mat
        a_mat = cm[free]
        # φ = θ_c[free] = A ψ + base[free], so θ_c = base + C M A⁻¹ (φ - base[free]).
        transform = np.linalg.solve(a_mat.T, cm.T).T
        offset = base - transform @ base[free]
        return AffineProblem(inner=inner, offset=offset, transform=transform)


def make_constraints(
    law: Law,
    fix: Mapping[str, float] | Sequence[str] | None,
    tie: Mapping[str, str] | Sequence[str] | None,
) -> Constraints | None:
    """Check ``fix`` (``{"E": 1.69}`` or ``["E=1.69"]``) and ``tie`` (``{"beta":
    "alpha"}``, follower to leader, or ``["alpha=beta"]``, leader first) against
    ``law``; None when both are empty.

    Raises
    ------
    ValueError
        For an unknown parameter, a value that is not a number (or not > 0 for a
        parameter fitted as a log), a parameter both fixed and tied, ties between a
        log and a plain parameter, or nothing left to fit; the message names the
        option and the fix.
    """
    if not fix and not tie:
        return None
    names, flags = law.param_names, law.log_flags()
    known = f"(the parameters of {law.name!r}: {', '.join(names)})"

    def check(name: str, option: str, item: str) -> None:
        if name not in names:
            raise ValueError(f"{option} {item}: {name!r} is not a parameter {known}")

    fixed: dict[str, float] = {}
    pairs = fix.items() if isinstance(fix, Mapping) else parse_assignments(fix, "--fix")
    for name, raw in pairs:
        item = f"{name}={raw}"
        check(name, "--fix", item)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"--fix {item}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"--fix {item}: the value must be finite")
        if flags[names.index(name)] and not value > 0:
            raise ValueError(f"--fix {item}: {name} must be > 0 (it is fitted as a log)")
        fixed[name] = value
    tied: dict[str, str] = {}
    if isinstance(tie, Mapping):
        links = [(leader, follower) for follower, leader in tie.items()]
    else:
        links = parse_assignments(tie, "--tie")
    for leader, follower in links:
        item = f"{leader}={follower}"
        check(leader, "--tie", item)
        check(follower, "--tie", item)
        if leader == follower:
            raise ValueError(f"--tie {item}: a parameter cannot be tied to itself")
        if flags[names.index(leader)] != flags[names.index(follower)]:
            raise ValueError(
                f"--tie {item}: {leader} and {follower} are fitted differently (one as a log, "
                "one as itself), so they cannot be tied"
            )
        for name in (leader, follower):
            if name in fixed:
                raise ValueError(f"--tie {item}: {name} is fixed (--fix); fix both instead")
        if follower in tied:
            raise ValueError(f"--tie {item}: {follower} is already tied to {tied[follower]}")
        tied[follower] = leader
    # Chains (a=b, b=c) resolve to the first: every follower names a free leader.
    for follower in list(tied):
        leader, seen = tied[follower], {follower}
        while leader in tied:
            if leader in seen:
                raise ValueError(f"--tie: the ties {', '.join(sorted(seen))} form a cycle")
            seen.add(leader)
            leader = tied[leader]
        tied[follower] = leader
    out = Constraints(law=law, fixed=fixed, tied=tied)
    if not out.free:
        raise ValueError(f"nothing left to fit: every parameter of {law.name!r} is fixed or tied")
    return out
