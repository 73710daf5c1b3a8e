"""Tokenizers: bytes as tokens, or a byte-level BPE trained once per corpus and cached.

See `scaling.data` for the two vocabularies and where a trained BPE is kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable

import numpy as np

from scaling.data.corpora import _Corpus, _open_corpus
from scaling.data.disk import _atomic_write, _lock
from scaling.data.spec import DataSpec

# The package's logger: every part logs as ``scaling.data``, as when it was one module.
log = logging.getLogger("scaling.data")

EOD_TEXT = "<|endoftext|>"


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
