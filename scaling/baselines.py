"""What a fine-tuned model must beat: the majority class, and a linear classifier on
bags of tokens.

A fine-tuning study that reports accuracy without baselines cannot say whether the
pretrained models learned anything a word count would not: on the default task (which
standard-library package a window of source code comes from) the package's own
identifiers give much away. Both baselines see the task exactly as the models do --
the source's tokenizer, the same train/validation/test windows -- and are computed once
per task (its ``fingerprint``) and kept beside the records:

majority
    The class most frequent in the training split, predicted for every example.
bag_of_tokens
    scikit-learn's ``LogisticRegression`` (multinomial, L2) on ``log(1 + count)`` of
    every token id in the example (padding left out), its regularisation ``C`` chosen on
    validation accuracy from 0.01, 0.1, 1, 10 and 100, scored once on the test split.
    It sees which tokens occur, not their order: a model that cannot beat it has used
    nothing a bag of tokens lacks.

scikit-learn is an extra (``pip install -e ".[finetune]"``), needed by the fine-tuning
job alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scaling import results
from scaling.tasks import Split, Task

__all__ = ["BAG_C", "bag_of_tokens", "baselines", "ensure_baselines"]

#: The inverse regularisation strengths tried on validation.
BAG_C = (0.01, 0.1, 1.0, 10.0, 100.0)


def bag_of_tokens(split: Split, vocab_size: int, pad_id: int):
    """``log(1 + count)`` of each token id per example, padding left out: a sparse
    ``(n, vocab_size)`` matrix."""
    from scipy import sparse

    rows = np.repeat(np.arange(len(split)), split.x.shape[1])
    ids = split.x.ravel()
    keep = ids != pad_id
    counts = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], ids[keep])), shape=(len(split), vocab_size)
    )
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    return counts


def baselines(task: Task, vocab_size: int, seed: int = 0) -> dict[str, Any]:
    """Both baselines' validation and test accuracies on ``task`` (see the module)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise ImportError(
            "the fine-tuning baselines need scikit-learn: pip install -e '.[finetune]'"
        ) from e
    train, val, test = (task.splits[s] for s in ("train", "val", "test"))
    majority = int(np.bincount(train.y, minlength=len(task.classes)).argmax())
    features = {s: bag_of_tokens(task.splits[s], vocab_size, task.pad_id) for s in task.splits}
    tried = []
    for c in BAG_C:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(features["train"], train.y)
        tried.append((float(model.score(features["val"], val.y)), -c, model))
    val_acc, neg_c, best = max(tried, key=lambda t: t[:2])  # ties: the stronger penalty
    return {
        "task_fingerprint": task.fingerprint,
        "majority": {
            "class": task.classes[majority],
            "val_accuracy": float(np.mean(val.y == majority)),
            "test_accuracy": float(np.mean(test.y == majority)),
        },
        "bag_of_tokens": {
            "C": -neg_c,
            "val_accuracy": val_acc,
            "test_accuracy": float(best.score(features["test"], test.y)),
        },
    }


def ensure_baselines(task: Task, vocab_size: int, sweep_dir: str | Path) -> dict[str, Any]:
    """The baselines of ``task``, read from ``<sweep_dir>/baselines-<fingerprint>.json``
    (the first 16 hex digits) or computed and written there, atomically, the first time
    (beside the run directories, not among them)."""
    path = Path(sweep_dir) / f"baselines-{task.fingerprint[:16]}.json"
    if path.is_file():
        import json

        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("task_fingerprint") == task.fingerprint:
            return kept
    found = baselines(task, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_json(path, found)
    return found
