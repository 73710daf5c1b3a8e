"""The law forms: registry, predictions (checked against the formulas by hand) and text."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.laws import (
    LAWS,
    BrokenPowerLaw,
    Chinchilla,
    Kaplan,
    PowerLaw,
    SaturatingPowerLaw,
    get_law,
)

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def test_registry_names_and_parameters() -> None:
    assert set(LAWS) == {
        "power", "saturating", "chinchilla", "bnsl", "bnsl2", "kaplan", "overtraining",
        "data_constrained",
    }  # fmt: skip
    assert get_law("overtraining").param_names == ("E", "A", "B", "eta")
    assert get_law("bnsl").param_names == ("a", "b", "c0", "c1", "d1", "f1")
    assert get_law("bnsl2").param_names == ("a", "b", "c0", "c1", "d1", "f1", "c2", "d2", "f2")
    assert get_law("kaplan").param_names == ("N_c", "D_c", "alpha_N", "alpha_D")
    assert isinstance(get_law("bnsl2"), BrokenPowerLaw) and isinstance(get_law("kaplan"), Kaplan)
    assert get_law("power").param_names == ("a", "k")
    assert get_law("saturating").param_names == ("E", "A", "alpha")
    assert get_law("chinchilla").param_names == ("E", "A", "B", "alpha", "beta")
    assert [get_law(n).n_inputs for n in ("power", "saturating", "chinchilla")] == [1, 1, 2]
    assert isinstance(get_law("chinchilla"), Chinchilla)
    law = SaturatingPowerLaw()
    assert get_law(law) is law


def test_unknown_law_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown law .hyperbolic.*bnsl, bnsl2, chinchilla, data_constrained, kaplan"
    ):
        get_law("hyperbolic")


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


def test_new_laws_predict_hand_computed_values() -> None:
    # BNSL at x = 16 with d1 = 4, f1 = 1/2: 16^-0.5 = 1/4, (16/4)^2 = 16, (1 + 16)^-(1·0.5).
    bnsl = {"a": 1.0, "b": 2.0, "c0": 0.5, "c1": 1.0, "d1": 4.0, "f1": 0.5}
    assert get_law("bnsl").predict(bnsl, np.array([16.0])) == pytest.approx(
        [1.0 + 2.0 * 0.25 / np.sqrt(17.0)], rel=1e-12
    )
    # A second break at d2 = 16, f2 = 1, c2 = 2: (16/16)^1 = 1, (1 + 1)^-2 = 1/4.
    bnsl2 = {**bnsl, "c2": 2.0, "d2": 16.0, "f2": 1.0}
    assert get_law("bnsl2").predict(bnsl2, np.array([16.0])) == pytest.approx(
        [1.0 + 2.0 * 0.25 / np.sqrt(17.0) / 4.0], rel=1e-12
    )
    # Kaplan: (4/1)^(0.25/0.5) = 2, 2/1 = 2, (2 + 2)^0.5 = 2.
    kaplan = {"N_c": 4.0, "D_c": 2.0, "alpha_N": 0.25, "alpha_D": 0.5}
    assert get_law("kaplan").predict(kaplan, np.array([1.0]), np.array([1.0])) == pytest.approx(
        [2.0], rel=1e-12
    )
    # Gadre et al.: C = 16, M = 4, eta = 0.5: (3·2 + 8/2)·16^-0.5 = 10/4; M_opt = (8/3)^1.
    over = {"E": 1.0, "A": 3.0, "B": 8.0, "eta": 0.5}
    law = get_law("overtraining")
    assert law.predict(over, np.array([16.0]), np.array([4.0])) == pytest.approx([3.5], rel=1e-12)
    assert law.derived(np.array([1.0, 3.0, 8.0, 0.5]))["M_opt"] == pytest.approx(8.0 / 3.0)
    assert law.formula() == "L = E + (A*M^eta + B*M^-eta) * C^-eta"



def test_data_constrained_predicts_by_hand_and_reads_its_ratios() -> None:
    from analysis.laws.repeated import repetition_inputs

    # N = 1e9 on U = 1e10 unique tokens: U_N = min(N, U/20) = 5e8, rho_N = 2; D = 3e10
    # tokens are 3 epochs, rho_D = 3
    n, d, rho_n, rho_d = repetition_inputs(np.array([1e9]), np.array([3e10]), np.array([1e10]))
    assert (rho_n, rho_d) == (pytest.approx([2.0]), pytest.approx([3.0]))
    # R* = 1: N' = U_N (1 + (1 - e^-1)), D' = U (1 + (1 - e^-2)); alpha = beta = 1
    p = {"E": 1.0, "A": 1e9, "B": 1e10, "alpha": 1.0, "beta": 1.0, "R_N": 1.0, "R_D": 1.0}
    expected = 1.0 + 1e9 / (5e8 * (2 - np.exp(-1))) + 1e10 / (1e10 * (2 - np.exp(-2)))
    law = get_law("data_constrained")
    assert law.predict(p, n, d, rho_n, rho_d) == pytest.approx([expected], rel=1e-12)
    # no repetition: Chinchilla's law
    chin = {k: p[k] for k in ("E", "A", "B", "alpha", "beta")}
    ones = np.array([1.0])
    assert law.predict(p, n, d, ones, ones) == pytest.approx(
        get_law("chinchilla").predict(chin, n, d), rel=1e-12
    )
    halves = law.derived(np.array([1.0, 1.0, 1.0, 0.3, 0.3, 5.0, 15.0]))
    assert halves["half_life_D"] == pytest.approx(15 * np.log(2))
    with pytest.raises(ValueError, match="every unique_tokens must be finite and > 0"):
        repetition_inputs(n, d, np.array([0.0]))


def test_broken_law_bends_from_one_slope_to_the_next() -> None:
    """Far below d1 the log-log slope is -c0, far above it -(c0 + c1)."""
    params = {"a": 0.0 + 1e-300, "b": 1.0, "c0": 0.2, "c1": 0.5, "d1": 1e6, "f1": 0.3}
    law = get_law("bnsl")
    for x0, slope in ((1e1, -0.2), (1e11, -0.7)):
        x = np.array([x0, 2 * x0])
        y = law.predict(params, x)
        assert np.log(y[1] / y[0]) / np.log(2) == pytest.approx(slope, abs=1e-4)


def test_kaplan_reduces_to_its_one_variable_limits() -> None:
    """D → ∞: (N_c/N)^alpha_N; N → ∞: (D_c/D)^alpha_D (Kaplan et al. eq. 1.5)."""
    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    law = get_law("kaplan")
    assert law.predict(p, np.array([1e9]), np.array([1e40])) == pytest.approx(
        [(6.4e13 / 1e9) ** 0.076], rel=1e-9
    )
    assert law.predict(p, np.array([1e60]), np.array([1e10])) == pytest.approx(
        [(1.8e13 / 1e10) ** 0.103], rel=1e-9
    )


def test_kaplans_compute_optimal_exponent_is_where_its_loss_is_least_at_c_6nd() -> None:
    """At C = 6ND, the N that minimises Kaplan's L (found by a 1-D search, not the
    formula) grows as C^a with a = alpha_D/(alpha_N + alpha_D)."""
    from scipy.optimize import minimize_scalar

    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    law = get_law("kaplan")

    def log_n_opt(c: float) -> float:
        def loss(log_n: float) -> float:
            n = np.exp(log_n)
            return float(law.predict(p, np.array([n]), np.array([c / (6 * n)]))[0])

        return minimize_scalar(loss, bounds=(0, 60), method="bounded", options={"xatol": 1e-10}).x

    slope = (log_n_opt(1e24) - log_n_opt(1e20)) / np.log(1e4)
    derived = law.derived(np.array([6.4e13, 1.8e13, 0.076, 0.103]))
    assert float(derived["a"]) == pytest.approx(slope, abs=1e-6)
    assert float(derived["a"]) == pytest.approx(0.103 / 0.179)
    assert float(derived["a"] + derived["b"]) == pytest.approx(1.0)


def test_new_laws_print_their_formulas() -> None:
    assert get_law("bnsl").formula() == "y = a + b·x^(-c0)·(1 + (x/d1)^(1/f1))^(-c1·f1)"
    assert (
        get_law("bnsl2")
        .formula(variables=["C"], target="L")
        .endswith("·(1 + (C/d2)^(1/f2))^(-c2·f2)")
    )
    assert get_law("kaplan").formula() == "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    assert get_law("kaplan").formula(p) == "L = [(6.4e+13/N)^(0.076/0.103) + 1.8e+13/D]^0.103"
    text = get_law("bnsl").formula({"a": 0.5, "b": 20.0, "c0": 0.2, "c1": -0.4, "d1": 1e6,
                                    "f1": 0.5})  # fmt: skip
    assert text == "y = 0.5 + 20·x^-0.2·(1 + (x/1e+06)^(1/0.5))^(0.4·0.5)"
