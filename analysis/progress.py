"""Progress bars for long analysis work, on a terminal only, and never required.

A bootstrap of a thousand refits, a plot of many runs, an import of many files: on a
terminal a bar says the command is working. ``tqdm`` draws it when it is installed (the
training half's stack brings it); the analysis half does not depend on it, and without
it, off a terminal (a pipe, a log file, a test) or with ``--quiet`` nothing is drawn.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

_QUIET = False


def _stream() -> Any:  # looked up at each use: sys.stderr may be replaced
    return sys.stderr


def set_quiet(quiet: bool) -> None:
    """Turn every bar off (``--quiet``) or back on, for this process."""
    global _QUIET
    _QUIET = quiet


def shown() -> bool:
    """Whether a bar would be drawn now: tqdm importable, stderr a terminal, not quiet."""
    if _QUIET or not _stream().isatty():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` steps; yields ``update(done)``, which sets how many are done.

    Where no bar is shown, ``update`` does nothing, so callers need no test of their own.
    """
    if total <= 0 or not shown():
        yield lambda done: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, file=_stream(), leave=False, dynamic_ncols=True) as t:

        def update(done: int) -> None:
            t.update(min(done, total) - t.n)

        yield update
