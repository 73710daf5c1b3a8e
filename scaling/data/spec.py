"""What to tokenize and how (`DataSpec`), and what comes of it (`TokenData`).

See `scaling.data` for the sources, tokenizers, split and cache these fields choose.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

#: Bump when the way documents are read, split or tokenized changes: it is part of every
#: fingerprint, so old cache entries are then never mistaken for new ones.
FORMAT_VERSION = 1

SOURCES = ("stdlib", "text", "jsonl", "hf")
TOKENIZERS = ("byte", "bpe")
CACHE_ENV = "SCALING_LAB_CACHE"


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
