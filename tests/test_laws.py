"""The law forms: registry, predictions (checked against the formulas by hand) and text."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.laws import LAWS, Chinchilla, PowerLaw, SaturatingPowerLaw, get_law

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def test_registry_names_and_parameters() -> None:
    assert set(LAWS) == {"power", "saturating", "chinchilla"}
    assert get_law("power").param_names == ("a", "k")
    assert get_law("saturating").param_names == ("E", "A", "alpha")
    assert get_law("chinchilla").param_names == ("E", "A", "B", "alpha", "beta")
    assert [get_law(n).n_inputs for n in ("power", "saturating", "chinchilla")] == [1, 1, 2]
    assert isinstance(get_law("chinchilla"), Chinchilla)
    law = SaturatingPowerLaw()
    assert get_law(law) is law


def test_unknown_law_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown law 'kaplan'.*chinchilla, power, saturating"):
        get_law("kaplan")


def test_predictions_match_hand_computed_values() -> None:
    # Values chosen so that every power is exact: 4^0.5 = 2, 9^0.5 = 3, 100^-0.5 = 0.1.
    assert PowerLaw().predict({"a": 6.0, "k": 2.0}, np.array([3.0])) == pytest.approx([54.0])
    sat = get_law("saturating").predict({"E": 1.5, "A": 2.0, "alpha": 0.5}, np.array([100.0]))
    assert sat == pytest.approx([1.5 + 2.0 * 0.1])
    chin = get_law("chinchilla").predict(
        {"E": 1.0, "A": 2.0, "B": 3.0, "alpha": 0.5, "beta": 0.5}, np.array([4.0]), np.array([9.0])
    )
    assert chin == pytest.approx([1.0 + 2.0 / 2.0 + 3.0 / 3.0])


def test_chinchilla_loss_falls_towards_E() -> None:
    params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    n = np.geomspace(1e6, 1e30, 5)
    loss = get_law("chinchilla").predict(params, n, 20 * n)
    assert np.all(np.diff(loss) < 0)
    assert loss[-1] == pytest.approx(1.69, abs=1e-3)


def test_predict_broadcasts_over_parameter_samples() -> None:
    law = get_law("saturating")
    samples = {"E": np.array([[1.0], [2.0]]), "A": np.array([[1.0], [1.0]]), "alpha": 1.0}
    out = law.predict(samples, np.array([1.0, 2.0, 4.0]))
    assert out.shape == (2, 3)
    assert out[1] - out[0] == pytest.approx([1.0, 1.0, 1.0])


def test_symbolic_formulas() -> None:
    assert get_law("power").formula() == "y = a * x^k"
    assert get_law("saturating").formula() == "y = E + A/x^alpha"
    assert get_law("chinchilla").formula() == "L = E + A/N^alpha + B/D^beta"
    assert get_law("power").formula(variables=["N"], target="C") == "C = a * N^k"


def test_formula_prints_the_numbers() -> None:
    # The example of the analysis API contract, from Besiroglu et al.'s fit.
    params = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    assert get_law("chinchilla").formula(params) == "L = 1.82 + 482/N^0.348 + 2085/D^0.366"
    # Any values: the numbers in the text are the parameters to four significant figures.
    params = {"E": 1.8172234, "A": 477.82611, "B": 2143.4171, "alpha": 0.3473101, "beta": 0.36717}
    text = get_law("chinchilla").formula(params)
    numbers = [float(m) for m in NUMBER.findall(text)]  # in text order: E, A, alpha, B, beta
    expected = [params[k] for k in ("E", "A", "alpha", "B", "beta")]
    assert numbers == pytest.approx(expected, rel=5e-4)
    text = get_law("power").formula({"a": 6.02, "k": 1.0003}, variables=["params"], target="flops")
    assert text.startswith("flops = ") and "params^" in text
    assert [float(m) for m in NUMBER.findall(text)] == pytest.approx([6.02, 1.0003], rel=5e-4)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="takes 2 input"):
        get_law("chinchilla").predict({"E": 1, "A": 1, "B": 1, "alpha": 1, "beta": 1}, [1.0])
    with pytest.raises(ValueError, match="missing beta"):
        get_law("chinchilla").predict({"E": 1, "A": 1, "B": 1, "alpha": 1}, [1.0], [1.0])
