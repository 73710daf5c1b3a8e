"""Batches: training windows (random, or epochs over a prefix) and evaluation batches.

Pure functions of their arguments, so a resumed run draws what it would have drawn; see
`scaling.data` ("Training batches") for the data-constrained scheme.
"""

from __future__ import annotations

import functools

import numpy as np


def _check_fits(tokens: np.ndarray, context: int) -> None:
    if len(tokens) < context + 1:
        raise ValueError(
            f"the token array ({len(tokens)} tokens) is smaller than one context window "
            f"plus its target ({context} + 1): use a larger corpus or a smaller context"
        )


def _windows(tokens: np.ndarray, offsets: np.ndarray, context: int) -> tuple[np.ndarray, ...]:
    # One gather of context + 1 tokens per row; x and y are its two overlapping views.
    chunk = tokens[offsets[:, None] + np.arange(context + 1)].astype(np.int64)
    return np.ascontiguousarray(chunk[:, :-1]), np.ascontiguousarray(chunk[:, 1:])


def sample_batch(
    tokens: np.ndarray, batch_size: int, context: int, seed: int, step: int, micro: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a training batch of random windows, a pure function of its arguments.

    Being stateless, a resumed run draws exactly the batches it would have drawn.

    Parameters
    ----------
    tokens : numpy.ndarray
        A 1-D token array (usually ``TokenData.train``).
    batch_size, context : int
        Rows and columns of the batch.
    seed, step, micro : int
        Seed ``numpy.random.default_rng([seed, step, micro])``; `micro` tells apart the
        micro-batches of one optimiser step under gradient accumulation.

    Returns
    -------
    x, y : numpy.ndarray
        ``int64`` arrays of shape ``(batch_size, context)``; ``y[:, t] == x[:, t + 1]``,
        the last column of `y` being the token after the window.

    Raises
    ------
    ValueError
        When `tokens` is shorter than ``context + 1``.
    """
    _check_fits(tokens, context)
    rng = np.random.default_rng([seed, step, micro])
    offsets = rng.integers(0, len(tokens) - context, size=batch_size)
    return _windows(tokens, offsets, context)


# The seed stream of the epochs' orders, apart from sample_batch's ([seed, step, micro])
# and val_batches' ([seed, 0x5A1]).
_EPOCH_STREAM = 0xE90C


def repeated_windows(unique_tokens: int, context: int, n_train_tokens: int) -> int:
    """How many windows one epoch of a data-constrained run has; checks ``unique_tokens``.

    Parameters
    ----------
    unique_tokens : int
        U, the length of the training split's prefix that is trained on.
    context : int
        Tokens per window (each window reads ``context + 1``: the last one is the target).
    n_train_tokens : int
        The length of the training split.

    Returns
    -------
    int
        ``(U - 1) // context``: window ``i`` starts at token ``i * context``, and the last
        window's target is at most token ``U - 1``.

    Raises
    ------
    ValueError
        When U exceeds the training split, or is shorter than one window.
    """
    u = int(unique_tokens)
    if u > n_train_tokens:
        raise ValueError(
            f"data.unique_tokens={u} exceeds the training split ({n_train_tokens} tokens): "
            f"set it to at most {n_train_tokens}, or null to train on the whole split"
        )
    if u < context + 1:
        raise ValueError(
            f"data.unique_tokens={u} is shorter than one window ({context} tokens + 1 "
            f"target): set it to at least {context + 1}"
        )
    return (u - 1) // context


def repeated_epochs(tokens: float, unique_tokens: int) -> float:
    """Epochs over the unique data that `tokens` training tokens make: ``tokens / U``.

    Muennighoff et al. (2023)'s count: 4 epochs of U unique tokens are ``4 * U`` tokens.

    Parameters
    ----------
    tokens : float
        Training tokens (D).
    unique_tokens : int
        U.

    Returns
    -------
    float
    """
    if not unique_tokens >= 1:
        raise ValueError(f"data.unique_tokens={unique_tokens!r} must be >= 1")
    return float(tokens) / float(unique_tokens)


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n_windows: int) -> np.ndarray:
    # a new seeded permutation of the windows per epoch; kept for the next batches of
    # the same epoch (8 bytes a window), read-only so that no caller can change it
    order = np.random.default_rng([seed, _EPOCH_STREAM, epoch]).permutation(n_windows)
    order.flags.writeable = False
    return order


def sample_repeated_batch(
    tokens: np.ndarray,
    batch_size: int,
    context: int,
    seed: int,
    step: int,
    micro: int,
    grad_accum: int,
    unique_tokens: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of a data-constrained run: epochs over the first U tokens, a pure function.

    The first `unique_tokens` tokens are cut into ``n = (U - 1) // context`` windows that
    do not overlap (window ``i`` is tokens ``i * context`` to ``(i + 1) * context``,
    its last token the target of its last position). Row ``r`` of micro-batch `micro` of
    optimiser step `step` is the run's row number ``j = (step * grad_accum + micro) *
    batch_size + r``; it reads window ``order_e[j % n]`` of epoch ``e = j // n``, where
    ``order_e`` is a permutation seeded by ``(seed, e)``. So every window is read once
    per epoch, epochs differ in order, a resumed run draws what it would have drawn, and
    the processes of a data-parallel run (each with its own micro-batches) read disjoint
    rows.

    Parameters
    ----------
    tokens : numpy.ndarray
        The training split (``TokenData.train``).
    batch_size, context : int
        Rows and columns of the batch.
    seed, step, micro : int
        The run's seed, the optimiser step, the micro-batch within it.
    grad_accum : int
        Micro-batches per optimiser step (all processes together).
    unique_tokens : int
        U (``data.unique_tokens``).

    Returns
    -------
    x, y : numpy.ndarray
        ``int64``, shape ``(batch_size, context)``; ``y[:, t] == x[:, t + 1]``, as from
        `sample_batch`.

    Raises
    ------
    ValueError
        As `repeated_windows`; or when ``micro`` is not in ``[0, grad_accum)``.
    """
    n_windows = repeated_windows(unique_tokens, context, len(tokens))
    if not 0 <= micro < grad_accum:
        raise ValueError(f"micro={micro} must lie in [0, grad_accum={grad_accum})")
    first = (int(step) * int(grad_accum) + int(micro)) * int(batch_size)
    epoch, position = np.divmod(np.arange(first, first + batch_size, dtype=np.int64), n_windows)
    window = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epoch):  # a batch can straddle the end of an epoch
        rows = epoch == e
        window[rows] = _epoch_order(int(seed), int(e), n_windows)[position[rows]]
    return _windows(tokens, window * context, context)


def sample_train_batch(
    tokens: np.ndarray,
    batch_size: int,
    context: int,
    seed: int,
    step: int,
    micro: int = 0,
    grad_accum: int = 1,
    unique_tokens: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The training batch as ``data.unique_tokens`` asks: one call for the training loop.

    Parameters
    ----------
    tokens, batch_size, context, seed, step, micro, grad_accum
        As `sample_repeated_batch`.
    unique_tokens : int or None
        None: `sample_batch` (random windows over the whole split, `grad_accum`
        unused), bit for bit; an int: `sample_repeated_batch`.

    Returns
    -------
    x, y : numpy.ndarray
    """
    if unique_tokens is None:
        return sample_batch(tokens, batch_size, context, seed, step, micro)
    return sample_repeated_batch(
        tokens, batch_size, context, seed, step, micro, grad_accum, unique_tokens
    )


def val_batches(
    tokens: np.ndarray, n_batches: int, batch_size: int, context: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed set of evaluation batches spread evenly over `tokens`.

    The ``n_batches * batch_size`` windows are stratified: the array is cut into that many
    equal slots and each window starts at a seeded random place in its slot, so the set
    covers the whole validation split. Pass the same `seed` to every run of a sweep (not
    the run's seed) so they are all measured on the same windows.

    Parameters
    ----------
    tokens : numpy.ndarray
        A 1-D token array (usually ``TokenData.val``).
    n_batches, batch_size, context : int
        How many batches, and the shape of each.
    seed : int
        Chooses the places within the slots.

    Returns
    -------
    list of (x, y)
        As from `sample_batch`; the same list for the same arguments.

    Raises
    ------
    ValueError
        When `tokens` is shorter than ``context + 1``.
    """
    _check_fits(tokens, context)
    n = n_batches * batch_size
    n_offsets = len(tokens) - context  # valid starts are 0 .. n_offsets - 1
    rng = np.random.default_rng([seed, 0x5A1])  # a stream apart from sample_batch's
    slot = n_offsets / n
    offsets = np.minimum(
        (np.arange(n) * slot + rng.uniform(0, slot, size=n)).astype(np.int64), n_offsets - 1
    )
    return [
        _windows(tokens, offsets[i * batch_size : (i + 1) * batch_size], context)
        for i in range(n_batches)
    ]
