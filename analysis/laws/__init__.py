"""The scaling-law forms: what each one predicts, how it prints, and the coordinates
the fitter works in. No fitting here (that is :mod:`analysis.fit`).

One module per family of forms:

:mod:`analysis.laws.powers`
    ``power``: ``y = a * x^k`` -- e.g. training compute against parameters, ``C ∝ N^k``;
    ``saturating``: ``y = E + A * x^(-alpha)`` -- loss against one size variable;
    ``chinchilla``: ``L = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022, eq. 2).
:mod:`analysis.laws.broken`
    ``bnsl``, ``bnsl2``: broken neural scaling laws with one or two breaks,
    ``y = a + b·x^(-c0)·Π_i (1 + (x/d_i)^(1/f_i))^(-c_i·f_i)`` (Caballero et al. 2022).
:mod:`analysis.laws.kaplan`
    ``kaplan``: ``L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D`` (Kaplan et al. 2020).
:mod:`analysis.laws.repeated`
    ``data_constrained``: Chinchilla's law in effective parameters and tokens when data
    repeat (Muennighoff et al. 2023).
:mod:`analysis.laws.overtraining`
    ``overtraining``: ``L = E + (A·M^eta + B·M^(-eta))·C^(-eta)``, ``M = D/N``
    (Gadre et al. 2024).

:mod:`analysis.laws.base` holds :class:`Law`, :mod:`analysis.laws.jets` the exact
first and second derivatives the laws' log-predictions are written with. Parameters
are passed as mappings keyed by ``Law.param_names``.
"""

from __future__ import annotations

from analysis.laws.base import Law
from analysis.laws.broken import BNSL, BNSL2, BrokenPowerLaw
from analysis.laws.kaplan import Kaplan
from analysis.laws.overtraining import Overtraining
from analysis.laws.powers import Chinchilla, PowerLaw, SaturatingPowerLaw, SumOfPowers
from analysis.laws.repeated import DataConstrained

__all__ = [
    "LAWS",
    "BrokenPowerLaw",
    "Chinchilla",
    "DataConstrained",
    "Kaplan",
    "Law",
    "Overtraining",
    "PowerLaw",
    "SaturatingPowerLaw",
    "SumOfPowers",
    "get_law",
]

LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        PowerLaw(),
        SaturatingPowerLaw(),
        Chinchilla(),
        BNSL,
        BNSL2,
        Kaplan(),
        Overtraining(),
        DataConstrained(),
    )
}


def get_law(name: str | Law) -> Law:
    """Look a law up by name (a :class:`Law` passes through unchanged).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}") from None
