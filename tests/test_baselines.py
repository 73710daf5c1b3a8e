"""The fine-tuning baselines: the majority class and a bag-of-tokens linear classifier."""

import json

import numpy as np
import pytest

from scaling.baselines import bag_of_tokens, baselines, ensure_baselines
from scaling.data import ByteTokenizer
from scaling.tasks import Split, TaskSpec, build_task

BYTE = ByteTokenizer()


@pytest.fixture(scope="module")
def task():
    return build_task(TaskSpec(), BYTE, 64)  # the default eight packages: chance 1/8


def test_bag_of_tokens_counts_each_id_and_leaves_padding_out():
    split = Split(x=np.array([[5, 5, 7, 0, 0], [1, 2, 3, 4, 5]]), y=np.array([0, 1]), docs=["a", "b"])
    counts = bag_of_tokens(split, vocab_size=8, pad_id=0).toarray()
    assert counts.shape == (2, 8)
    np.testing.assert_allclose(counts[0], np.log1p([0, 0, 0, 0, 0, 2, 0, 1]))
    np.testing.assert_allclose(counts[1], np.log1p([0, 1, 1, 1, 1, 1, 0, 0]))


def test_majority_is_the_largest_training_class_scored_on_test(task):
    found = baselines(task, BYTE.vocab_size)
    train_y, test_y = task.splits["train"].y, task.splits["test"].y
    top = int(np.bincount(train_y).argmax())
    assert found["majority"]["class"] == task.classes[top]
    assert found["majority"]["test_accuracy"] == pytest.approx(float(np.mean(test_y == top)))
    # the bag of byte counts tells packages apart far above chance (1/8) and the majority
    bag = found["bag_of_tokens"]
    assert bag["C"] in (0.01, 0.1, 1.0, 10.0, 100.0)
    assert bag["test_accuracy"] > max(0.3, found["majority"]["test_accuracy"] + 0.1)


def test_baselines_are_computed_once_per_task_and_kept_beside_the_records(task, tmp_path):
    first = ensure_baselines(task, BYTE.vocab_size, tmp_path)
    (path,) = tmp_path.glob("baselines-*.json")
    assert path.name == f"baselines-{task.fingerprint[:16]}.json"
    assert json.loads(path.read_text()) == first
    stamp = path.stat().st_mtime_ns
    assert ensure_baselines(task, BYTE.vocab_size, tmp_path) == first
    assert path.stat().st_mtime_ns == stamp  # read back, not recomputed
    other = build_task(TaskSpec(classes=("email", "json")), BYTE, 64)
    ensure_baselines(other, BYTE.vocab_size, tmp_path)
    assert len(list(tmp_path.glob("baselines-*.json"))) == 2


def test_the_bag_of_tokens_is_at_chance_on_the_order_task():
    """Every window is there in both orders: identical bags with opposite labels."""
    task = build_task(TaskSpec(name="stdlib_order", source="stdlib_order"), BYTE, 64)
    found = baselines(task, BYTE.vocab_size)
    assert found["bag_of_tokens"]["test_accuracy"] == 0.5
    assert found["majority"]["test_accuracy"] == 0.5
