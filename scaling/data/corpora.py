"""Corpora: a source read as fingerprinted documents, and the train/validation split.

See `scaling.data` for the sources (``stdlib``, ``text``, ``jsonl``, ``hf``), how each is
cut into documents and named, and how the names decide the split.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scaling.data.disk import _atomic_write
from scaling.data.spec import FORMAT_VERSION, DataSpec

# Directories of the stdlib tree that are not the standard library.
_STDLIB_EXCLUDE = frozenset({"site-packages", "dist-packages", "__pycache__"})


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_.") or "corpus"
