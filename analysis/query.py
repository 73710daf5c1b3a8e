"""Row filters (``--where``) read by a small evaluator of our own, never by ``eval``.

pandas' ``DataFrame.query`` hands whatever it cannot vectorise to Python, so a filter
string can reach any object: ``loss.__class__.__init__.__globals__`` leads to ``os``.
A filter here is parsed with :mod:`ast` and only this subset is evaluated, on the frame's
columns:

- column names, and ``backquoted names`` for those with spaces or symbols; ``index``;
- numbers, strings, ``True``/``False``;
- comparisons ``== != < <= > >=`` (chained ones too: ``1e6 < params <= 1e8``), and
  ``in`` / ``not in`` a list or tuple of numbers and strings;
- arithmetic ``+ - * / // % **`` and unary ``-`` / ``+`` on numbers and numeric columns;
- ``and`` / ``or`` / ``not``, and their pandas spellings ``&`` / ``|`` / ``~``.

Anything else — attribute access, calls, subscripts, lambdas, comprehensions, ``@``
variables — is refused with a :class:`QueryError` naming the construct and saying what
is allowed; nothing of the string is executed.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

ALLOWED = (
    "allowed: column names (`backquoted` when they have spaces), numbers, strings, "
    "comparisons (== != < <= > >=, in / not in [...]), arithmetic (+ - * / // % **), "
    "and / or / not"
)
# long enough for any filter by hand; a bound on the parse and evaluation
MAX_LENGTH = 10_000

_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
# what a refused node is, in words
_NAMES = {
    ast.Attribute: "attribute access",
    ast.Call: "a call",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator",
    ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment",
    ast.Starred: "unpacking",
    ast.JoinedStr: "an f-string",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}


class QueryError(ValueError):
    """A filter that cannot be parsed, uses a construct outside the subset, or fails."""


def query(df: pd.DataFrame, expr: str) -> pd.DataFrame:
    """The rows of ``df`` for which the filter ``expr`` is true, index kept.

    Parameters
    ----------
    df : pandas.DataFrame
        The table; its columns are the names the filter may use.
    expr : str
        The filter, e.g. ``"loss < 3.44 and `Model Size` > 1e8"``; the subset allowed is
        in the module docstring.

    Returns
    -------
    pandas.DataFrame
        ``df[mask]`` (maybe empty), with ``df``'s index, like ``DataFrame.query``.

    Raises
    ------
    QueryError
        One line: the construct refused (or the parse error, or the unknown column)
        and what is allowed.
    """
    return df[mask(df, expr)]


def mask(df: pd.DataFrame, expr: str) -> pd.Series:
    """The boolean row mask of the filter ``expr`` over ``df`` (see :func:`query`).

    Raises
    ------
    QueryError
        As :func:`query`.
    """
    if not isinstance(expr, str):
        raise QueryError(f"a filter is a string, got {type(expr).__name__}")
    if len(expr) > MAX_LENGTH:
        raise QueryError(f"the filter is {len(expr):,} characters long, over {MAX_LENGTH:,}")
    source, names = _unquote(expr)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise QueryError(f"cannot parse the filter ({e.msg}); {ALLOWED}") from None
    except (RecursionError, MemoryError):
        raise QueryError("the filter is nested too deeply") from None
    try:
        value = _Evaluator(df, names).eval(tree.body)
    except QueryError:
        raise
    except RecursionError:
        raise QueryError("the filter is nested too deeply") from None
    except (TypeError, ValueError, ArithmeticError) as e:
        raise QueryError(f"the filter cannot be evaluated: {type(e).__name__}: {e}") from None
    if isinstance(value, bool | np.bool_):
        return pd.Series(bool(value), index=df.index)
    if not isinstance(value, pd.Series) or not pd.api.types.is_bool_dtype(value.dtype):
        raise QueryError("the filter is not a condition on rows (expected e.g. 'loss < 3.44')")
    return value.fillna(False).astype(bool)


def _unquote(expr: str) -> tuple[str, dict[str, str]]:
    """``expr`` with each backquoted name replaced by a placeholder identifier.

    Also spells pandas' ``&``, ``|`` and ``~`` as ``and``, ``or`` and ``not``, which
    have the precedence pandas gives them (below comparisons). Quotes inside string
    literals are left alone.
    """
    out: list[str] = []
    names: dict[str, str] = {}
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            out.append(expr[i : j + 1])
            i = j + 1
        elif c == "`":
            j = expr.find("`", i + 1)
            if j < 0:
                raise QueryError(f"unclosed backquote at character {i + 1}; {ALLOWED}")
            # a placeholder no column or Python name can take (columns are looked up by it)
            key = f"_bq{len(names)}_"
            while key in expr:
                key = "_" + key
            names[key] = expr[i + 1 : j]
            out.append(f" {key} ")
            i = j + 1
        elif c in "&|~":
            out.append({"&": " and ", "|": " or ", "~": " not "}[c])
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), names


class _Evaluator:
    def __init__(self, df: pd.DataFrame, quoted: dict[str, str]) -> None:
        self.df = df
        self.quoted = quoted

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.refuse(node)
        return method(node)

    def refuse(self, node: ast.AST, what: str | None = None) -> QueryError:
        what = what or _NAMES.get(type(node)) or type(node).__name__
        shown = self.show(node)
        return QueryError(f"{what} ({shown}) is not allowed in a filter; {ALLOWED}")

    def show(self, node: ast.AST) -> str:
        text = ast.unparse(node)
        for key, name in self.quoted.items():
            text = text.replace(key, f"`{name}`")
        return text if len(text) <= 60 else text[:59] + "…"

    # leaves ------------------------------------------------------------------------
    def _Name(self, node: ast.Name) -> Any:
        name = self.quoted.get(node.id, node.id)
        if name in self.df.columns:
            return self.df[name]
        if name == "index":  # as in DataFrame.query
            return pd.Series(self.df.index, index=self.df.index)
        columns = ", ".join(str(c) for c in self.df.columns)
        raise QueryError(
            f"no column {name!r} (columns: {columns}; quote names with spaces in backquotes)"
        )

    def _Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool | int | float | str):
            return node.value
        raise self.refuse(node, f"a {type(node.value).__name__} literal")

    def _List(self, node: ast.List | ast.Tuple) -> list[Any]:
        values = [self.eval(e) for e in node.elts]
        if any(isinstance(v, pd.Series) for v in values):
            raise self.refuse(node, "a list holding columns")
        return values

    _Tuple = _List

    # operators ---------------------------------------------------------------------
    def _BinOp(self, node: ast.BinOp) -> Any:
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise self.refuse(node, f"the operator {type(node.op).__name__}")
        left, right = self.numeric(node.left), self.numeric(node.right)
        if isinstance(node.op, ast.Pow) and not isinstance(left, pd.Series | np.ndarray):
            left = float(left)  # a float power overflows; an integer one could run forever
        return op(left, right)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return self.negate(self.condition(node.operand))
        if isinstance(node.op, ast.USub):
            return -self.numeric(node.operand)
        if isinstance(node.op, ast.UAdd):
            return +self.numeric(node.operand)
        raise self.refuse(node, f"the operator {type(node.op).__name__}")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.condition(v) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out

    def _Compare(self, node: ast.Compare) -> Any:
        # a < b < c is a < b and b < c, evaluated on whole columns
        out: Any = True
        left = self.eval(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right_node, ast.List | ast.Tuple):
                    raise self.refuse(right_node, "'in' with anything but a list or tuple")
                right = self.eval(right_node)
                if isinstance(left, pd.Series):
                    part = left.isin(right)
                else:
                    part = left in right
                if isinstance(op, ast.NotIn):
                    part = self.negate(part)
            else:
                compare = _COMPARE.get(type(op))
                if compare is None:
                    word = "is not" if isinstance(op, ast.IsNot) else "is"
                    raise self.refuse(node, f"the comparison '{word}'")
                right = self.eval(right_node)
                part = compare(left, right)
            out = part if out is True else out & part
            left = right
        return out

    # kinds of value ----------------------------------------------------------------
    def numeric(self, node: ast.AST) -> Any:
        value = self.eval(node)
        if isinstance(value, pd.Series):
            if pd.api.types.is_numeric_dtype(value.dtype):
                return value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise QueryError(f"{self.show(node)} is not a finite number")
            return value
        raise self.refuse(node, "arithmetic on something other than numbers")

    def condition(self, node: ast.AST) -> Any:
        value = self.eval(node)
        if isinstance(value, bool):
            return value
        if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value.dtype):
            return value.fillna(False).astype(bool)
        raise QueryError(
            f"{self.show(node)} is not a condition: and / or / not combine comparisons, "
            "e.g. 'loss < 3.44 and params > 1e6'"
        )

    @staticmethod
    def negate(value: Any) -> Any:
        return ~value if isinstance(value, pd.Series) else not value
