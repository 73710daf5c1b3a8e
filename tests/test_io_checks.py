"""The rules every loader applies to the numbers it reads (analysis.io.checks)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.io import DataError, DataWarning
from analysis.io.checks import (
    COUNT,
    FINITE,
    LIMIT,
    POSITIVE,
    STEP,
    check_steps,
    number,
    numbers,
    problem,
)


@pytest.mark.parametrize(
    ("value", "rule", "why"),
    [
        (math.inf, POSITIVE, "infinite"),
        (-math.inf, FINITE, "infinite"),
        (1e308, POSITIVE, "too large"),  # inside the float range, outside what figures draw
        (-3.0, POSITIVE, "not > 0"),
        (0.0, POSITIVE, "not > 0"),
        (-1.0, COUNT, "negative"),
        (1e-300, POSITIVE, "too small"),
        (1.5, STEP, "not a whole number"),
        (-1.0, STEP, "out of range"),
        (2.0**60, STEP, "out of range"),  # no longer exact in a float
    ],
)
def test_values_that_break_a_rule_say_why(value, rule, why):
    assert problem(value, rule) == why


@pytest.mark.parametrize(
    ("value", "rule"),
    [(3.2, POSITIVE), (0.0, COUNT), (0.0, STEP), (100.0, STEP), (LIMIT, POSITIVE), (-5.0, FINITE)],
)
def test_values_within_a_rule_pass(value, rule):
    assert problem(value, rule) is None
    assert problem(math.nan, rule) is None  # NaN is unknown, not wrong


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, r"m\.jsonl, line 4: field 'loss' is True; .*a boolean is not a number"),
        ("3.2", r"field 'loss' is '3\.2'; expected a number .*text is not a number"),
        (None, r"field 'loss' is missing; expected a number"),
        (math.inf, r"field 'loss' is inf \(infinite\)"),
        (-3, r"field 'loss' is -3 \(not > 0\).*take its logarithm"),
        (10**400, r"field 'loss' is 1000.* \(too large\)"),  # an int no float holds
    ],
)
def test_number_refuses_and_names_the_place(value, message):
    with pytest.raises(DataError, match=message):
        number(value, "m.jsonl, line 4", "loss")


def test_number_returns_floats_and_optional_values_may_be_missing():
    assert number(3, "x", "loss") == 3.0 and isinstance(number(3, "x", "loss"), float)
    assert math.isnan(number(None, "x", "lr", COUNT, required=False))
    assert math.isnan(number(math.nan, "x", "lr", COUNT, required=False))
    with pytest.raises(DataError, match="is NaN"):
        number(math.nan, "x", "loss")


def test_numbers_parses_text_cells_only_for_text_formats():
    origins = pd.Series(["t.csv, line 2", "t.csv, line 3", "t.csv, line 4"])
    parsed = numbers(pd.Series(["3.5", 2.0, None]), origins, "loss", POSITIVE, text=True)
    assert parsed.iloc[:2].tolist() == [3.5, 2.0] and math.isnan(parsed.iloc[2])
    with pytest.raises(DataError, match=r"t\.csv, line 3: column 'loss' is '2'.*without quotes"):
        numbers(pd.Series([3.5, "2"]), origins[:2], "loss", POSITIVE, text=False)
    with pytest.raises(DataError, match=r"line 4: column 'loss' is True"):
        numbers(pd.Series([3.5, 2.0, True], dtype=object), origins, "loss", POSITIVE)
    with pytest.raises(DataError, match=r"line 2: column 'loss' is 'True'"):
        numbers(pd.Series(["True"]), origins[:1], "loss", POSITIVE, text=True)
    with pytest.raises(DataError, match=r"line 3: column 'step' is 2\.5 \(not a whole number\)"):
        numbers(pd.Series([1.0, 2.5]), origins[:2], "step", STEP, text=True)


def test_steps_that_repeat_are_refused_and_going_back_is_refused_or_warned():
    df = pd.DataFrame(
        {
            "run": ["a", "a", "b", "a"],
            "step": [10, 20, 10, 20],
            "origin": [f"c.csv, line {i}" for i in (2, 3, 4, 5)],
        }
    )
    with pytest.raises(
        DataError, match=r"line 5: run 'a' has step 20 again \(first at c\.csv, line 3\)"
    ):
        check_steps(df, "c.csv")
    back = df.assign(step=[10, 20, 10, 5])
    with pytest.raises(DataError, match=r"line 5: the steps of run 'a' go backwards \(5 after 20"):
        check_steps(back, "c.csv")
    with pytest.warns(DataWarning, match=r"go backwards.*read in step order"):
        check_steps(back, "c.csv", backwards="warn")
    check_steps(df.assign(step=[10, 20, 10, 30]), "c.csv")  # in order: nothing to say
