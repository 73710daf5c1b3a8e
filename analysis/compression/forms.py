"""The compression laws' forms: Kumar et al.'s quantization law and our sparsity
analogues, each linear in its log coefficient and exponents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Form:
    """One law: its coefficient, its third input and that input's feature."""

    name: str
    coef: str  # the coefficient's public name
    third: str | None  # the third input's symbol (None: the law has N and D alone)
    exponent: str | None  # the third input's public exponent
    internal: str | None  # its coefficient in the linear model

    def feature(self, x: np.ndarray) -> np.ndarray:
        if self.third == "P":
            return -x  # log delta falls by P/gamma_post
        return np.log(x / (1.0 - x))  # the odds of a weight being pruned

    def to_public(self, value: float) -> float:
        """The third exponent from its linear coefficient (1/gamma_post -> gamma_post)."""
        if self.third == "P":
            return 1.0 / value if value != 0 else math.inf
        return value

    def formula(self, params: dict[str, float], held: dict[str, float], constant: float) -> str:
        """The law with its numbers; a held input's factor is inside the constant."""
        factors = [f"{constant:.4g}" if held else f"{params[self.coef]:.4g}"]
        if "D" not in held:
            factors.append(f"D^{params['gamma_D']:.4g}")
        text = "·".join(factors)
        if "N" not in held:
            text += f"/N^{params['gamma_N']:.4g}"
        if self.third == "P" and "P" not in held:
            text += f"·exp(-P/{params['gamma_post']:.4g})"
        elif self.third == "s" and "s" not in held:
            text += f"·(s/(1-s))^{params['gamma_s']:.4g}"
        target = "delta" if self.third == "P" else "dL"
        if held:
            values = ", ".join(f"{k} = {v:.4g}" for k, v in held.items())
            text += f"  (at {values}: the constant holds {self.coef} and its factor)"
        return f"{target} = {text}"


#: The laws by name: Kumar et al.'s ``quantization``, our ``sparsity`` and
#: ``sparsity_fixed`` (one sparsity, 2:4: no exponent of s).
FORMS: dict[str, _Form] = {
    "quantization": _Form("quantization", "C_T", "P", "gamma_post", "inv_gamma_post"),
    "sparsity": _Form("sparsity", "C_S", "s", "gamma_s", "gamma_s"),
    "sparsity_fixed": _Form("sparsity_fixed", "C_S", None, None, None),
}
