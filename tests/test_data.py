"""Tests of scaling.data: corpora, tokenizers, the spec and the shared token cache."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from scaling import data
from scaling.data import (
    ByteTokenizer,
    DataSpec,
    corpus_fingerprint,
    is_val_document,
    load_tokenizer,
    prepare,
    stdlib_files,
)

EOD = ByteTokenizer.eod_id


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache directory per test (the environment variable wins over the spec)."""
    path = tmp_path / "cache"
    monkeypatch.setenv(data.CACHE_ENV, str(path))
    return path


@pytest.fixture
def records(caplog):
    """The messages scaling.data logs at INFO and above."""
    caplog.set_level(logging.INFO, logger="scaling.data")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "scaling.data"]


def built(messages: list[str]) -> int:
    return sum(m.startswith("built ") for m in messages)


def split_docs(tokens: np.ndarray, eod: int) -> list[np.ndarray]:
    """Cut a token array into its documents (each ends with EOD)."""
    assert tokens[-1] == eod
    return np.split(np.asarray(tokens), np.flatnonzero(tokens == eod) + 1)[:-1]


def byte_docs(tokens: np.ndarray) -> list[bytes]:
    return [d[:-1].astype(np.uint8).tobytes() for d in split_docs(tokens, EOD)]


def expected_byte_tokens(docs: list[bytes]) -> np.ndarray:
    parts = []
    for doc in docs:
        parts += [np.frombuffer(doc, np.uint8).astype(np.uint16), np.array([EOD], np.uint16)]
    return np.concatenate(parts)


# --------------------------------------------------------------------------- stdlib corpus


def test_stdlib_files_sorted_without_installed_packages(tmp_path):
    root = tmp_path / "lib"
    for rel in [
        "os.py",
        "b/z.py",
        "b/a.py",
        "a_b.py",
        "b/notes.txt",
        "site-packages/numpy/core.py",
        "dist-packages/apt.py",
        "json/__pycache__/x.py",
        "json/__init__.py",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("pass\n")
    names = [rel for rel, _ in stdlib_files(root)]
    assert names == ["a_b.py", "b/a.py", "b/z.py", "json/__init__.py", "os.py"]


def test_real_stdlib_listing_is_fixed():
    files = stdlib_files()
    names = [rel for rel, _ in files]
    assert names == sorted(names)
    assert len(files) > 1000 and "os.py" in names and "json/__init__.py" in names
    assert not any({"site-packages", "dist-packages"} & set(n.split("/")) for n in names)
    assert files == stdlib_files()


def test_full_stdlib_byte_build(records):
    spec = DataSpec()
    start = time.perf_counter()
    td = prepare(spec)
    elapsed = time.perf_counter() - start

    files = stdlib_files()
    contents = {rel: path.read_bytes() for rel, path in files}
    val_names = [rel for rel, _ in files if is_val_document(rel, spec.val_fraction)]
    train_names = [rel for rel, _ in files if rel not in set(val_names)]
    # Every token is accounted for, document by document, in corpus order: the split is by
    # document and the non-UTF-8 files of the stdlib are there byte for byte.
    np.testing.assert_array_equal(
        td.train, expected_byte_tokens([contents[n] for n in train_names])
    )
    np.testing.assert_array_equal(td.val, expected_byte_tokens([contents[n] for n in val_names]))
    not_utf8 = [n for n, c in contents.items() if not _is_utf8(c)]
    assert not_utf8, "the stdlib is expected to hold a few non-UTF-8 files"

    assert td.train.dtype == np.uint16 and not td.train.flags.writeable
    assert (td.vocab_size, td.eod_id) == (257, 256)
    assert td.tokenizer == {
        "name": "byte",
        "vocab_size": 257,
        "fingerprint": td.tokenizer["fingerprint"],
    }
    assert td.corpus["name"] == "stdlib"
    assert td.corpus["n_train_tokens"] == len(td.train) > 25_000_000
    assert td.corpus["n_val_tokens"] == len(td.val) > 200_000
    assert built(records()) == 1
    assert elapsed < 30

    again = prepare(spec)
    assert built(records()) == 1  # reused, not rebuilt
    assert again.path == td.path and again.corpus == td.corpus
    meta = json.loads((td.path / "meta.json").read_text())
    assert meta["n_docs"] == {"train": len(train_names), "val": len(val_names)}


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_fingerprint_is_the_content(cache):
    spec = DataSpec(max_files=30)
    first = corpus_fingerprint(spec)
    assert first == corpus_fingerprint(spec)  # from the remembered value
    for memo in (cache / "fingerprints").iterdir():
        memo.unlink()
    assert corpus_fingerprint(spec) == first  # recomputed from the files
    assert corpus_fingerprint(DataSpec(max_files=31)) != first


def test_fingerprint_follows_file_content(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\n\ntwo\n")
    spec = DataSpec(source="text", path=str(corpus))
    before = corpus_fingerprint(spec)
    corpus.write_text("one\n\nTWO\n")
    assert corpus_fingerprint(spec) != before


# --------------------------------------------------------------------------- tokenizers


def test_byte_round_trip():
    tok = load_tokenizer(DataSpec())
    for text in ["def f(x):\n    return x + 1\n", "naïve café — 中文 ✓"]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("AB") == [65, 66]

    raw = b"caf\xe9 \xff\xfe\x00 koi8: \xf0\xd2\xc9"  # not UTF-8
    assert tok.decode_bytes(tok.encode(raw)) == raw
    escaped = raw.decode("utf-8", errors="surrogateescape")
    assert tok.decode(tok.encode(escaped), errors="surrogateescape") == escaped
    assert tok.decode([104, 105, EOD, 33]) == "hi<|endoftext|>!"


BPE_SPEC = {"tokenizer": "bpe", "vocab_size": 400, "max_files": 40, "val_fraction": 0.2}


def test_bpe_trains_once_and_is_reused(records, cache):
    spec = DataSpec(**BPE_SPEC)
    td = prepare(spec)
    trained = [m for m in records() if m.startswith("trained BPE")]
    assert len(trained) == 1 and built(records()) == 1
    (tok_json,) = (cache / "tokenizers").glob("*/tokenizer.json")
    mtime = tok_json.stat().st_mtime_ns

    tok = load_tokenizer(spec)
    again = prepare(spec)
    assert [m for m in records() if m.startswith("trained BPE")] == trained
    assert built(records()) == 1 and tok_json.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.train, td.train)

    # A different split of the same corpus reuses the tokenizer and builds a new entry.
    other = prepare(DataSpec(**{**BPE_SPEC, "val_fraction": 0.3}))
    assert other.tokenizer == td.tokenizer and other.path != td.path
    assert len([m for m in records() if m.startswith("trained BPE")]) == 1

    assert td.vocab_size == tok.vocab_size == 400 == td.tokenizer["vocab_size"]
    assert td.tokenizer["name"] == "bpe400" and td.eod_id == tok.eod_id == 0
    assert td.train.max() < 400 and td.train.max() > 300  # the merges are used
    assert td.tokenizer["fingerprint"] == hashlib.sha256(tok_json.read_bytes()).hexdigest()
    assert (td.path / "tokenizer.json").read_bytes() == tok_json.read_bytes()

    # Documents decode back to the files they came from (all of them UTF-8 here).
    files = stdlib_files()[:40]
    train_files = [p for rel, p in files if not is_val_document(rel, 0.2)]
    docs = split_docs(td.train, td.eod_id)
    assert len(docs) == len(train_files)
    assert tok.decode(docs[0][:-1]) == train_files[0].read_text()
    assert int((td.val == td.eod_id).sum()) == len(files) - len(train_files)


def test_bpe_round_trip_and_literal_eod():
    tok = load_tokenizer(DataSpec(**BPE_SPEC))
    text = "class Foo:\n    def bar(self, x):\n        return 'naïve ✓ 中文'  # ok\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text.encode())
    # Text that spells the EOD marker is text, not an end of document.
    assert tok.eod_id not in tok.encode("a <|endoftext|> b")
    assert tok.decode(tok.encode("a <|endoftext|> b")) == "a <|endoftext|> b"


def test_bpe_is_deterministic(tmp_path, monkeypatch):
    builds = []
    for name in ("one", "two"):
        monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / name))
        td = prepare(DataSpec(**BPE_SPEC))
        builds.append((td, (td.path / "tokenizer.json").read_bytes()))
    (a, tok_a), (b, tok_b) = builds
    assert tok_a == tok_b
    assert a.tokenizer == b.tokenizer and a.path.name == b.path.name
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)


# --------------------------------------------------------------------------- other sources


def test_text_source_splits_by_paragraph_document(tmp_path):
    corpus = tmp_path / "texts"
    corpus.mkdir()
    paragraphs = {}
    for fname, sep in [("a.txt", "\n\n"), ("b.txt", "\n  \n\t\n")]:
        paras = [f"{fname} paragraph {i}\nsecond line {i}" for i in range(40)]
        (corpus / fname).write_text(sep.join(paras) + "\n")
        paragraphs.update({f"{fname}#{i}": p.encode() for i, p in enumerate(paras)})
    (corpus / "skip.md").write_text("not a text file\n\nignored")
    spec = DataSpec(source="text", path=str(corpus), val_fraction=0.25)
    td = prepare(spec)

    want_val = [p for name, p in paragraphs.items() if is_val_document(name, 0.25)]
    want_train = [p for name, p in paragraphs.items() if not is_val_document(name, 0.25)]
    assert want_val and want_train
    train, val = byte_docs(td.train), byte_docs(td.val)
    # The last paragraph of a file keeps its final newline; the others lose the separator.
    assert [d.rstrip(b"\n") for d in train] == want_train
    assert [d.rstrip(b"\n") for d in val] == want_val
    assert td.corpus["name"] == "texts"


def test_split_depends_only_on_the_name():
    names = [f"doc{i}.py" for i in range(2000)]
    small = {n for n in names if is_val_document(n, 0.05)}
    large = {n for n in names if is_val_document(n, 0.2)}
    assert small < large
    assert 0.03 < len(small) / len(names) < 0.07 and 0.17 < len(large) / len(names) < 0.23
    assert small == {n for n in reversed(names) if is_val_document(n, 0.05)}


def _write_jsonl(path: Path, texts: list[str]) -> None:
    lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)]
    lines.insert(5, "")  # blank lines are skipped
    path.write_text("\n".join(lines) + "\n")


TEXTS = [f"document {i}: {'ünïcode ' * (i % 3)}body {i * i}" for i in range(40)]


def test_jsonl_source(tmp_path):
    path = tmp_path / "docs.jsonl"
    _write_jsonl(path, TEXTS)
    td = prepare(DataSpec(source="jsonl", path=str(path), val_fraction=0.25))
    docs = byte_docs(td.train) + byte_docs(td.val)
    assert sorted(d.decode() for d in docs) == sorted(TEXTS)
    assert byte_docs(td.val) and td.corpus["name"] == "docs"


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "broken\n{"text": "never read"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: not valid JSON"):
        prepare(DataSpec(source="jsonl", path=str(path)))

    path.write_text('{"text": "fine"}\n{"body": "wrong field"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: no 'text' field.*data\.text_field"):
        prepare(DataSpec(source="jsonl", path=str(path)))


def test_hf_source_on_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    datasets = pytest.importorskip("datasets")
    jsonl = tmp_path / "docs.jsonl"
    _write_jsonl(jsonl, TEXTS)
    parquet = tmp_path / "docs.parquet"
    datasets.Dataset.from_dict({"body": TEXTS}).to_parquet(str(parquet))

    from_json = prepare(
        DataSpec(source="hf", path="json", data_files=str(jsonl), val_fraction=0.25)
    )
    from_parquet = prepare(
        DataSpec(
            source="hf",
            path="parquet",
            data_files=str(parquet),
            text_field="body",
            val_fraction=0.25,
        )
    )
    want_val = [t.encode() for i, t in enumerate(TEXTS) if is_val_document(str(i), 0.25)]
    assert want_val and byte_docs(from_json.val) == want_val
    np.testing.assert_array_equal(from_json.train, from_parquet.train)
    np.testing.assert_array_equal(from_json.val, from_parquet.val)

    with pytest.raises(ValueError, match="no column 'text'.*body"):
        prepare(DataSpec(source="hf", path="parquet", data_files=str(parquet)))


# --------------------------------------------------------------------------- the cache


def _prepare_in_worker(spec_kwargs: dict, barrier, results) -> None:
    """Run prepare() in a fresh process, the build slowed so that the others must wait."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("scaling.data")
    logger.setLevel(logging.INFO)
    logger.addHandler(Collect())
    build = data.cache._build_entry

    def slow_build(*args, **kwargs):
        time.sleep(1.5)
        return build(*args, **kwargs)

    data.cache._build_entry = slow_build  # where prepare() looks it up
    barrier.wait()
    td = prepare(DataSpec(**spec_kwargs))
    digest = hashlib.sha256(np.asarray(td.train).tobytes() + np.asarray(td.val).tobytes())
    waited = sum(m.startswith("waiting for another process") for m in messages)
    results.put((built(messages), waited, digest.hexdigest(), str(td.path)))


def test_concurrent_prepare_builds_once():
    ctx = mp.get_context("spawn")
    n = 3
    barrier, results = ctx.Barrier(n), ctx.Queue()
    spec_kwargs = {"max_files": 200}
    procs = [
        ctx.Process(target=_prepare_in_worker, args=(spec_kwargs, barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(o[0] for o in outcomes) == [0, 0, 1]  # exactly one process tokenized
    assert sum(o[1] for o in outcomes) >= 1  # while another one waited for it
    assert len({(o[2], o[3]) for o in outcomes}) == 1  # and all read the same arrays
    td = prepare(DataSpec(**spec_kwargs))
    assert str(td.path) == outcomes[0][3]


def test_complete_entry_is_read_without_the_lock(monkeypatch):
    spec = DataSpec(max_files=20, val_fraction=0.2)
    first = prepare(spec)

    def no_lock(*args, **kwargs):
        raise AssertionError("a complete cache entry must be read without taking the lock")

    monkeypatch.setattr(data.disk, "FileLock", no_lock)  # where _lock looks it up
    again = prepare(spec)
    np.testing.assert_array_equal(again.train, first.train)


def test_incomplete_entry_is_rebuilt(records):
    spec = DataSpec(max_files=20, val_fraction=0.2)
    td = prepare(spec)
    want = np.array(td.train)
    # A builder that died before writing meta.json leaves data that must not be trusted.
    (td.path / "meta.json").unlink()
    (td.path / "train.bin").write_bytes(b"\x00" * 10)
    again = prepare(spec)
    assert built(records()) == 2
    np.testing.assert_array_equal(again.train, want)


# --------------------------------------------------------------------------- errors


def test_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="data.source='books'.*stdlib"):
        DataSpec(source="books")
    with pytest.raises(ValueError, match="data.tokenizer='wordpiece'"):
        DataSpec(tokenizer="wordpiece")
    with pytest.raises(ValueError, match="needs data.path"):
        DataSpec(source="jsonl")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        prepare(DataSpec(source="text", path=str(tmp_path / "missing.txt")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty corpus"):
        prepare(DataSpec(source="text", path=str(tmp_path / "empty")))
    (tmp_path / "blank.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="empty corpus"):
        prepare(DataSpec(source="text", path=str(tmp_path / "blank.txt")))
    (tmp_path / "one.txt").write_text("a single document")
    with pytest.raises(ValueError, match="split of one is empty.*val_fraction"):
        prepare(DataSpec(source="text", path=str(tmp_path / "one.txt")))


def test_from_config():
    spec = DataSpec.from_config({"source": "stdlib", "tokenizer": "bpe", "vocab_size": 1024})
    assert spec == DataSpec(tokenizer="bpe", vocab_size=1024)
    with pytest.raises(ValueError, match=r"\['vocab'\].*valid keys.*'vocab_size'"):
        DataSpec.from_config({"vocab": 1024})


def test_env_cache_dir_wins(tmp_path, monkeypatch):
    spec = DataSpec(cache_dir=str(tmp_path / "mine"))
    monkeypatch.delenv(data.CACHE_ENV)
    assert spec.resolved_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "scratch"))
    assert spec.resolved_cache_dir() == tmp_path / "scratch"


def test_unique_tokens_in_the_spec_changes_sampling_only(records):
    spec = DataSpec(max_files=20, val_fraction=0.2)
    td = prepare(spec)
    constrained = DataSpec(max_files=20, val_fraction=0.2, unique_tokens=5000)
    again = prepare(constrained)
    assert again.path == td.path and built(records()) == 1  # the same entry, not rebuilt
    assert corpus_fingerprint(constrained) == corpus_fingerprint(spec)
    assert "unique_tokens" not in json.loads((td.path / "meta.json").read_text())["spec"]
    assert DataSpec.from_config({"unique_tokens": 1e6}).unique_tokens == 1_000_000
    assert isinstance(DataSpec(unique_tokens=np.int64(7)).unique_tokens, int)
    assert DataSpec().unique_tokens is None
    for bad in (0, -5, 2.5, True, "many"):
        with pytest.raises(ValueError, match="data.unique_tokens=.*positive whole number"):
            DataSpec(unique_tokens=bad)


def test_every_data_option_has_unique_tokens_null():
    sweeps = Path(__file__).resolve().parents[1] / "sweeps" / "data"
    options = sorted(sweeps.glob("*.yaml"))
    assert len(options) >= 5
    for path in options:
        cfg = yaml.safe_load(path.read_text())
        assert "unique_tokens" in cfg and cfg["unique_tokens"] is None, path.name
        lines = path.read_text().splitlines()
        i = next(k for k, line in enumerate(lines) if line.startswith("unique_tokens:"))
        assert lines[i - 1].startswith("#"), f"{path.name}: say what unique_tokens does"
