"""Corpora -> tokenized memmap arrays, cached and shared by every run of a sweep.

A corpus is a sequence of *documents*. Each document is tokenized and followed by one
end-of-document (EOD) token; the documents are written, in corpus order, into two flat token
arrays on disk (``train.bin`` and ``val.bin``) that every run memory-maps read-only.

Sources (``DataSpec.source``)
    ``stdlib``
        The default and needs no download: the ``.py`` files of the running interpreter's
        standard library (``sysconfig.get_paths()["stdlib"]``), without ``site-packages``,
        ``dist-packages`` and ``__pycache__``, sorted by relative POSIX path. One file is one
        document. Files are read as bytes, so the few stdlib files that are not UTF-8 stay
        exact in byte mode (the BPE tokenizer sees them decoded with ``errors="replace"``).
        The same Python version gives the same corpus, and the same fingerprint, everywhere.
    ``text``
        A ``.txt`` file, or a directory searched recursively for ``.txt`` files. Each file is
        split into documents at blank lines (lines holding only whitespace), so a single
        large file still has many documents to split into train and validation.
    ``jsonl``
        A ``.jsonl`` file, or a directory of them. Each non-blank line is one JSON object
        and one document, its text in ``text_field``.
    ``hf``
        A Hugging Face ``datasets`` dataset: ``load_dataset(path, name, split=split,
        data_files=data_files)`` with the text in ``text_field``. Local files work too, e.g.
        ``path="json"`` or ``path="parquet"`` with ``data_files``. ``datasets`` is optional
        and imported only here.

Tokenizers (``DataSpec.tokenizer``)
    ``byte``
        Ids 0-255 are the bytes themselves and id 256 is EOD: a vocabulary of 257.
    ``bpe``
        A byte-level BPE trained with the ``tokenizers`` library on the whole corpus (train
        and validation documents: the merges are a property of the corpus, shared by every
        split), ``vocab_size`` ids in all, EOD (``<|endoftext|>``) being id 0. It is trained
        once and cached as ``tokenizer.json`` under a key of corpus fingerprint and vocab
        size; training is deterministic.

Train/validation split
    By document: a document goes to validation when a hash of its name (its relative path,
    ``path#paragraph`` for text, ``path:line`` for JSONL, the row index for ``hf``) falls
    under ``val_fraction``. The split depends on nothing but the name, so it is the same on
    every machine and in any processing order.

Cache layout
    ``<cache_dir>/<corpus>-<fp12>-<tokenizer>-<fp12>-val<fraction>/{train.bin,val.bin,meta.json}``
    where the fingerprints are SHA-256 digests: of every file's relative path and content
    hash (or every text of an ``hf`` dataset) for the corpus, and of the tokenizer's
    definition. Arrays are ``uint16`` (``uint32`` when the vocabulary exceeds 65536 ids).
    Files are written under temporary names and renamed, ``meta.json`` last: an entry
    without ``meta.json`` is incomplete and gets rebuilt. When several processes start at
    once, one builds under a file lock and the others wait for it, then reuse its output;
    a process finding ``meta.json`` never takes the lock.

The cache directory is ``DataSpec.cache_dir`` unless the environment variable
``SCALING_LAB_CACHE`` is set, which then wins (so a cluster can point every job at scratch).

Training batches
    By default (``unique_tokens`` null) every row is a window starting anywhere in the
    training split, drawn at random (`sample_batch`). With ``unique_tokens = U`` the run
    is *data-constrained* (Muennighoff et al. 2023, "Scaling Data-Constrained Language
    Models"): only the first U tokens of the training split are used, cut into
    ``(U - 1) // context`` windows that do not overlap (each reads ``context + 1`` tokens,
    its last, the target, being the next window's first, as in `sample_batch`), visited in
    a seeded order that changes every epoch (`sample_repeated_batch`). ``unique_tokens`` changes sampling
    only: not the cache entry, its path or its fingerprints.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import socket
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

#: Bump when the way documents are read, split or tokenized changes: it is part of every
#: fingerprint, so old cache entries are then never mistaken for new ones.
FORMAT_VERSION = 1

SOURCES = ("stdlib", "text", "jsonl", "hf")
TOKENIZERS = ("byte", "bpe")
EOD_TEXT = "<|endoftext|>"
CACHE_ENV = "SCALING_LAB_CACHE"

# Directories of the stdlib tree that are not the standard library.
_STDLIB_EXCLUDE = frozenset({"site-packages", "dist-packages", "__pycache__"})
# Seconds between progress lines while tokenizing.
_PROGRESS_EVERY_S = 5.0
# DataSpec fields that say where the cache is or how batches are drawn from it, not what
# it holds: they stay out of the entry's path and of its meta.json.
_NOT_THE_ENTRY = frozenset({"cache_dir", "unique_tokens"})


# --------------------------------------------------------------------------- the spec


Spec = TypeVar("Spec")


def spec_from_config(cls: type[Spec], cfg: Mapping, group: str) -> Spec:
    """The dataclass ``cls`` built from the config group ``group``, naming unknown keys."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in cfg if k not in valid)
    if unknown:
        raise ValueError(f"unknown {group} config key(s) {unknown}; valid keys: {valid}")
    return cls(**{str(k): v for k, v in cfg.items()})


@dataclass(frozen=True)
class DataSpec:
    """What to tokenize and how; mirrors the Hydra ``data`` config group.

    Parameters
    ----------
    source : str
        ``stdlib`` (default), ``text``, ``jsonl`` or ``hf``; see the module docstring.
    path : str or None
        File or directory for ``text``/``jsonl``; the dataset path (or builder name such as
        ``"json"``, ``"parquet"``) for ``hf``. Relative paths are taken from the current
        directory.
    name : str or None
        ``hf`` only: the dataset's configuration name.
    split : str
        ``hf`` only: the split to read, slices allowed (``"train[:10000]"``).
    text_field : str
        ``jsonl``/``hf``: the field holding each document's text.
    data_files : str or None
        ``hf`` only: passed to ``load_dataset(data_files=...)``.
    tokenizer : str
        ``byte`` (default) or ``bpe``.
    vocab_size : int
        ``bpe`` only: the vocabulary size, EOD included.
    val_fraction : float
        Expected fraction of documents held out for validation, in (0, 1).
    max_files : int or None
        For quick checks: use only the first ``max_files`` files of a file-based source
        (``stdlib``, ``text``, ``jsonl``) in corpus order. It changes the corpus fingerprint.
    cache_dir : str
        Where cache entries live (``~`` expanded); ``$SCALING_LAB_CACHE`` wins when set.
    unique_tokens : int or None
        Data-constrained training: train on the first ``unique_tokens`` tokens of the
        training split only, epoch after epoch (`sample_repeated_batch`); null (default)
        samples the whole split (`sample_batch`). Sampling only: it is not part of the
        cache entry's identity.
    """

    source: str = "stdlib"
    path: str | None = None
    name: str | None = None
    split: str = "train"
    text_field: str = "text"
    data_files: str | None = None
    tokenizer: str = "byte"
    vocab_size: int = 4096
    val_fraction: float = 0.01
    max_files: int | None = None
    cache_dir: str = "~/.cache/scaling-lab"
    unique_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data.source={self.source!r} is unknown: use one of {SOURCES}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(
                f"data.tokenizer={self.tokenizer!r} is unknown: use one of {TOKENIZERS}"
            )
        if self.source != "stdlib" and not self.path:
            raise ValueError(f"data.source={self.source!r} needs data.path (a file or dataset)")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"data.val_fraction={self.val_fraction} must lie in (0, 1)")
        if self.tokenizer == "bpe" and not 258 <= int(self.vocab_size) <= 2**32:
            raise ValueError(
                f"data.vocab_size={self.vocab_size} is too small for a byte-level BPE: it "
                "needs the 256 bytes, EOD and at least one merge (>= 258)"
            )
        if self.max_files is not None:
            if self.source == "hf":
                raise ValueError(
                    "data.max_files applies to file sources; for hf slice the split instead, "
                    "e.g. data.split='train[:1000]'"
                )
            if int(self.max_files) < 1:
                raise ValueError(f"data.max_files={self.max_files} must be >= 1 or null")
        if self.unique_tokens is not None:
            u = self.unique_tokens
            # 1e6 from a command line is a float: whole numbers are fine, 2.5 or True not
            real = (int, float, np.integer, np.floating)
            whole = isinstance(u, real) and not isinstance(u, bool) and float(u).is_integer()
            if not whole or u < 1:
                raise ValueError(
                    f"data.unique_tokens={u!r} must be a positive whole number of tokens or "
                    "null (the whole training split)"
                )
            object.__setattr__(self, "unique_tokens", int(u))

    @classmethod
    def from_config(cls, cfg: Mapping) -> DataSpec:
        """Build a spec from a mapping such as the Hydra ``data`` config group.

        Parameters
        ----------
        cfg : Mapping
            Keys are field names of `DataSpec`; missing keys keep their defaults.

        Returns
        -------
        DataSpec

        Raises
        ------
        ValueError
            On a key that is not a field, listing the valid ones.
        """
        return spec_from_config(cls, cfg, "data")

    def resolved_cache_dir(self) -> Path:
        """The cache directory in use: ``$SCALING_LAB_CACHE`` if set, else `cache_dir`."""
        return Path(os.environ.get(CACHE_ENV) or self.cache_dir).expanduser()


@dataclass
class TokenData:
    """A prepared corpus: read-only token arrays and what they were made from.

    Attributes
    ----------
    train, val : numpy.ndarray
        Read-only ``numpy.memmap`` token arrays (``uint16`` or ``uint32``); each document
        is followed by `eod_id`.
    vocab_size : int
        The size the model's embedding needs, EOD included.
    eod_id : int
        The end-of-document id.
    corpus : dict
        ``{"name", "fingerprint", "n_train_tokens", "n_val_tokens"}``, for the run record.
    tokenizer : dict
        ``{"name", "vocab_size", "fingerprint"}``, for the run record.
    path : pathlib.Path
        The cache entry directory.
    """

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    eod_id: int
    corpus: dict
    tokenizer: dict
    path: Path


# --------------------------------------------------------------------------- corpora


@dataclass
class _Corpus:
    """A fingerprinted corpus whose documents can be iterated (more than once)."""

    name: str
    fingerprint: str
    n_docs: int | None  # for progress lines; None when unknown before reading
    documents: Callable[[], Iterator[tuple[str, bytes]]]  # yields (document name, content)


def stdlib_files(root: str | Path | None = None) -> list[tuple[str, Path]]:
    """List the standard library's ``.py`` files in corpus order.

    Parameters
    ----------
    root : str or Path, optional
        The stdlib directory; defaults to the running interpreter's.

    Returns
    -------
    list of (str, Path)
        ``(relative POSIX path, absolute path)`` pairs sorted by relative path, without
        anything under ``site-packages``, ``dist-packages`` or ``__pycache__``.
    """
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    return _walk(root, suffix=".py", exclude=_STDLIB_EXCLUDE)


def _walk(root: Path, suffix: str, exclude: frozenset[str] = frozenset()) -> list[tuple[str, Path]]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Pruning here (rather than filtering afterwards) keeps us out of site-packages,
        # which can be twenty times the size of the standard library itself.
        dirnames[:] = [d for d in dirnames if d not in exclude]
        for fname in filenames:
            if fname.endswith(suffix):
                path = Path(dirpath) / fname
                files.append((path.relative_to(root).as_posix(), path))
    files.sort(key=lambda item: item[0])
    return files


def corpus_files(spec: DataSpec) -> list[tuple[str, Path]]:
    """The files of a file-based source, in corpus order (``max_files`` applied).

    Parameters
    ----------
    spec : DataSpec
        With ``source`` one of ``stdlib``, ``text``, ``jsonl``.

    Returns
    -------
    list of (str, Path)
        ``(name relative to the source root, path)`` pairs.

    Raises
    ------
    FileNotFoundError
        When ``spec.path`` does not exist.
    ValueError
        When the source is ``hf`` or no file matches.
    """
    if spec.source == "stdlib":
        files = stdlib_files()
    elif spec.source in ("text", "jsonl"):
        suffix = ".txt" if spec.source == "text" else ".jsonl"
        path = Path(spec.path).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"data.path={spec.path!r} does not exist (source={spec.source}): give a "
                f"{suffix} file or a directory holding {suffix} files"
            )
        files = [(path.name, path)] if path.is_file() else _walk(path, suffix=suffix)
    else:
        raise ValueError(f"data.source={spec.source!r} has no files: it is not file-based")
    if not files:
        raise ValueError(f"empty corpus: no {spec.source} files found (data.path={spec.path!r})")
    return files[: spec.max_files] if spec.max_files else files


def corpus_fingerprint(spec: DataSpec) -> str:
    """The SHA-256 identity of the corpus a spec describes (hex, 64 digits).

    Parameters
    ----------
    spec : DataSpec

    Returns
    -------
    str
        Over the reading rules and every file's relative path and content hash (or every
        text of an ``hf`` dataset), in corpus order.
    """
    return _open_corpus(spec).fingerprint


def _open_corpus(spec: DataSpec) -> _Corpus:
    if spec.source == "hf":
        return _hf_corpus(spec)
    files = corpus_files(spec)
    # Everything that changes how files become documents belongs in the identity.
    header = {"format": FORMAT_VERSION, "source": spec.source}
    if spec.source == "jsonl":
        header["text_field"] = spec.text_field
    fingerprint = _files_fingerprint(header, files, spec.resolved_cache_dir())
    if spec.source == "stdlib":
        name = "stdlib"
        read = _stdlib_documents
    else:
        name = _slug(Path(spec.path).expanduser().resolve().stem or spec.source)
        read = _text_documents if spec.source == "text" else _jsonl_reader(spec.text_field)
    return _Corpus(
        name=name,
        fingerprint=fingerprint,
        n_docs=len(files) if spec.source == "stdlib" else None,
        documents=lambda: read(files),
    )


def _files_fingerprint(header: dict, files: list[tuple[str, Path]], cache_dir: Path) -> str:
    """Content fingerprint of a file list, remembered under a (path, size, mtime) key.

    The identity is always the content hash; the stat key only saves re-reading every
    file at every run start when nothing has changed.
    """
    stat_key = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for _, path in files:
        st = path.stat()
        stat_key.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    memo = cache_dir / "fingerprints" / stat_key.hexdigest()[:32]
    if memo.is_file():
        cached = memo.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", cached):
            return cached

    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for rel, path in files:
        digest.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    fingerprint = digest.hexdigest()
    _atomic_write(memo, fingerprint.encode())
    return fingerprint


def _stdlib_documents(files: list[tuple[str, Path]]) -> Iterator[tuple[str, bytes]]:
    for rel, path in files:
        yield rel, path.read_bytes()


# A blank line: a newline, then only spaces/tabs (and a CR) up to the next newline.
_BLANK_LINES = re.compile(rb"\r?\n(?:[ \t]*\r?\n)+")


def _text_documents(files: list[tuple[str, Path]]) -> Iterator[tuple[str, bytes]]:
    for rel, path in files:
        paragraphs = _BLANK_LINES.split(path.read_bytes())
        for i, doc in enumerate(paragraphs):
            if doc.strip():
                yield f"{rel}#{i}", doc


def _jsonl_reader(text_field: str) -> Callable[[list[tuple[str, Path]]], Iterator]:
    def read(files: list[tuple[str, Path]]) -> Iterator[tuple[str, bytes]]:
        for rel, path in files:
            with open(path, "rb") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                        raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from None
                    if not isinstance(record, dict) or text_field not in record:
                        keys = list(record) if isinstance(record, dict) else type(record).__name__
                        raise ValueError(
                            f"{path}:{lineno}: no {text_field!r} field (found {keys}); "
                            "set data.text_field to the field holding the text"
                        )
                    text = record[text_field]
                    if not isinstance(text, str):
                        raise ValueError(
                            f"{path}:{lineno}: field {text_field!r} is "
                            f"{type(text).__name__}, not a string"
                        )
                    if text:
                        yield f"{rel}:{lineno}", text.encode("utf-8", errors="replace")

    return read


def _hf_corpus(spec: DataSpec) -> _Corpus:
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            "data.source='hf' needs the `datasets` package: pip install 'scaling-lab[hf]'"
        ) from e
    ds = datasets.load_dataset(spec.path, spec.name, split=spec.split, data_files=spec.data_files)
    if spec.text_field not in ds.column_names:
        raise ValueError(
            f"dataset {spec.path!r} has no column {spec.text_field!r} (columns: "
            f"{ds.column_names}); set data.text_field"
        )

    def documents() -> Iterator[tuple[str, bytes]]:
        index = 0
        for batch in ds.select_columns([spec.text_field]).iter(batch_size=1000):
            for text in batch[spec.text_field]:
                if text:
                    yield str(index), text.encode("utf-8", errors="replace")
                index += 1

    header = {
        "format": FORMAT_VERSION,
        "source": "hf",
        "path": spec.path,
        "name": spec.name,
        "split": spec.split,
        "data_files": spec.data_files,
        "text_field": spec.text_field,
    }
    # `datasets` fingerprints a loaded dataset by how it was built; that is a fine key for
    # remembering our content hash, which stays the identity.
    ds_key = getattr(ds, "_fingerprint", None)
    memo = None
    if ds_key:
        key = hashlib.sha256(json.dumps([header, ds_key], sort_keys=True).encode()).hexdigest()
        memo = spec.resolved_cache_dir() / "fingerprints" / key[:32]
    if memo is not None and memo.is_file():
        fingerprint = memo.read_text().strip()
    else:
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for name, content in documents():
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(content)
        fingerprint = digest.hexdigest()
        if memo is not None:
            _atomic_write(memo, fingerprint.encode())

    label = "-".join(str(p) for p in (spec.path, spec.name) if p)
    if spec.data_files:
        label += "-" + Path(str(spec.data_files)).stem
    return _Corpus(name=_slug(label), fingerprint=fingerprint, n_docs=len(ds), documents=documents)


def is_val_document(name: str, val_fraction: float) -> bool:
    """Whether the document called `name` belongs to the validation split.

    Parameters
    ----------
    name : str
        The document's name within its corpus (relative path, ``path#i``, ``path:line``,
        or row index).
    val_fraction : float
        Expected fraction of documents in validation.

    Returns
    -------
    bool
        True when the first 64 bits of SHA-256 of ``"val:" + name``, read as a fraction of
        2**64, fall under `val_fraction`.
    """
    h = int.from_bytes(hashlib.sha256(f"val:{name}".encode()).digest()[:8], "big")
    return h < val_fraction * 2**64


# --------------------------------------------------------------------------- tokenizers


class ByteTokenizer:
    """Bytes are tokens: ids 0-255 are byte values, id 256 is end-of-document."""

    name = "byte"
    vocab_size = 257
    eod_id = 256
    fingerprint = hashlib.sha256(b"byte-level v1: ids 0-255 are bytes, 256 is EOD").hexdigest()

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of `text` (UTF-8 encoded first when a str); never emits EOD."""
        if isinstance(text, str):
            # surrogateescape: a str made by decode(..., errors="surrogateescape") from
            # non-UTF-8 bytes maps back to those same bytes.
            text = text.encode("utf-8", errors="surrogateescape")
        return list(text)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of `ids`, EOD shown as ``<|endoftext|>``, invalid UTF-8 per `errors`."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of `ids`, EOD shown as ``<|endoftext|>``."""
        ids = np.fromiter(ids, dtype=np.int64)
        pieces = np.split(ids, np.flatnonzero(ids == self.eod_id))
        out = [pieces[0].astype(np.uint8).tobytes()]
        out += [EOD_TEXT.encode() + p[1:].astype(np.uint8).tobytes() for p in pieces[1:]]
        return b"".join(out)

    def _encode_documents(self, docs: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(doc, dtype=np.uint8) for doc in docs]


class BPETokenizer:
    """A trained byte-level BPE (a ``tokenizers.Tokenizer`` underneath, as `.hf`)."""

    def __init__(self, json_text: str) -> None:
        from tokenizers import Tokenizer

        self.json = json_text  # the definition, as saved in tokenizer.json
        self.fingerprint = hashlib.sha256(json_text.encode()).hexdigest()
        self.hf = Tokenizer.from_str(json_text)
        # Text that happens to contain "<|endoftext|>" is tokenized as text: only the
        # builder places EOD, between documents.
        self.hf.encode_special_tokens = True
        self.vocab_size = self.hf.get_vocab_size()
        self.eod_id = self.hf.token_to_id(EOD_TEXT)
        self.name = f"bpe{self.vocab_size}"

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; never emits EOD."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, EOD shown as ``<|endoftext|>``."""
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def _encode_documents(self, docs: list[bytes]) -> list[np.ndarray]:
        texts = [doc.decode("utf-8", errors="replace") for doc in docs]
        encode = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)  # no offsets
        return [np.asarray(e.ids, dtype=np.uint32) for e in encode(texts, add_special_tokens=False)]


def load_tokenizer(spec: DataSpec) -> ByteTokenizer | BPETokenizer:
    """The tokenizer a spec uses, training (once, under a lock) and caching a BPE.

    Parameters
    ----------
    spec : DataSpec

    Returns
    -------
    ByteTokenizer or BPETokenizer
        Both have ``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``name``,
        ``vocab_size``, ``eod_id`` and ``fingerprint``.
    """
    if spec.tokenizer == "byte":
        return ByteTokenizer()
    return _bpe_tokenizer(spec, _open_corpus(spec))


def _bpe_tokenizer(spec: DataSpec, corpus: _Corpus) -> BPETokenizer:
    key = f"{corpus.name}-{corpus.fingerprint[:12]}-bpe{spec.vocab_size}"
    path = spec.resolved_cache_dir() / "tokenizers" / key / "tokenizer.json"
    if not path.is_file():
        with _lock(path.parent.with_name(key + ".lock"), what=f"BPE tokenizer {key}"):
            if not path.is_file():  # someone else may have trained it while we waited
                _atomic_write(path, _train_bpe(corpus, spec.vocab_size).encode("utf-8"))
    return BPETokenizer(path.read_text(encoding="utf-8"))


def _train_bpe(corpus: _Corpus, vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    start = time.perf_counter()
    tok = Tokenizer(models.BPE())
    # GPT-2's byte-level scheme: every byte has a symbol, so any text can be encoded and
    # decode(encode(s)) == s.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOD_TEXT],  # first, so EOD is id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = (doc.decode("utf-8", errors="replace") for _, doc in corpus.documents())
    tok.train_from_iterator(texts, trainer=trainer, length=corpus.n_docs)
    if tok.get_vocab_size() < vocab_size:
        log.warning(
            "corpus %s only supports %d BPE ids (asked for %d)",
            corpus.name,
            tok.get_vocab_size(),
            vocab_size,
        )
    log.info(
        "trained BPE tokenizer on %s: %d ids in %.1f s",
        corpus.name,
        tok.get_vocab_size(),
        time.perf_counter() - start,
    )
    return tok.to_str()


# --------------------------------------------------------------------------- the cache


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


class _lock:
    """A file lock that says, once, when it has to wait for another process."""

    def __init__(self, path: Path, what: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path))
        self._what = what

    def __enter__(self) -> None:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process to build %s", self._what)
            self._lock.acquire()  # no timeout: a large corpus can take hours to tokenize

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_.") or "corpus"


# --------------------------------------------------------------------------- batches


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
