"""Classification tasks: the embedded stdlib-package task and labelled CSV/JSONL files."""

import json

import numpy as np
import pytest

from scaling.data import ByteTokenizer
from scaling.tasks import (
    DEFAULT_PACKAGES,
    SPLITS,
    TaskSpec,
    build_task,
    package_files,
    split_files,
)

BYTE = ByteTokenizer()


@pytest.fixture(scope="module")
def task():
    return build_task(TaskSpec(), BYTE, 64)


def test_default_task_is_balanced_with_at_least_four_classes(task):
    k = len(task.classes)
    assert k >= 4 and task.classes == list(DEFAULT_PACKAGES)
    for name in SPLITS:
        split = task.splits[name]
        counts = np.bincount(split.y, minlength=k)
        assert counts.min() == counts.max() > 0, (name, counts)
        assert split.x.shape == (len(split), 64) and split.x.dtype == np.int64
        assert split.x.max() < BYTE.eod_id  # windows of text: no padding, no EOD
    d = task.describe()
    assert d["n_classes"] == k and d["chance_accuracy"] == pytest.approx(1 / k)
    assert d["n_train"] == k * min(2048, d["n_train"] // k) and d["n_test"] == k * 256


def test_examples_come_from_their_package_and_splits_share_no_file(task):
    docs = {name: set(task.splits[name].docs) for name in SPLITS}
    assert not docs["train"] & docs["val"]
    assert not docs["train"] & docs["test"]
    assert not docs["val"] & docs["test"]
    for name in SPLITS:
        split = task.splits[name]
        for label, doc in zip(split.y, split.docs, strict=True):
            assert doc.startswith(task.classes[label] + "/")
    # each example really is a window of its file, at a multiple of the length
    split = task.splits["test"]
    files = dict(f for files in package_files(task.classes).values() for f in files)
    for i in (0, len(split) // 2, len(split) - 1):
        raw = files[split.docs[i]].read_bytes().decode("utf-8", errors="replace").encode()
        ids = np.frombuffer(raw, dtype=np.uint8)
        start = np.flatnonzero(
            [np.array_equal(ids[j : j + 64], split.x[i]) for j in range(0, len(ids) - 63, 64)]
        )
        assert len(start) >= 1


def test_task_is_deterministic_and_fingerprinted(task):
    again = build_task(TaskSpec(), BYTE, 64)
    assert again.fingerprint == task.fingerprint
    for name in SPLITS:
        assert np.array_equal(again.splits[name].x, task.splits[name].x)
        assert again.splits[name].docs == task.splits[name].docs
    assert build_task(TaskSpec(), BYTE, 32).fingerprint != task.fingerprint


def test_split_by_file_holds_out_about_the_asked_share_of_bytes():
    files = package_files(["email", "xml"])
    for package, listed in files.items():
        split = split_files(listed, val_fraction=0.1, test_fraction=0.1)
        assert sorted(f for s in SPLITS for f in split[s]) == sorted(listed)
        assert all(split[s] for s in SPLITS)
        total = sum(p.stat().st_size for _, p in listed)
        for s in ("val", "test"):
            share = sum(p.stat().st_size for _, p in split[s]) / total
            assert 0.1 <= share < 0.4, (package, s, share)
    with pytest.raises(ValueError, match="at least three files"):
        split_files(listed[:2], 0.1, 0.1)


def test_unknown_package_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="no standard-library package named"):
        build_task(TaskSpec(classes=("email", "nonesuch")), BYTE, 64)
    with pytest.raises(ValueError, match="two or more"):
        TaskSpec(classes=("email",))
    with pytest.raises(ValueError, match="leave room"):
        TaskSpec(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="unknown task config key"):
        TaskSpec.from_config({"name": "x", "lenght": 3})
    with pytest.raises(ValueError, match="window of 100000 tokens"):
        build_task(TaskSpec(classes=("email", "xml")), BYTE, 100_000)


def write_csv(path, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_csv_file_task_pads_truncates_and_honours_given_splits(tmp_path):
    rows = [{"text": f"good {i} " * (i % 5 + 1), "label": "pos", "split": ""} for i in range(60)]
    rows += [{"text": f"bad {i}", "label": "neg", "split": ""} for i in range(60)]
    rows += [{"text": "fixed test row", "label": "neg", "split": "test"}]
    path = tmp_path / "reviews.csv"
    write_csv(path, rows)
    spec = TaskSpec(name="reviews", source="file", path=str(path))
    task = build_task(spec, BYTE, 16)
    assert task.classes == ["neg", "pos"]
    assert sum(len(task.splits[s]) for s in SPLITS) == len(rows)
    test = task.splits["test"]
    i = test.docs.index("reviews.csv:122")  # the last row (the header is line 1)
    assert bytes(test.x[i][:14].astype(np.uint8)) == b"fixed test row"
    assert (test.x[i][14:] == BYTE.eod_id).all()  # padded with the pad id
    assert task.pad_id == BYTE.eod_id
    # long texts are cut at the length; splits follow the text, so they are the same again
    assert all((task.splits[s].x != BYTE.eod_id).sum(axis=1).max() <= 16 for s in SPLITS)
    assert build_task(spec, BYTE, 16).fingerprint == task.fingerprint


def test_jsonl_file_task_and_its_errors(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [{"body": f"text number {i}", "y": i % 3} for i in range(90)]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    spec = TaskSpec(source="file", path=str(path), text_field="body", label_field="y")
    task = build_task(spec, BYTE, 8)
    assert task.classes == ["0", "1", "2"]
    # keeping only some labels, in the order given
    two = build_task(TaskSpec(**{**spec.__dict__, "classes": ("2", "0")}), BYTE, 8)
    assert two.classes == ["2", "0"] and sum(len(s) for s in two.splits.values()) == 60
    with pytest.raises(ValueError, match="needs fields 'text' and 'label'"):
        build_task(TaskSpec(source="file", path=str(path)), BYTE, 8)
    with pytest.raises(FileNotFoundError):
        build_task(TaskSpec(source="file", path=str(tmp_path / "none.csv")), BYTE, 8)


class CharClass:
    """A stand-in tokenizer: one id per character class, EOD 9."""

    name, eod_id = "chars", 9

    def encode(self, text: str) -> list[int]:
        return [1 if c.isalpha() else 2 if c.isspace() else 3 for c in text]


def test_task_uses_the_given_tokenizer():
    task = build_task(TaskSpec(classes=("email", "xml"), test_per_class=8), CharClass(), 32)
    values = set(np.unique(np.concatenate([s.x.ravel() for s in task.splits.values()])))
    assert values <= {1, 2, 3} and task.pad_id == 9


def test_the_order_task_pairs_every_window_with_its_halves_swapped():
    task = build_task(TaskSpec(name="stdlib_order", source="stdlib_order"), BYTE, 64)
    assert task.classes == ["in_order", "halves_swapped"] and task.chance_accuracy == 0.5
    for split in SPLITS:
        s = task.splits[split]
        n = len(s) // 2
        assert (s.y[:n] == 0).all() and (s.y[n:] == 1).all()
        np.testing.assert_array_equal(s.x[n:], np.roll(s.x[:n], 32, axis=1))
        # the same tokens in both: a bag of them cannot tell the classes apart
        np.testing.assert_array_equal(np.sort(s.x[:n], axis=1), np.sort(s.x[n:], axis=1))
        assert s.docs[:n] == s.docs[n:]
    # split by file, as the package task: no file lends windows to two splits
    files = {split: set(task.splits[split].docs) for split in SPLITS}
    assert not (files["train"] & files["test"]) and not (files["val"] & files["test"])
    assert len(task.splits["test"]) == 2 * 256
