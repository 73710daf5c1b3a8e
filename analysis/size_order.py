"""Whether loss falls with model size at a fixed number of tokens.

Every law of L(N, D)'s form (Chinchilla's, Kaplan's) has loss fall with N at any fixed
D. A grid can break that: at a budget of few steps, a larger size can end above a
smaller one (it has not caught up yet, or its learning rate suits other budgets). A fit
then misreads the grid: its residuals at those budgets are systematic, not noise, and
more seeds do not tighten it. :func:`size_inversions` finds such pairs, so a fit can
say so (:func:`analysis.fit.fit_frame` warns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Inversion", "describe_inversions", "size_inversions"]

#: How much higher (relative) a larger size's loss must be to count: about one seed's
#: spread of a final loss at small scale (the README's schedule-parity runs: std 0.020
#: at a loss of 1.9), so that noise alone rarely raises the warning.
TOLERANCE = 0.01
#: Token counts within this ratio of each other are one budget.
SAME_TOKENS = 0.01


@dataclass(frozen=True)
class Inversion:
    """A larger size that ends above a smaller one at the same budget."""

    tokens: float
    smaller: float  #: parameters of the smaller size (the best of those below)
    larger: float
    smaller_loss: float  #: mean over the rows of that size and budget (seeds)
    larger_loss: float

    @property
    def rise(self) -> float:
        """How much higher the larger size's loss is, relative."""
        return self.larger_loss / self.smaller_loss - 1.0


def _budgets(tokens: np.ndarray) -> np.ndarray:
    """A budget label per row: sorted token counts, split where one exceeds the last by
    more than :data:`SAME_TOKENS`."""
    order = np.argsort(tokens, kind="stable")
    labels = np.empty(len(tokens), dtype=int)
    label, start = 0, None
    for i in order:
        if start is not None and tokens[i] > start * (1 + SAME_TOKENS):
            label += 1
            start = None
        if start is None:
            start = tokens[i]
        labels[i] = label
    return labels


def size_inversions(
    params: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    tolerance: float = TOLERANCE,
) -> tuple[list[Inversion], int]:
    """Larger sizes whose loss exceeds the best smaller size's at the same budget.

    Parameters
    ----------
    params, tokens, loss : array_like
        One value per run (or budget record); repeated (params, budget) pairs, seeds
        say, are averaged.
    tolerance : float
        The relative excess that counts (default :data:`TOLERANCE`).

    Returns
    -------
    inversions : list of Inversion
        Largest excess first.
    n_budgets : int
        Budgets with two sizes or more, the ones that could show an inversion.
    """
    params, tokens, loss = (np.asarray(a, dtype=float) for a in (params, tokens, loss))
    labels = _budgets(tokens)
    found, n_budgets = [], 0
    for label in np.unique(labels):
        rows = labels == label
        sizes = np.unique(params[rows])
        if len(sizes) < 2:
            continue
        n_budgets += 1
        means = [loss[rows & (params == n)].mean() for n in sizes]
        best = 0  # the index of the lowest loss among the smaller sizes
        for i in range(1, len(sizes)):
            if means[i] > means[best] * (1 + tolerance):
                found.append(Inversion(float(np.median(tokens[rows])), sizes[best], sizes[i],
                                       means[best], means[i]))  # fmt: skip
            if means[i] < means[best]:
                best = i
    return sorted(found, key=lambda v: -v.rise), n_budgets


def describe_inversions(inversions: list[Inversion], n_budgets: int) -> str:
    """One line: how many budgets break the order, the worst pair, and what it means."""
    worst = inversions[0]
    budgets = len({v.tokens for v in inversions})
    return (
        f"loss rises with size at fixed tokens in {budgets} of {n_budgets} budget(s) "
        f"(worst: {worst.larger:,.0f} params reach {worst.larger_loss:.4g} at "
        f"{worst.tokens:,.0f} tokens, {worst.rise:.1%} above {worst.smaller:,.0f} params' "
        f"{worst.smaller_loss:.4g}): an L(N, D) law assumes loss falls with size, so its "
        "residuals there are systematic, not noise; the larger sizes may need more steps "
        "or another learning rate at those budgets, or leave those budgets out"
    )
