"""The errors and warnings of the loaders: what went wrong, where, and how to fix it."""

from __future__ import annotations


class DataError(ValueError):
    """The input cannot be read as asked; the message says where and what was expected."""


class DataWarning(UserWarning):
    """Something in the input was skipped or changed; the analysis goes on without it."""


class OptionalDependencyError(ImportError):
    """A source format needs a package that is an optional extra of scaling-lab."""
