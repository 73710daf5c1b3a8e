"""The token cache: a corpus tokenized once into memmap arrays every run shares.

See `scaling.data` for the entry layout and how concurrent builders share one build.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from scaling.data.corpora import _Corpus, _open_corpus, is_val_document
from scaling.data.disk import _atomic_write, _lock
from scaling.data.spec import FORMAT_VERSION, DataSpec, TokenData
from scaling.data.tokenizers import BPETokenizer, ByteTokenizer, _bpe_tokenizer

# The package's logger: every part logs as ``scaling.data``, as when it was one module.
log = logging.getLogger("scaling.data")

# Seconds between progress lines while tokenizing.
_PROGRESS_EVERY_S = 5.0
# DataSpec fields that say where the cache is or how batches are drawn from it, not what
# it holds: they stay out of the entry's path and of its meta.json.
_NOT_THE_ENTRY = frozenset({"cache_dir", "unique_tokens"})


def prepare(spec: DataSpec) -> TokenData:
    """Tokenize the corpus into the cache (once) and memory-map it.

    Builds the cache entry under a file lock when it is missing; otherwise, and in every
    process that waited for the builder, reuses it.

    Parameters
    ----------
    spec : DataSpec

    Returns
    -------
    TokenData

    Raises
    ------
    FileNotFoundError
        When the source file or directory is missing.
    ValueError
        On an empty corpus, an empty train or validation split, or a malformed input line.
    """
    corpus = _open_corpus(spec)
    tokenizer = ByteTokenizer() if spec.tokenizer == "byte" else _bpe_tokenizer(spec, corpus)
    entry = spec.resolved_cache_dir() / (
        f"{corpus.name}-{corpus.fingerprint[:12]}-{tokenizer.name}-"
        f"{tokenizer.fingerprint[:12]}-val{spec.val_fraction:g}"
    )
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        with _lock(entry.with_name(entry.name + ".lock"), what=f"cache entry {entry.name}"):
            if not meta_path.is_file():
                _build_entry(spec, corpus, tokenizer, entry)
    return _load_entry(entry)


def _dtype(vocab_size: int) -> type[np.unsignedinteger]:
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def _build_entry(
    spec: DataSpec, corpus: _Corpus, tokenizer: ByteTokenizer | BPETokenizer, entry: Path
) -> None:
    """Tokenize every document into ``train.bin``/``val.bin`` and write ``meta.json``."""
    start = time.perf_counter()
    entry.mkdir(parents=True, exist_ok=True)
    dtype = _dtype(tokenizer.vocab_size)
    eod = np.array([tokenizer.eod_id], dtype=dtype).tobytes()
    tmp = {split: entry / f"{split}.bin.tmp{os.getpid()}" for split in ("train", "val")}
    n_tokens = {"train": 0, "val": 0}
    n_docs = {"train": 0, "val": 0}
    log.info("building %s (%s tokenizer)", entry, tokenizer.name)

    try:
        with open(tmp["train"], "wb") as f_train, open(tmp["val"], "wb") as f_val:
            out = {"train": f_train, "val": f_val}
            last_report = time.perf_counter()
            for batch in _batches(corpus.documents()):
                encoded = tokenizer._encode_documents([content for _, content in batch])
                for (name, _), ids in zip(batch, encoded, strict=True):
                    split = "val" if is_val_document(name, spec.val_fraction) else "train"
                    out[split].write(ids.astype(dtype, copy=False).tobytes() + eod)
                    n_tokens[split] += len(ids) + 1
                    n_docs[split] += 1
                if time.perf_counter() - last_report > _PROGRESS_EVERY_S:
                    last_report = time.perf_counter()
                    log.info(
                        "tokenizing %s: %d%s documents, %.2fM tokens",
                        corpus.name,
                        n_docs["train"] + n_docs["val"],
                        f"/{corpus.n_docs}" if corpus.n_docs else "",
                        (n_tokens["train"] + n_tokens["val"]) / 1e6,
                    )
            for f in out.values():
                f.flush()
                os.fsync(f.fileno())  # data on disk before meta.json can announce it

        if n_docs["train"] + n_docs["val"] == 0:
            raise ValueError(f"empty corpus: {corpus.name} has no non-empty documents")
        for split in ("train", "val"):
            if n_docs[split] == 0:
                raise ValueError(
                    f"the {split} split of {corpus.name} is empty ({n_docs['train']} train and "
                    f"{n_docs['val']} val documents, val_fraction={spec.val_fraction}): the split is by document, "
                    "so give more documents or change data.val_fraction"
                )
        for split in ("train", "val"):
            os.replace(tmp[split], entry / f"{split}.bin")
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)

    if isinstance(tokenizer, BPETokenizer):  # keep the entry self-describing
        _atomic_write(entry / "tokenizer.json", tokenizer.json.encode("utf-8"))
    elapsed = time.perf_counter() - start
    meta = {
        "format": FORMAT_VERSION,
        "corpus": {
            "name": corpus.name,
            "fingerprint": corpus.fingerprint,
            "n_train_tokens": n_tokens["train"],
            "n_val_tokens": n_tokens["val"],
        },
        "tokenizer": {
            "name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size,
            "fingerprint": tokenizer.fingerprint,
        },
        "vocab_size": tokenizer.vocab_size,
        "eod_id": tokenizer.eod_id,
        "dtype": np.dtype(dtype).name,
        "n_docs": n_docs,
        "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k not in _NOT_THE_ENTRY},
        "build_s": round(elapsed, 3),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "built_by": {"host": socket.gethostname(), "pid": os.getpid()},
    }
    _atomic_write(entry / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())
    log.info(
        "built %s: %d train + %d val tokens (%d + %d documents) in %.1f s",
        entry.name,
        n_tokens["train"],
        n_tokens["val"],
        n_docs["train"],
        n_docs["val"],
        elapsed,
    )


def _batches(
    docs: Iterable[tuple[str, bytes]], max_docs: int = 256, max_bytes: int = 4_000_000
) -> Iterator[list[tuple[str, bytes]]]:
    """Group documents so that the BPE encoder can use every core, in bounded memory."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc[1])
        if len(batch) >= max_docs or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _load_entry(entry: Path) -> TokenData:
    meta = json.loads((entry / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    arrays = {}
    for split in ("train", "val"):
        path = entry / f"{split}.bin"
        n = meta["corpus"][f"n_{split}_tokens"]
        if path.stat().st_size != n * dtype.itemsize:
            raise RuntimeError(
                f"cache entry {entry} is damaged ({path.name} is not {n} tokens): delete the "
                "directory and it will be rebuilt"
            )
        arrays[split] = np.memmap(path, dtype=dtype, mode="r", shape=(n,))
    return TokenData(
        train=arrays["train"],
        val=arrays["val"],
        vocab_size=meta["vocab_size"],
        eod_id=meta["eod_id"],
        corpus=meta["corpus"],
        tokenizer=meta["tokenizer"],
        path=entry,
    )
