"""Scaling laws of compression: how much loss quantization and pruning add, by N and D.

Post-training quantization (Kumar et al. 2024, "Scaling Laws for Precision")
    The loss a weight quantization to ``P`` bits adds to a model of ``N`` parameters
    pretrained on ``D`` tokens,

        delta(N, D, P) = C_T · D^gamma_D / N^gamma_N · exp(-P / gamma_post),

    fitted over every variant of one scheme (``rtn`` per channel, ``rtn`` with groups of
    64, ``w8a8``, ``fp8``: a scheme and its group size together) across the source
    models. ``gamma_D > 0`` is their finding that models trained on more data are
    *more* fragile: past a critical D (:func:`critical_tokens`), more pretraining makes
    the quantized model worse.
Sparsity (our analogue, after Frantar et al. 2023, "Scaling Laws for Sparsely-Connected
Foundation Models")
    Frantar et al. scale a law's size term by a function of the density ``1 - s``; we
    keep that ``(1 - s)`` basis for the loss a pruning to sparsity ``s`` adds,

        dL(N, D, s) = C_S · D^gamma_D / N^gamma_N · (s / (1 - s))^gamma_s,

    which is 0 at ``s = 0`` and diverges like ``(1 - s)^(-gamma_s)`` as ``s -> 1``,
    with Kumar et al.'s powers of N and D. It is our form, not a published law. 2:4
    pruning has ``s = 0.5`` only (``s / (1 - s) = 1``), so for it the form is
    ``dL = C_S · D^gamma_D / N^gamma_N`` with no exponent of ``s``. Unstructured
    (``prune``) and 2:4 pruning are fitted apart, and each with and without recovery
    fine-tuning (``recover_tokens`` 0 or more).

Method
    Both laws are linear in their log coefficient and exponents:
    ``log delta = log C + gamma_D log D - gamma_N log N + c·z`` with ``z = -P`` and
    ``c = 1/gamma_post`` (or ``z = log(s/(1-s))`` and ``c = gamma_s``). They are fitted
    by ordinary least squares on ``log delta`` over the rows with ``delta > 0`` (a
    variant that costs nothing, or that the noise of the evaluation makes look
    better than the baseline, has no logarithm: those rows are left out and counted in
    the notes). Least squares solves this exactly in one step, where the generic fitter
    of :mod:`analysis.fit` searches a grid of starts with Newton's method for laws
    whose objective has local minima -- which a linear model does not have -- and takes
    laws of at most two inputs (N, D), where these have three. The intervals are
    percentiles of a bootstrap that resamples *source runs*: every variant of one
    source model shares that model's evaluation batches and weights, so its rows are
    drawn together (:func:`analysis.resample.resample_counts`), seeded. Without a
    bootstrap they are Student-t intervals of the least-squares fit.

An input with a single value in the data (one D, one P) leaves its exponent and the
coefficient undetermined: its column is held out of the fit, the product (e.g.
``C_T·D^gamma_D``) is fitted as one constant, and the result says it is not identified
and why. A result is identified when N, D and P (or s) each take two values or more,
N and D vary independently, there are two points per parameter, and every exponent's
interval is finite and excludes 0.

Modules: :mod:`~analysis.compression.forms` (the laws), :mod:`~.result`
(:class:`CompressionFit`), :mod:`~.fit` (:func:`fit_degradation`), :mod:`~.schemes`
(the fits per scheme of a sweep, the bytes table), :mod:`~.critical` (the critical D).

No torch here, as everywhere in ``analysis``.
"""

from analysis.compression.critical import CriticalTokens, critical_tokens
from analysis.compression.fit import fit_degradation
from analysis.compression.forms import FORMS
from analysis.compression.result import CompressionFit
from analysis.compression.schemes import (
    QUANT_SCHEMES,
    SPARSE_SCHEMES,
    bytes_table,
    fit_compression_laws,
    fit_quantization,
    fit_sparsity,
    scheme_key,
)

__all__ = [
    "FORMS",
    "QUANT_SCHEMES",
    "SPARSE_SCHEMES",
    "CompressionFit",
    "CriticalTokens",
    "bytes_table",
    "critical_tokens",
    "fit_compression_laws",
    "fit_degradation",
    "fit_quantization",
    "fit_sparsity",
    "scheme_key",
]
