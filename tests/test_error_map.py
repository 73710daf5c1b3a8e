"""Err(L), the second step of the two-step downstream law: its exponential and sigmoid links."""

import numpy as np
import pytest

from analysis.error_map import fit_error_map

ERR_L = {"eps": 0.85, "k": 5.0, "gamma": 1.2}  # Err = eps - k exp(-gamma L)
SIG = {"floor": 0.12, "ceiling": 0.875, "k": 6.0, "L0": 2.6}  # an 8-class task: chance 0.875


def exponential(loss, p=ERR_L):
    return p["eps"] - p["k"] * np.exp(-p["gamma"] * np.asarray(loss))


def sigmoid(loss, p=SIG):
    return p["floor"] + (p["ceiling"] - p["floor"]) / (1 + np.exp(-p["k"] * (loss - p["L0"])))


def test_error_map_recovers_known_parameters():
    loss = np.linspace(2.0, 4.0, 12)
    fit = fit_error_map(loss, exponential(loss))
    for name, value in ERR_L.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), name
    assert fit.rmse < 1e-6
    # with noise, the bootstrap intervals cover the truth; with eps fixed, k and gamma follow
    rng = np.random.default_rng(0)
    noisy = exponential(loss) + rng.normal(0, 0.005, loss.shape)
    fit = fit_error_map(loss, noisy, bootstrap=100, seed=1)
    for name, value in ERR_L.items():
        lo, hi = fit.intervals[name]
        assert lo <= value <= hi, (name, lo, hi)
    fixed = fit_error_map(loss, exponential(loss), eps=ERR_L["eps"])
    assert fixed.fixed == ("eps",) and fixed.params["gamma"] == pytest.approx(1.2, rel=1e-4)
    assert fixed.params["k"] == pytest.approx(5.0, rel=1e-4)
    lo, hi = fit.predict_band(loss)
    assert (lo <= hi).all()


def test_the_sigmoid_link_recovers_its_parameters_and_bhagias_form():
    """Losses 1.8-3.6 cross the bend at L0 = 2.6: the floor, the ceiling and the rate
    are all seen. Noise-free the fit is exact; with 1 % noise the estimates lie near the
    truth within a few hundredths; with the ceiling held at chance, three parameters
    are fitted."""
    loss = np.linspace(1.8, 3.6, 16)
    fit = fit_error_map(loss, sigmoid(loss), link="sigmoid")
    assert fit.link == "sigmoid" and fit.rmse < 1e-6
    for name, value in SIG.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-3), name
    # Bhagia et al.'s accuracy form, a / (1 + exp(-k'(L - L0))) + b, from the same fit
    a, b = fit.params["ceiling"] - fit.params["floor"], 1 - fit.params["ceiling"]
    acc = a / (1 + np.exp(fit.params["k"] * (loss - fit.params["L0"]))) + b
    np.testing.assert_allclose(acc, 1 - sigmoid(loss), atol=1e-6)
    assert "exp(-6 * (L - 2.6)" in fit.formula()

    rng = np.random.default_rng(3)
    noisy = sigmoid(loss) + rng.normal(0, 0.01, loss.shape)
    fit = fit_error_map(loss, noisy, link="sigmoid", bootstrap=100, seed=0)
    tolerance = {"floor": 0.03, "ceiling": 0.03, "k": 1.5, "L0": 0.05}
    for name, value in SIG.items():
        lo, hi = fit.intervals[name]
        assert lo < fit.params[name] < hi, name
        assert fit.params[name] == pytest.approx(value, abs=tolerance[name]), name
    lo, hi = fit.predict_band(loss)
    assert (hi > lo).all()

    held = fit_error_map(loss, sigmoid(loss), link="sigmoid", eps=SIG["ceiling"])
    assert held.fixed == ("ceiling",) and held.params["ceiling"] == SIG["ceiling"]
    assert held.params["L0"] == pytest.approx(SIG["L0"], rel=1e-4)
    assert held.to_dict()["link"] == "sigmoid"


def test_each_link_fits_its_own_data_better():
    """Data from a sigmoid that levels off at a floor: the exponential, which can only
    fall towards minus infinity as the loss falls, leaves residuals 10x larger; and the
    other way round on exponential data the sigmoid (one parameter more) does no worse."""
    loss = np.linspace(1.8, 3.6, 16)
    on_sigmoid = {
        link: fit_error_map(loss, sigmoid(loss), link=link).rmse
        for link in ("exponential", "sigmoid")
    }
    assert on_sigmoid["exponential"] > 10 * max(on_sigmoid["sigmoid"], 1e-4)
    loss = np.linspace(2.0, 4.0, 12)
    on_exp = fit_error_map(loss, exponential(loss), link="sigmoid").rmse
    assert on_exp < 0.01


def test_error_map_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="at least 6 points"):
        fit_error_map([2, 3, 4, 5], [0.5, 0.6, 0.7, 0.8])
    with pytest.raises(ValueError, match=r"\(sigmoid\) with 4 free parameters needs at least 8"):
        fit_error_map(np.linspace(2, 3, 7), np.linspace(0.3, 0.8, 7), link="sigmoid")
    with pytest.raises(ValueError, match="link='logit': expected one of exponential, sigmoid"):
        fit_error_map(np.linspace(2, 3, 8), np.linspace(0.3, 0.8, 8), link="logit")
    with pytest.raises(ValueError, match="same loss"):
        fit_error_map([3.0] * 6, [0.5] * 6)
    with pytest.raises(ValueError, match="finite"):
        fit_error_map([2, 3, np.nan, 4, 5, 6], [0.5] * 6)
