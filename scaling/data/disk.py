"""Writing to the shared cache directory safely: atomic files and the build lock.

Used by the corpora (fingerprint memos), the tokenizers (a trained BPE) and the cache
(its entries), so it sits below all three.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from filelock import FileLock, Timeout

# The package's logger: every part logs as ``scaling.data``, as when it was one module.
log = logging.getLogger("scaling.data")


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
