"""Tests of scaling.data.batches: sampling training and validation batches, and the
data-constrained mode's epochs over the first ``unique_tokens`` tokens."""

from __future__ import annotations

import numpy as np
import pytest

from scaling import data
from scaling.data import (
    repeated_epochs,
    repeated_windows,
    sample_batch,
    sample_repeated_batch,
    sample_train_batch,
    val_batches,
)

TOKENS = np.arange(10_000, dtype=np.uint32)


def test_sample_batch_is_a_pure_function():
    x, y = sample_batch(TOKENS, batch_size=8, context=32, seed=1, step=5)
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == np.int64
    # Rows are contiguous windows (TOKENS[i] == i) and y is x moved on by one.
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(32))
    np.testing.assert_array_equal(y, x + 1)

    x2, y2 = sample_batch(TOKENS, batch_size=8, context=32, seed=1, step=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    for other in [dict(step=6), dict(step=5, micro=1), dict(step=5, seed=2)]:
        kwargs = {"seed": 1, **other}
        assert not np.array_equal(sample_batch(TOKENS, 8, 32, **kwargs)[0], x)


def test_sample_batch_reaches_the_last_token():
    tokens = np.arange(34, dtype=np.uint16)  # exactly two windows of context 32 + target
    starts = {int(sample_batch(tokens, 16, 32, seed=0, step=s)[0][0, 0]) for s in range(20)}
    assert starts == {0, 1}
    with pytest.raises(ValueError, match="smaller than one context window"):
        sample_batch(tokens, 1, 34, seed=0, step=0)


def test_val_batches_are_fixed_and_cover_the_split():
    batches = val_batches(TOKENS, n_batches=4, batch_size=5, context=64, seed=0)
    assert len(batches) == 4 and all(x.shape == (5, 64) for x, _ in batches)
    again = val_batches(TOKENS, n_batches=4, batch_size=5, context=64, seed=0)
    for (x, y), (x2, y2) in zip(batches, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(y, x + 1)
    starts = np.concatenate([x[:, 0] for x, _ in batches])
    slot = (len(TOKENS) - 64) / 20
    assert np.all(np.diff(starts) > 0)  # one window per slot, in order
    assert starts[0] < slot and starts[-1] >= len(TOKENS) - 64 - slot
    other = val_batches(TOKENS, n_batches=4, batch_size=5, context=64, seed=1)
    assert not np.array_equal(other[0][0], batches[0][0])
    with pytest.raises(ValueError, match="context window"):
        val_batches(TOKENS[:10], 1, 1, 64, seed=0)


# --------------------------------------------------------------------------- data-constrained

SPLIT = np.arange(20_000, dtype=np.uint32)  # token i is i: a row shows where it came from
U, CONTEXT, ROWS, ACCUM = 1000, 16, 5, 3
N_WINDOWS = (U - 1) // CONTEXT  # 62: not a multiple of the rows of a step, so batches straddle


def repeated_rows(n_rows: int, seed: int = 0, **kw) -> np.ndarray:
    """The first `n_rows` rows of a run, in the order it draws them, as (x, y) pairs."""
    args = dict(batch_size=ROWS, context=CONTEXT, seed=seed, grad_accum=ACCUM, unique_tokens=U)
    args.update(kw)
    xs, ys = [], []
    per_step = args["batch_size"] * args["grad_accum"]
    for step in range(-(-n_rows // per_step)):
        for micro in range(args["grad_accum"]):
            x, y = sample_repeated_batch(SPLIT, step=step, micro=micro, **args)
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs)[:n_rows], np.concatenate(ys)[:n_rows]


def test_each_epoch_reads_every_window_once_in_its_own_order():
    assert repeated_windows(U, CONTEXT, len(SPLIT)) == N_WINDOWS == 62
    x, y = repeated_rows(4 * N_WINDOWS)
    assert x.shape == y.shape == (4 * N_WINDOWS, CONTEXT) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(CONTEXT))  # contiguous windows
    np.testing.assert_array_equal(y, x + 1)
    starts = x[:, 0].reshape(4, N_WINDOWS)
    for epoch in starts:  # every window of the prefix exactly once per epoch
        np.testing.assert_array_equal(np.sort(epoch), np.arange(N_WINDOWS) * CONTEXT)
    orders = {tuple(e) for e in starts}
    assert len(orders) == 4  # a new order every epoch
    assert not np.array_equal(starts[0], np.arange(N_WINDOWS) * CONTEXT)  # shuffled
    assert y.max() <= U - 1  # no token beyond the first U, target included
    # another seed, another order over the same windows
    other = repeated_rows(N_WINDOWS, seed=1)[0][:, 0]
    assert not np.array_equal(other, starts[0])
    np.testing.assert_array_equal(np.sort(other), np.sort(starts[0]))


def test_no_token_beyond_unique_tokens_is_ever_read():
    # beyond U the split holds a marker that must never show up
    marked = SPLIT.copy()
    marked[U:] = 99_999
    for u in (CONTEXT + 1, 2 * CONTEXT, U):  # one window, one and a bit, many
        n = repeated_windows(u, CONTEXT, len(marked))
        for step in range(3):
            x, y = sample_repeated_batch(marked, 7, CONTEXT, 0, step, 0, 1, u)
            assert y.max() < u and x.max() < u and (n > 1 or np.all(x[:, 0] == 0))


def test_repeated_batches_are_a_pure_function():
    first = sample_repeated_batch(SPLIT, ROWS, CONTEXT, 3, 40, 2, ACCUM, U)
    data._epoch_order.cache_clear()  # a resumed process starts with nothing remembered
    again = sample_repeated_batch(SPLIT, ROWS, CONTEXT, 3, 40, 2, ACCUM, U)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # a run resumed at step 9 draws, from there, what an uninterrupted one draws
    whole = [
        sample_repeated_batch(SPLIT, ROWS, CONTEXT, 0, s, m, ACCUM, U)[0]
        for s in range(15)
        for m in range(ACCUM)
    ]
    data._epoch_order.cache_clear()
    resumed = [
        sample_repeated_batch(SPLIT, ROWS, CONTEXT, 0, s, m, ACCUM, U)[0]
        for s in range(9, 15)
        for m in range(ACCUM)
    ]
    for a, b in zip(whole[9 * ACCUM :], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_data_parallel_processes_read_disjoint_rows():
    accum, world = 4, 2
    per_rank = {rank: [] for rank in range(world)}
    for step in range(3):  # 60 rows, all in the first epoch of 62 windows
        for rank in range(world):
            for micro in range(rank, accum, world):  # the training loop's share
                x, _ = sample_repeated_batch(SPLIT, ROWS, CONTEXT, 0, step, micro, accum, U)
                per_rank[rank] += list(x[:, 0])
    a, b = set(per_rank[0]), set(per_rank[1])
    assert len(a) == len(per_rank[0]) == 30 and len(b) == 30 and not a & b
    # together they read what one process would, in the same rows
    single = repeated_rows(60, grad_accum=accum)[0][:, 0]
    assert a | b == set(single)


def test_unique_tokens_null_keeps_todays_batches():
    for step, micro in [(0, 0), (5, 1), (123, 7)]:
        want = sample_batch(TOKENS, 8, 32, seed=1, step=step, micro=micro)
        got = sample_train_batch(TOKENS, 8, 32, 1, step, micro, grad_accum=8)
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(a, b)
    got = sample_train_batch(TOKENS, 8, 32, 1, 5, 1, grad_accum=8, unique_tokens=U)
    want = sample_repeated_batch(TOKENS, 8, 32, 1, 5, 1, 8, U)
    np.testing.assert_array_equal(got[0], want[0])


def test_unique_tokens_errors_and_epochs():
    with pytest.raises(
        ValueError, match=r"data.unique_tokens=16 is shorter than one window.*at least 17"
    ):
        sample_repeated_batch(SPLIT, 1, 16, 0, 0, 0, 1, 16)
    with pytest.raises(
        ValueError,
        match=r"unique_tokens=20001 exceeds the training split \(20000 tokens\).*at most 20000.*null",
    ):
        sample_repeated_batch(SPLIT, 1, 16, 0, 0, 0, 1, 20_001)
    with pytest.raises(ValueError, match=r"micro=3 must lie in \[0, grad_accum=3\)"):
        sample_repeated_batch(SPLIT, 1, 16, 0, 0, 3, 3, U)
    assert repeated_windows(20_000, 16, 20_000) == 19_999 // 16  # the whole split is fine
    assert repeated_epochs(4_000_000, 1_000_000) == 4.0
    assert repeated_epochs(500, 1000) == 0.5
