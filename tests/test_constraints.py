"""Fixed and tied parameters: what is accepted, and the one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.constraints import make_constraints, parse_assignments
from analysis.fit import fit
from analysis.laws import get_law

CHIN = get_law("chinchilla")


def test_assignments_parse_from_the_command_line_form() -> None:
    assert parse_assignments(["E=1.69", " alpha = beta "], "--tie") == [
        ("E", "1.69"),
        ("alpha", "beta"),
    ]
    with pytest.raises(ValueError, match=r"--fix 'E': expected NAME=VALUE, e.g. --fix E=1.69"):
        parse_assignments(["E"], "--fix")
    with pytest.raises(ValueError, match="--tie 'a=b=c': expected NAME=NAME"):
        parse_assignments(["a=b=c"], "--tie")


def test_ties_follow_the_first_name_and_chains_resolve() -> None:
    cons = make_constraints(get_law("bnsl2"), None, ["c1=c2", "f1=f2"])
    assert cons.tied == {"c2": "c1", "f2": "f1"}
    assert cons.free == ("a", "b", "c0", "c1", "d1", "f1", "d2")
    chained = make_constraints(CHIN, None, {"B": "A"})
    assert chained.tied == {"B": "A"} and chained.free == ("E", "A", "alpha", "beta")
    assert make_constraints(CHIN, None, []) is None


@pytest.mark.parametrize(
    ("fix", "tie", "message"),
    [
        (["Q=1"], None, r"--fix Q=1: 'Q' is not a parameter \(the parameters of 'chinchilla'"),
        (["E=abc"], None, "--fix E=abc: 'abc' is not a number"),
        (["E=-1"], None, r"--fix E=-1: E must be > 0 \(it is fitted as a log\)"),
        (None, ["E=alpha"], "cannot be tied"),
        (None, ["alpha=alpha"], "cannot be tied to itself"),
        (["alpha=0.3"], ["alpha=beta"], "alpha is fixed"),
        (["E=1", "A=1", "B=1", "alpha=0.3"], ["alpha=beta"], "alpha is fixed"),
        (["E=1", "A=1", "B=1", "alpha=0.3", "beta=0.3"], None, "nothing left to fit"),
    ],
)
def test_bad_constraints_are_refused(fix, tie, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_constraints(CHIN, fix, tie)


def test_power_refuses_constraints_and_too_few_points_count_free_ones() -> None:
    x = np.geomspace(1e6, 1e9, 8)
    with pytest.raises(ValueError, match="do not apply to 'power'"):
        fit("power", x, 6 * x, fix={"k": 1.0})
    # saturating has 3 parameters (6 points needed); with E fixed, 4 points do
    y = 1.7 + 400 * x[:4] ** -0.3
    result = fit("saturating", x[:4], y, fix={"E": 1.7})
    assert result.params["alpha"] == pytest.approx(0.3, rel=1e-6)
    with pytest.raises(ValueError, match=r"need at least 4 \(twice its 2 free parameter"):
        fit("saturating", x[:3], y[:3], fix={"E": 1.7})
