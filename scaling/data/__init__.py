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

Submodules
    `scaling.data.spec`
        `DataSpec` (the ``data`` config group), `TokenData` and `spec_from_config`.
    `scaling.data.corpora`
        Reading a source into fingerprinted documents; the train/validation split.
    `scaling.data.tokenizers`
        `ByteTokenizer`, `BPETokenizer`, `load_tokenizer` and BPE training.
    `scaling.data.cache`
        `prepare`: building, and memory-mapping, a cache entry.
    `scaling.data.disk`
        Writing to the shared cache safely: atomic files and the build lock.
    `scaling.data.batches`
        Training and evaluation batches drawn from the token arrays.
"""

from scaling.data.batches import (
    _epoch_order as _epoch_order,  # tests clear its memo
)
from scaling.data.batches import (
    repeated_epochs,
    repeated_windows,
    sample_batch,
    sample_repeated_batch,
    sample_train_batch,
    val_batches,
)
from scaling.data.cache import prepare
from scaling.data.corpora import corpus_files, corpus_fingerprint, is_val_document, stdlib_files
from scaling.data.spec import (
    CACHE_ENV,
    FORMAT_VERSION,
    SOURCES,
    TOKENIZERS,
    DataSpec,
    TokenData,
    spec_from_config,
)
from scaling.data.tokenizers import EOD_TEXT, BPETokenizer, ByteTokenizer, load_tokenizer

__all__ = [
    "CACHE_ENV",
    "EOD_TEXT",
    "FORMAT_VERSION",
    "SOURCES",
    "TOKENIZERS",
    "BPETokenizer",
    "ByteTokenizer",
    "DataSpec",
    "TokenData",
    "corpus_files",
    "corpus_fingerprint",
    "is_val_document",
    "load_tokenizer",
    "prepare",
    "repeated_epochs",
    "repeated_windows",
    "sample_batch",
    "sample_repeated_batch",
    "sample_train_batch",
    "spec_from_config",
    "stdlib_files",
    "val_batches",
]
