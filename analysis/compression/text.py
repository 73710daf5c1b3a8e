"""The compression laws, the critical D and the bytes table as `scaling-analyze
downstream` prints them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.compression.result import CompressionFit

if TYPE_CHECKING:
    from analysis.downstream import DownstreamFits


def _interval_text(fit: CompressionFit, name: str) -> str:
    value = fit.params[name]
    text = f"{value:.4g}"
    if name in fit.intervals:
        lo, hi = fit.intervals[name]
        text += f"  [{lo:.4g}, {hi:.4g}]"
    return text


def _format_law_block(
    fits: dict[str, CompressionFit], notes: dict[str, str], kind: str
) -> list[str]:
    """One block per fitted scheme: the formula, each parameter with its interval, and
    whether it is identified (the reasons when not)."""
    lines = []
    for key, fit in fits.items():
        lines.append(f"  {key}: {fit.formula()}  (n={fit.n}, {fit.interval_kind} intervals)")
        for name in fit.params:
            lines.append(f"    {name:>10} = {_interval_text(fit, name)}")
        if fit.identified:
            lines.append("    identified")
        else:
            lines.append("    NOT identified: " + "; ".join(fit.identification))
        lines += [f"    note: {n}" for n in fit.notes]
    for key, text in notes.items():
        if key.startswith(f"{kind}:"):
            lines.append(f"  {key.split(':', 1)[1]}: not fitted: {text}")
    return lines


def format_compression_laws(fits: DownstreamFits) -> list[str]:
    """The quantization and sparsity laws, the critical D and the bytes table."""
    lines: list[str] = []
    if fits.quantization or any(k.startswith("quantization:") for k in fits.notes):
        lines += [
            "",
            "post-training quantization, Kumar et al. (2024): delta = C_T * D^gamma_D / "
            "N^gamma_N * exp(-P/gamma_post), every source model, per scheme "
            "(gamma_D > 0: more pretraining data makes a model more fragile)",
        ]
        lines += _format_law_block(fits.quantization, fits.notes, "quantization")
    if fits.sparsity or any(k.startswith("sparsity:") for k in fits.notes):
        lines += [
            "",
            "pruning, our analogue of Frantar et al. (2023): dL = C_S * D^gamma_D / "
            "N^gamma_N * (s/(1-s))^gamma_s (2:4, s = 0.5 only: no gamma_s), with and "
            "without recovery",
        ]
        lines += _format_law_block(fits.sparsity, fits.notes, "sparsity")
    if fits.quantization:
        lines.append("")
        law = fits.pretrain_law
        if law is None:
            lines.append(
                "critical pretraining tokens D*: not computed: "
                + fits.notes.get("pretrain_law", "no pretraining fit")
            )
        else:
            n = fits.critical_tokens[0].params if fits.critical_tokens else math.nan
            lines.append(
                f"critical pretraining tokens D* (past it, more data makes the quantized "
                f"model worse), at N = {n:.4g}, the largest, with the pretraining fit's "
                f"B = {law.params['B']:.4g}, beta = {law.params['beta']:.4g}:"
            )
            if not law.identified:
                lines.append(
                    "  the critical D rests on a pretraining fit that is NOT identified: "
                    + "; ".join(law.identification)
                )
            top = fits.compression_table
            most = float(top["pretrain_tokens"].max()) if top is not None else math.nan
            for c in fits.critical_tokens:
                text = f"  {c}"
                if c.tokens is not None and math.isfinite(most):
                    text += f"  ({c.tokens / most:.3g}x the sweep's largest D, {most:.3g})"
                lines.append(text)
    if fits.bytes_table is not None and len(fits.bytes_table):
        lines += [""] + _format_bytes(fits.bytes_table)
    return lines


def _format_bytes(table: pd.DataFrame) -> list[str]:
    """The bytes/throughput table, ``slower`` where a variant runs below float speed."""
    batches = [c.removeprefix("speedup_") for c in table.columns if c.startswith("speedup_")]
    n = float(table["params"].iloc[0])
    models = int(table["models"].max())
    lines = [
        f"bytes and throughput per variant (mean over the {models} model(s) of N = {n:.4g}; "
        "ratio: float bytes / variant bytes; speedup: tokens/s over the float model's)"
    ]
    head = f"  {'variant':>16} {'size_bytes':>11} {'memory_bytes':>12} {'ratio':>6}"
    for b in batches:
        head += f" {'tok/s b' + b.removeprefix('batch_'):>11} {'speedup':>14}"
    lines.append(head)
    for row in table.to_dict("records"):
        text = (
            f"  {row['variant']:>16} {row['size_bytes']:>11.4g} "
            f"{_maybe(row.get('memory_bytes')):>12} {row['compression']:>5.2f}x"
        )
        for b in batches:
            tps, sp = row.get(f"tokens_per_s_{b}"), row.get(f"speedup_{b}")
            cell = "-" if sp is None or not math.isfinite(sp) else f"{sp:.2f}x"
            if sp is not None and math.isfinite(sp) and sp < 1:
                cell += " slower"
            text += f" {_maybe(tps):>11} {cell:>14}"
        lines.append(text)
    return lines


def _maybe(value: Any) -> str:
    """A number as ``%.4g``, ``-`` where it is absent."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.4g}"
