"""The laws fitted per scheme over a sweep's compression records, and the bytes and
throughput table of its variants.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.compression.fit import fit_degradation
from analysis.compression.result import CompressionFit

#: Schemes that quantize weights to ``bits`` (their loss follows Kumar et al.'s law).
QUANT_SCHEMES = ("rtn", "w8a8", "fp8")
#: Schemes that prune weights to ``sparsity``.
SPARSE_SCHEMES = ("prune", "2:4")


def scheme_key(scheme: str, group_size: Any = None) -> str:
    """The name of a quantization scheme: ``rtn`` (per channel) or ``rtn g64``."""
    if group_size is None or (isinstance(group_size, float) and math.isnan(group_size)):
        return str(scheme)
    return f"{scheme} g{int(group_size)}"


def _groups(rows: pd.DataFrame) -> list[Any]:
    """The source run of each row (its compression run where the source is unknown)."""
    source = rows["source_run"] if "source_run" in rows else rows["run"]
    return list(source.where(source.notna(), rows["run"]))


def fit_quantization(
    rows: pd.DataFrame,
    *,
    scheme: str = "",
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CompressionFit:
    """Kumar et al.'s ``delta(N, D, P)`` over the rows of one quantization scheme.

    ``rows``: rows of :func:`analysis.io.downstream.load_compress` (``params``,
    ``pretrain_tokens``, ``bits``, ``delta_loss``, ``source_run``), every source model.
    """
    return fit_degradation(
        "quantization",
        rows["params"],
        rows["pretrain_tokens"],
        rows["bits"],
        rows["delta_loss"],
        scheme=scheme,
        groups=_groups(rows),
        bootstrap=bootstrap,
        seed=seed,
        level=level,
    )


def fit_sparsity(
    rows: pd.DataFrame,
    *,
    scheme: str = "",
    structured: bool = False,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CompressionFit:
    """Our sparsity law ``dL(N, D, s)`` over the rows of one pruning scheme.

    ``structured`` (2:4, one sparsity): ``dL = C_S·D^gamma_D/N^gamma_N``, no s-exponent.
    """
    return fit_degradation(
        "sparsity_fixed" if structured else "sparsity",
        rows["params"],
        rows["pretrain_tokens"],
        None if structured else rows["sparsity"],
        rows["delta_loss"],
        scheme=scheme,
        groups=_groups(rows),
        bootstrap=bootstrap,
        seed=seed,
        level=level,
    )


def fit_compression_laws(
    compress: pd.DataFrame, *, bootstrap: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[dict[str, CompressionFit], dict[str, CompressionFit], dict[str, str]]:
    """Every compression law the table allows.

    Returns
    -------
    quantization, sparsity, notes
        Kumar et al.'s law per quantization scheme (keyed by :func:`scheme_key`, e.g.
        ``rtn``, ``rtn g64``), our sparsity law per pruning scheme and recovery
        (``prune``, ``prune+recovery``, ``2:4``, ``2:4+recovery``), and why a fit was
        not made, keyed the same way.
    """
    quant: dict[str, CompressionFit] = {}
    sparse: dict[str, CompressionFit] = {}
    notes: dict[str, str] = {}
    if "scheme" not in compress:
        return quant, sparse, notes
    q = compress[compress["scheme"].isin(QUANT_SCHEMES) & compress["bits"].notna()]
    keys = [scheme_key(s, g) for s, g in zip(q["scheme"], q["group_size"], strict=True)]
    for key, rows in q.groupby(pd.Series(keys, index=q.index), sort=False):
        try:
            quant[key] = fit_quantization(
                rows, scheme=key, bootstrap=bootstrap, seed=seed, level=level
            )
        except ValueError as e:
            notes[key] = str(e)
    s = compress[compress["scheme"].isin(SPARSE_SCHEMES)]
    for (scheme, recovered), rows in s.groupby([s["scheme"], s["recover_tokens"] > 0], sort=False):
        key = f"{scheme}+recovery" if recovered else str(scheme)
        try:
            sparse[key] = fit_sparsity(
                rows,
                scheme=key,
                structured=scheme == "2:4",
                bootstrap=bootstrap,
                seed=seed,
                level=level,
            )
        except ValueError as e:
            notes[key] = str(e)
    return quant, sparse, notes


# --------------------------------------------------------------------------------------
# Bytes and throughput


def bytes_table(compress: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the mean over the source models of the largest size: bytes,
    compression ratio, tokens/s per batch and speedup over the float model.

    Returns
    -------
    pandas.DataFrame
        ``variant, scheme, bits, params, models, val_loss, delta_loss, size_bytes,
        memory_bytes, compression, tokens_per_s_batch_<B>..., speedup_batch_<B>...``,
        in the order the variants first appear. ``compression`` is ``baseline_bytes /
        size_bytes``.
    """
    largest = compress[compress["params"] == compress["params"].max()]
    batch = [c for c in largest.columns if c.startswith(("tokens_per_s_", "speedup_"))]
    columns = ["val_loss", "delta_loss", "size_bytes", "memory_bytes", "compression", *batch]
    columns = [c for c in columns if c in largest]
    agg = {c: (c, "mean") for c in columns}
    first = {c: (c, "first") for c in ("scheme", "bits", "params") if c in largest}
    table = largest.groupby("variant", sort=False).agg(**first, models=("run", "nunique"), **agg)
    return table.reset_index()
