"""Row filters: the safe subset is evaluated on the columns, everything else refused."""

import pandas as pd
import pytest

from analysis.query import QueryError, mask, query

FRAME = pd.DataFrame(
    {
        "loss": [3.0, 3.5, 4.0, 2.5],
        "Model Size": [1e6, 1e8, 1e9, 1e10],
        "family": ["llama", "gpt2", "llama", "gpt2"],
        "converged": [True, False, True, True],
    },
    index=[10, 11, 12, 13],  # not 0..n-1: the filter must keep the frame's own index
)


@pytest.mark.parametrize(
    ("expr", "rows"),
    [
        ("loss < 3.44", [10, 13]),
        ("`Model Size` > 1e7 and loss < 3.9", [11, 13]),
        ("family == 'gpt2'", [11, 13]),
        ('family != "gpt2"', [10, 12]),
        ("family in ['llama']", [10, 12]),
        ("family not in ('llama',)", [11, 13]),
        ("1e6 < `Model Size` <= 1e9", [11, 12]),
        ("loss * 2 - 1 > 6", [12]),
        ("loss ** 2 >= 12.25", [11, 12]),
        ("loss // 1 == 3 and loss % 1 == 0.5", [11]),
        ("-loss > -3.2", [10, 13]),
        ("not converged", [11]),
        ("converged", [10, 12, 13]),
        ("loss < 2.6 or family == 'gpt2' and loss > 3", [11, 13]),
        # pandas' spellings, with its precedence: below the comparisons
        ("loss < 2.6 | loss > 3.9", [12, 13]),
        ("~(loss < 3.2) & converged", [12]),
        ("index >= 12", [12, 13]),
        ("family == 'a`b'", []),  # a backquote inside a string is part of the string
    ],
)
def test_allowed_filters_select_the_rows_they_say(expr, rows):
    assert list(query(FRAME, expr).index) == rows
    assert list(FRAME.index[mask(FRAME, expr)]) == rows


INJECTION = "loss.__class__.__init__.__globals__['sys'].modules['os'].system('touch pwned') == 0"


def test_the_globals_escape_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QueryError, match=r"not allowed in a filter; allowed: column names"):
        query(FRAME, INJECTION)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("expr", "construct"),
    [
        ("loss.__class__ == 1", "attribute access"),
        ("loss.sum() > 1", "a call"),
        ("__import__('os').system('touch pwned') == 0", "a call"),
        ("family['__class__'] == 1", "a subscript"),
        ("loss[0] > 1", "a subscript"),
        ("(lambda: 1) == 1", "a lambda"),
        ("[x for x in family] == 1", "a comprehension"),
        ("loss if converged else 1", "a conditional expression"),
        ("f'{loss}' == 'x'", "an f-string"),
        ("loss is None", "the comparison 'is'"),
        ("family * 3 == 'x'", "arithmetic on something other than numbers"),
        ("loss @ loss > 1", "the operator MatMult"),
        ("family in family", "'in' with anything but a list or tuple"),
    ],
)
def test_everything_outside_the_subset_is_refused_by_name(expr, construct, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QueryError) as err:
        query(FRAME, expr)
    message = str(err.value)
    assert message.startswith(construct), message
    assert "allowed:" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("nope > 1", "no column 'nope' (columns: loss, Model Size, family, converged"),
        ("Model Size > 1", "cannot parse the filter"),
        ("`Model Size > 1", "unclosed backquote at character 1"),
        ("@limit > loss", "cannot parse the filter"),
        ("loss + 1", "not a condition on rows"),
        ("family < 1", "cannot be evaluated: TypeError"),
        ("10 ** 10 ** 10 > 1", "cannot be evaluated: OverflowError"),
        ("loss and converged", "loss is not a condition"),
        ("-" * 9000 + "loss > 1", "nested too deeply"),
        ("x" * 10_001, "over 10,000"),
    ],
)
def test_bad_filters_fail_with_one_line_saying_why(expr, says):
    with pytest.raises(QueryError) as err:
        query(FRAME, expr)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_constant_filter_keeps_all_rows_or_none():
    assert len(query(FRAME, "1 < 2")) == 4 and query(FRAME, "1 > 2").empty


def test_missing_values_do_not_match():
    df = pd.DataFrame({"loss": [1.0, None, 3.0]})
    assert list(query(df, "loss < 5").index) == [0, 2]
    assert list(query(df, "not loss < 2").index) == [1, 2]  # NaN < 2 is false, so not it is true
