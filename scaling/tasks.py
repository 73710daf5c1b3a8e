"""Text-classification tasks for fine-tuning, tokenized with the pretrained model's tokenizer.

Sources (``TaskSpec.source``)
    ``stdlib``
        The embedded default, built from the corpus the models were pretrained on: *which
        standard-library package does this code come from?* Each class is a top-level
        package of the running interpreter's standard library (by default
        :data:`DEFAULT_PACKAGES`, eight of them: chance is 12.5 %). An example is a window of
        ``length`` tokens of one of the package's ``.py`` files; a file is cut into
        consecutive, non-overlapping windows. Every split holds the same number of examples
        per class (balanced), sampled with a fixed seed.
    ``stdlib_order``
        A task that needs word order, which a bag of tokens cannot see: *is this window of
        code in its order, or were its two halves swapped?* The windows are those of
        ``stdlib`` (from the packages of ``classes``, default :data:`DEFAULT_PACKAGES`,
        pooled), and every chosen window appears twice in its split: as it is (class
        ``in_order``) and with its second half moved before its first
        (``halves_swapped``). The two have the same tokens, so a bag-of-tokens
        classifier scores exactly chance, 50 %, and what a model gains above it comes
        from order. ``*_per_class`` count windows, each giving one example per class.
    ``file``
        Your own labelled texts: a ``.csv`` with a header (columns ``text_field`` and
        ``label_field``) or a ``.jsonl`` of objects with those fields. An optional ``split``
        column/field (``train``, ``val``, ``test``) is honoured; rows without one are split by
        a hash of their text, so duplicate texts always land together. Each text becomes one
        example: its first ``length`` tokens, padded at the end. Classes are not rebalanced.

Splits
    By *file* for ``stdlib``, so no file lends windows to two splits. Within each package
    the files are ordered by a hash of their relative path and handed out in that order:
    to ``test`` until it holds ``test_fraction`` of the package's bytes, then to ``val``
    until ``val_fraction``, the rest to ``train`` (each split gets at least one file). The
    assignment depends only on the file names and sizes, so it is the same on every
    machine and does not change with the tokenizer.

Padding
    Examples shorter than ``length`` (only from ``file``) are padded on the right with the
    tokenizer's end-of-document id, which the tokenizer never emits inside a text. The
    fine-tuned model is told it is the pad id, so it classifies from the last real token.

Note that the ``stdlib`` snippets are text the models saw during pretraining (minus the
1 % of files held out for validation): the labels were never shown, but the code was. That
is the usual situation of pretrained models and web-scale benchmarks alike.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from scaling.data import spec_from_config, stdlib_files

SOURCES = ("stdlib", "stdlib_order", "file")
SPLITS = ("train", "val", "test")

#: Packages present in every CPython from 3.10 on, each with 20+ files (enough for a split
#: by file) and code of its own character: networking, C types, mail, import machinery,
#: processes, GUI, testing, markup.
DEFAULT_PACKAGES = (
    "asyncio",
    "ctypes",
    "email",
    "importlib",
    "multiprocessing",
    "tkinter",
    "unittest",
    "xml",
)

# Seeds of the task's own random choices: fixed, so every fine-tuning run of every model
# and seed sees the same examples.
_SAMPLE_SEED = 0x7A5C


class Tokenizer(Protocol):
    """What a task needs of a tokenizer (``scaling.data.ByteTokenizer``, ``BPETokenizer``)."""

    name: str
    eod_id: int

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class TaskSpec:
    """Which task, from where, and how many examples; mirrors the Hydra ``task`` group.

    Parameters
    ----------
    name : str
        The task's name in records and plots.
    source : str
        ``stdlib`` or ``file`` (see the module docstring).
    path : str or None
        ``file`` only: the ``.csv`` or ``.jsonl`` file.
    classes : sequence of str or None
        ``stdlib``: the packages (default :data:`DEFAULT_PACKAGES`). ``stdlib_order``: the
        packages the windows come from (the classes are ``in_order`` and
        ``halves_swapped``). ``file``: the labels to keep, in this order (default: every
        label, sorted).
    length : int or None
        Tokens per example; None: the pretrained model's context.
    train_per_class, val_per_class, test_per_class : int
        At most this many examples per class in each split (``stdlib``: exactly the
        smallest class's count when that is lower, so classes stay balanced).
    val_fraction, test_fraction : float
        Share of each package's bytes (``stdlib``) or of the rows without a ``split``
        (``file``) held out for validation and test.
    text_field, label_field : str
        ``file`` only: the column or field names.
    """

    name: str = "stdlib_packages"
    source: str = "stdlib"
    path: str | None = None
    classes: tuple[str, ...] | None = None
    length: int | None = None
    train_per_class: int = 2048
    val_per_class: int = 96
    test_per_class: int = 256
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    text_field: str = "text"
    label_field: str = "label"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"task.source={self.source!r} is unknown: use one of {SOURCES}")
        if self.source == "file" and not self.path:
            raise ValueError("task.source='file' needs task.path (a .csv or .jsonl file)")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
            if len(set(self.classes)) < 2:
                raise ValueError(f"task.classes={list(self.classes)}: need two or more classes")
        if self.length is not None and int(self.length) < 1:
            raise ValueError(f"task.length={self.length} must be >= 1 or null")
        fractions = (self.val_fraction, self.test_fraction)
        if not all(0 < f < 1 for f in fractions) or sum(fractions) >= 1:
            raise ValueError(
                f"task.val_fraction={self.val_fraction}, task.test_fraction="
                f"{self.test_fraction}: each must lie in (0, 1) and leave room for training"
            )

    @classmethod
    def from_config(cls, cfg: Mapping) -> TaskSpec:
        """Build a spec from a mapping such as the Hydra ``task`` config group.

        Raises
        ------
        ValueError
            On a key that is not a field, listing the valid ones.
        """
        return spec_from_config(cls, cfg, "task")


@dataclass
class Split:
    """One split of a task.

    Attributes
    ----------
    x : numpy.ndarray
        ``int64`` token ids, shape ``(n, length)``.
    y : numpy.ndarray
        ``int64`` class indices, shape ``(n,)``.
    docs : list of str
        The document each example was taken from (file path, or ``file:row``).
    """

    x: np.ndarray
    y: np.ndarray
    docs: list[str]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Task:
    """A built task: three splits of fixed-length token windows and their labels.

    Attributes
    ----------
    name, source : str
        From the spec.
    classes : list of str
        Class names; label ``i`` is ``classes[i]``.
    length : int
        Tokens per example.
    pad_id : int
        The id padding short examples (the tokenizer's end-of-document id).
    splits : dict
        ``{"train", "val", "test"}`` -> :class:`Split`.
    fingerprint : str
        SHA-256 of the classes and every example: two runs with the same fingerprint were
        trained and scored on exactly the same data.
    """

    name: str
    source: str
    classes: list[str]
    length: int
    pad_id: int
    splits: dict[str, Split]
    fingerprint: str

    @property
    def chance_accuracy(self) -> float:
        """Accuracy of always guessing the test set's most frequent class."""
        counts = np.bincount(self.splits["test"].y, minlength=len(self.classes))
        return float(counts.max() / counts.sum())

    def describe(self) -> dict:
        """What the run record keeps about the task."""
        return {
            "name": self.name,
            "source": self.source,
            "classes": list(self.classes),
            "n_classes": len(self.classes),
            "length": self.length,
            **{f"n_{s}": len(self.splits[s]) for s in SPLITS},
            "chance_accuracy": self.chance_accuracy,
            "fingerprint": self.fingerprint,
        }


# --------------------------------------------------------------------------------------


def build_task(spec: TaskSpec, tokenizer: Tokenizer, length: int) -> Task:
    """Build the task of ``spec`` with examples of ``length`` tokens.

    Parameters
    ----------
    spec : TaskSpec
    tokenizer : Tokenizer
        The pretrained model's tokenizer (``scaling.data.load_tokenizer``).
    length : int
        Tokens per example (``spec.length`` if set, else the model's context).

    Returns
    -------
    Task

    Raises
    ------
    ValueError
        Unknown packages or labels, a package too small to split by file, or a split
        left without examples of some class.
    """
    if spec.source == "stdlib":
        classes, splits = _stdlib_splits(spec, tokenizer, length)
    elif spec.source == "stdlib_order":
        classes, splits = _order_splits(spec, tokenizer, length)
    else:
        classes, splits = _file_splits(spec, tokenizer, length)
    for split_name, split in splits.items():
        missing = sorted(set(range(len(classes))) - set(split.y.tolist()))
        if missing:
            names = [classes[i] for i in missing]
            raise ValueError(
                f"task {spec.name!r}: the {split_name} split has no examples of {names}"
            )
    digest = hashlib.sha256(json.dumps([spec.name, classes, length]).encode())
    for s in SPLITS:
        digest.update(splits[s].x.tobytes())
        digest.update(splits[s].y.tobytes())
    return Task(
        name=spec.name,
        source=spec.source,
        classes=classes,
        length=length,
        pad_id=int(tokenizer.eod_id),
        splits=splits,
        fingerprint=digest.hexdigest(),
    )


# --------------------------------------------------------------------------------------
# stdlib: which package a window of code comes from


def package_files(
    packages: Sequence[str], root: str | Path | None = None
) -> dict[str, list[tuple[str, Path]]]:
    """The ``.py`` files of each top-level standard-library package, in corpus order.

    Raises
    ------
    ValueError
        When a package has no files, naming the packages that have some.
    """
    by_package: dict[str, list[tuple[str, Path]]] = {}
    for rel, path in stdlib_files(root):
        if "/" in rel:
            by_package.setdefault(rel.split("/", 1)[0], []).append((rel, path))
    unknown = [p for p in packages if p not in by_package]
    if unknown:
        known = sorted(p for p, files in by_package.items() if len(files) >= 3)
        raise ValueError(f"no standard-library package named {unknown}; packages: {known}")
    return {p: by_package[p] for p in packages}


def split_files(
    files: Sequence[tuple[str, Path]], val_fraction: float, test_fraction: float
) -> dict[str, list[tuple[str, Path]]]:
    """Assign one package's files to train/val/test by a hash of their names (see above).

    Raises
    ------
    ValueError
        With fewer than three files: one per split is the least a split by file needs.
    """
    if len(files) < 3:
        names = [rel for rel, _ in files]
        raise ValueError(f"{names}: a split by file needs at least three files")
    order = sorted(files, key=lambda f: hashlib.sha256(f"task-split:{f[0]}".encode()).digest())
    sizes = [path.stat().st_size for _, path in order]
    total = sum(sizes)
    out: dict[str, list[tuple[str, Path]]] = {s: [] for s in SPLITS}
    held = {"test": 0, "val": 0}  # bytes given to each held-out split so far
    for i, (file, size) in enumerate(zip(order, sizes, strict=True)):
        left = len(order) - i  # files not yet assigned, this one included
        # `left` keeps at least one file for each split still to come
        if not out["test"] or (held["test"] < test_fraction * total and left > 2):
            split = "test"
        elif not out["val"] or (held["val"] < val_fraction * total and left > 1):
            split = "val"
        else:
            split = "train"
        out[split].append(file)
        if split != "train":
            held[split] += size
    return out


def _windows(tokenizer: Tokenizer, path: Path, length: int) -> np.ndarray:
    """Consecutive non-overlapping windows of ``length`` tokens of one file."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    n = len(ids) // length
    return ids[: n * length].reshape(n, length)


def _stdlib_splits(
    spec: TaskSpec, tokenizer: Tokenizer, length: int
) -> tuple[list[str], dict[str, Split]]:
    classes = list(spec.classes or DEFAULT_PACKAGES)
    files = package_files(classes)
    # pools[split][class] = (windows, the file of each window)
    pools: dict[str, list[tuple[np.ndarray, list[str]]]] = {s: [] for s in SPLITS}
    for package in classes:
        assigned = split_files(files[package], spec.val_fraction, spec.test_fraction)
        for split in SPLITS:
            windows, docs = [], []
            for rel, path in assigned[split]:
                w = _windows(tokenizer, path, length)
                windows.append(w)
                docs += [rel] * len(w)
            pools[split].append((np.concatenate(windows), docs))

    caps = {"train": spec.train_per_class, "val": spec.val_per_class, "test": spec.test_per_class}
    splits = {}
    for i, split in enumerate(SPLITS):
        # balanced: every class gives as many examples as the poorest one can
        n = min([caps[split]] + [len(w) for w, _ in pools[split]])
        if n == 0:
            raise ValueError(
                f"task {spec.name!r}: some package has no window of {length} tokens in its "
                f"{split} files; use a shorter task.length"
            )
        rng = np.random.default_rng([_SAMPLE_SEED, i])
        xs, ys, docs = [], [], []
        for label, (windows, window_docs) in enumerate(pools[split]):
            pick = np.sort(rng.choice(len(windows), size=n, replace=False))
            xs.append(windows[pick])
            ys.append(np.full(n, label, dtype=np.int64))
            docs += [window_docs[j] for j in pick]
        splits[split] = Split(np.concatenate(xs), np.concatenate(ys), docs)
    return classes, splits


# --------------------------------------------------------------------------------------
# stdlib_order: in order, or halves swapped


#: The classes of ``stdlib_order``.
ORDER_CLASSES = ["in_order", "halves_swapped"]


def _order_splits(
    spec: TaskSpec, tokenizer: Tokenizer, length: int
) -> tuple[list[str], dict[str, Split]]:
    if length < 2:
        raise ValueError(f"task {spec.name!r}: swapping halves needs task.length >= 2")
    files = package_files(list(spec.classes or DEFAULT_PACKAGES))
    pools: dict[str, tuple[list[np.ndarray], list[str]]] = {s: ([], []) for s in SPLITS}
    for package_files_ in files.values():
        assigned = split_files(package_files_, spec.val_fraction, spec.test_fraction)
        for split in SPLITS:
            for rel, path in assigned[split]:
                w = _windows(tokenizer, path, length)
                pools[split][0].append(w)
                pools[split][1].extend([rel] * len(w))
    caps = {"train": spec.train_per_class, "val": spec.val_per_class, "test": spec.test_per_class}
    half = length // 2
    splits = {}
    for i, split in enumerate(SPLITS):
        windows = np.concatenate(pools[split][0]) if pools[split][0] else np.zeros((0, length))
        n = min(caps[split], len(windows))
        if n == 0:
            raise ValueError(
                f"task {spec.name!r}: no window of {length} tokens in the {split} files; "
                "use a shorter task.length"
            )
        rng = np.random.default_rng([_SAMPLE_SEED, 100 + i])
        pick = np.sort(rng.choice(len(windows), size=n, replace=False))
        original = windows[pick].astype(np.int64)
        swapped = np.concatenate([original[:, half:], original[:, :half]], axis=1)
        docs = [pools[split][1][j] for j in pick]
        splits[split] = Split(
            np.concatenate([original, swapped]),
            np.repeat(np.array([0, 1], dtype=np.int64), n),
            docs + docs,
        )
    return list(ORDER_CLASSES), splits


# --------------------------------------------------------------------------------------
# file: labelled texts from a CSV or JSONL


def read_labelled(path: str | Path, text_field: str, label_field: str) -> list[dict[str, str]]:
    """Rows of a ``.csv`` (with a header) or ``.jsonl`` as ``{name, text, label, split}``.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, another suffix, a row without the fields, or a bad ``split``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"task.path={str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            records = [(i, r) for i, r in enumerate(csv.DictReader(f), start=2)]
    elif path.suffix.lower() == ".jsonl":
        records = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    records.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    else:
        raise ValueError(f"task.path={str(path)!r}: expected a .csv or .jsonl file")
    rows = []
    for lineno, record in records:
        if not isinstance(record, dict) or text_field not in record or label_field not in record:
            raise ValueError(
                f"{path}:{lineno}: needs fields {text_field!r} and {label_field!r} "
                "(set task.text_field / task.label_field)"
            )
        split = record.get("split") or None
        if split is not None and split not in SPLITS:
            raise ValueError(f"{path}:{lineno}: split {split!r} is not one of {SPLITS}")
        rows.append(
            {
                "name": f"{path.name}:{lineno}",
                "text": str(record[text_field]),
                "label": str(record[label_field]),
                "split": split,
            }
        )
    return rows


def _hash_split(text: str, val_fraction: float, test_fraction: float) -> str:
    u = int.from_bytes(hashlib.sha256(f"task-split:{text}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def _file_splits(
    spec: TaskSpec, tokenizer: Tokenizer, length: int
) -> tuple[list[str], dict[str, Split]]:
    rows = [r for r in read_labelled(spec.path, spec.text_field, spec.label_field) if r["text"]]
    classes = list(spec.classes) if spec.classes else sorted({r["label"] for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    caps = {"train": spec.train_per_class, "val": spec.val_per_class, "test": spec.test_per_class}
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in rows:
        if r["label"] in index:
            split = r["split"] or _hash_split(r["text"], spec.val_fraction, spec.test_fraction)
            by_split[split].append(r)
    splits = {}
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([_SAMPLE_SEED, i])
        chosen = []
        for c in classes:
            members = [r for r in by_split[split] if r["label"] == c]
            if len(members) > caps[split]:
                pick = np.sort(rng.choice(len(members), size=caps[split], replace=False))
                members = [members[j] for j in pick]
            chosen += members
        x = np.full((len(chosen), length), tokenizer.eod_id, dtype=np.int64)
        for j, r in enumerate(chosen):
            ids = tokenizer.encode(r["text"])[:length]
            x[j, : len(ids)] = ids
        y = np.array([index[r["label"]] for r in chosen], dtype=np.int64)
        splits[split] = Split(x, y, [r["name"] for r in chosen])
    return classes, splits
