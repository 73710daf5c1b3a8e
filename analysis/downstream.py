"""Downstream and compression scaling: task error and compression cost against model size.

Reads the records written by ``scaling-train -m experiment=finetune|compress
source=<sweep>`` (docs/run-record.md), which land in ``<sweep>-finetune/`` and
``<sweep>-compress/`` beside the source sweep, and fits:

Task error against parameters
    ``Err(N) = E + A·N^(-alpha)`` (the saturating law of :mod:`analysis.laws`) when there
    are six sizes or more, else ``Err = a·N^k``; one point per size (the mean over seeds).
Task error against pretraining loss -- the two-step law
    Step 1 is the pretraining ``L(N) = E + A·N^(-alpha)`` of the source runs; step 2 maps
    loss to error by :mod:`analysis.error_map`, with ``link`` the exponential
    ``Err(L) = eps - k·exp(-gamma·L)`` of Gadre et al. (2024, the default) or the
    sigmoid of Bhagia et al. (2024, OLMo's model ladder). Composed, they predict the
    error of a size from its loss. With fewer than two models per parameter of the
    link, the error at high loss is held at the chance error.
Compression cost against parameters
    For each variant (int8, pruning at each sparsity) the loss increase over the
    uncompressed model, ``dL(N) = a·N^k``, fitted in log-log. ``k < 0``: compression
    hurts small models more.
Compression laws of N, D and precision (:mod:`analysis.compression`)
    Kumar et al.'s (2024) post-training quantization law
    ``delta = C_T·D^gamma_D/N^gamma_N·exp(-P/gamma_post)`` per quantization scheme, our
    sparsity analogue ``dL = C_S·D^gamma_D/N^gamma_N·(s/(1-s))^gamma_s`` per pruning
    scheme with and without recovery, both over every source model; and, with the
    Chinchilla fit ``L = E + A/N^alpha + B/D^beta`` of the pretraining sweep itself, the
    critical pretraining tokens ``D*`` past which more data makes the quantized model
    worse, per precision at the sweep's largest N. Beside them, the bytes, memory and
    throughput of each variant at the largest size.

The records are read by :mod:`analysis.io.downstream`, the loss -> error map is
:mod:`analysis.error_map`, and the figures (PNG and SVG, through :func:`plot_downstream`)
are drawn by :mod:`analysis.plots.downstream`: error vs parameters, error vs pretraining
loss, loss increase vs parameters, and loss vs bytes per variant; and by
:mod:`analysis.plots.compression`: the quantization law against D/N and against P, and
the Pareto front of loss against bytes per model size.

No torch here, as everywhere in ``analysis``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.compression import (
    CompressionFit,
    CriticalTokens,
    bytes_table,
    fit_compression_laws,
)
from analysis.compression.pretrain import (
    critical_tokens_table,
    fit_pretrain_law,
    load_pretrain,
    pretrain_dir,
)
from analysis.compression.text import format_compression_laws
from analysis.error_map import LINKS, ErrorMap, fit_error_map
from analysis.io.downstream import (
    downstream_dirs,
    load_compress,
    load_finetune,
)

if TYPE_CHECKING:
    from analysis.fit import FitResult

__all__ = [
    "DownstreamFits",
    "TwoStepBacktest",
    "backtest_two_step",
    "ErrorMap",
    "compute_downstream_fits",
    "critical_tokens_table",
    "downstream_dirs",
    "fit_compression",
    "fit_pretrain_law",
    "fit_error_map",
    "fit_error_vs_params",
    "format_downstream",
    "load_compress",
    "load_finetune",
    "load_pretrain",
    "plot_downstream",
    "pretrain_dir",
]

# --------------------------------------------------------------------------------------
# All the fits


@dataclass
class DownstreamFits:
    """The downstream and compression fits; a fit that could not be made is None with a note.

    Attributes
    ----------
    error_vs_params
        Test error against parameters, over the best-trained model of each size
        (saturating, or power with fewer than six sizes).
    loss_vs_params
        Step 1 of the two-step law: pretraining ``L(N)`` over the same models (the same
        choice of law).
    error_vs_loss
        Step 2: :class:`ErrorMap` from pretraining loss to test error, over every model.
    compression
        Power law ``dL = a·N^k`` per compression variant, best-trained model per size.
    per_source, compression_table
        Mean error per source model (over seeds); loss increase per model and variant.
    two_step_backtest
        :class:`TwoStepBacktest`: both steps fitted without the largest size, predicting
        its error.
    baselines
        Test accuracy of the task's baselines (``majority``, ``bag_of_tokens``: the
        fine-tuning job's :mod:`scaling.baselines`), when the records carry them.
    quantization
        Kumar et al.'s ``delta(N, D, P)`` per quantization scheme (``rtn``, ``rtn g64``,
        ``w8a8``, ``fp8``): :class:`analysis.compression.CompressionFit`.
    sparsity
        Our ``dL(N, D, s)`` per pruning scheme and recovery (``prune``,
        ``prune+recovery``, ``2:4``, ``2:4+recovery``).
    pretrain_law
        The Chinchilla fit ``L(N, D)`` of the pretraining sweep, which the critical D
        takes its ``B`` and ``beta`` from.
    critical_tokens
        :class:`analysis.compression.CriticalTokens` per quantization scheme and bits, at
        the largest N of the compression records.
    bytes_table
        Per variant, bytes, memory, compression ratio, tokens/s and speedup at the
        largest size (:func:`analysis.compression.bytes_table`).
    notes
        Why a fit is missing, keyed like the attributes (``compression:<variant>``,
        ``quantization:<scheme>``, ``sparsity:<scheme>``, ``pretrain_law``).
    """

    error_vs_params: FitResult | None = None
    loss_vs_params: FitResult | None = None
    error_vs_loss: ErrorMap | None = None
    compression: dict[str, FitResult] = field(default_factory=dict)
    per_source: pd.DataFrame | None = None
    compression_table: pd.DataFrame | None = None
    two_step_backtest: TwoStepBacktest | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    quantization: dict[str, CompressionFit] = field(default_factory=dict)
    sparsity: dict[str, CompressionFit] = field(default_factory=dict)
    pretrain_law: FitResult | None = None
    critical_tokens: list[CriticalTokens] = field(default_factory=list)
    bytes_table: pd.DataFrame | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def two_step(self, params: Any) -> np.ndarray:
        """Predicted task error at ``params``: ``Err(L(N))``."""
        if self.loss_vs_params is None or self.error_vs_loss is None:
            raise ValueError("the two-step law needs both L(N) and Err(L)")
        return self.error_vs_loss.predict(self.loss_vs_params.predict(np.asarray(params, float)))


def per_source(finetune: pd.DataFrame) -> pd.DataFrame:
    """Mean test error and accuracy per source model (over seeds), smallest first.

    When a model was fine-tuned with several settings (a sweep over learning rates, say),
    it is represented by the setting with the best mean *validation* accuracy: chosen
    without looking at the test split, as tuning should be. The settings of one model
    are compared on the seeds they all share (all of each, when they share none): the
    best of means over one seed against means over three would favour the noisier.
    """
    finetune = finetune.assign(setting=finetune.get("setting", "-"))
    seed = finetune["seed"].fillna(-1) if "seed" in finetune else 0  # records without one
    finetune = finetune.assign(seed=seed)
    seeds = finetune.groupby(["source_run", "setting"], sort=False)["seed"].agg(frozenset)
    shared = seeds.groupby(level="source_run", sort=False).agg(lambda s: frozenset.intersection(*s))
    common = finetune["source_run"].map(shared)
    on_shared = [seed in c or not c for seed, c in zip(finetune["seed"], common, strict=True)]
    choice = (
        finetune[on_shared].groupby(["source_run", "setting"], sort=False)["val_accuracy"].mean()
    )
    agg = finetune.groupby(["source_run", "setting"], sort=False).agg(
        val_accuracy=("val_accuracy", "mean"),
        params=("params", "first"),
        d_model=("d_model", "first"),
        pretrain_loss=("pretrain_loss", "first"),
        pretrain_tokens=("pretrain_tokens", "first"),
        test_error=("test_error", "mean"),
        test_accuracy=("test_accuracy", "mean"),
        accuracy_sd=("test_accuracy", "std"),
        chance_accuracy=("chance_accuracy", "first"),
        n_classes=("n_classes", "first"),
        seeds=("run", "size"),
        stopped_early=("stopped_early", "mean"),
    )
    agg = agg.reset_index()
    agg["choice"] = [
        choice[(r, st)] for r, st in zip(agg["source_run"], agg["setting"], strict=True)
    ]
    agg = agg.loc[agg.groupby("source_run", sort=False)["choice"].idxmax()].drop(columns="choice")
    return agg.sort_values(["params", "pretrain_tokens"]).reset_index(drop=True)


def best_per_size(points: pd.DataFrame) -> pd.DataFrame:
    """The source model with the lowest pretraining loss of each size.

    A sweep may train each size for several token budgets; what a size can do is told by
    its best-trained model, as ``analysis.plots.best_run_per_size`` does for L(N).
    """
    best = points.loc[points.groupby("params", sort=True)["pretrain_loss"].idxmin()]
    return best.reset_index(drop=True)


def _size_law(n_sizes: int) -> str:
    # a floor needs a third parameter, and the project fits with >= 2 points per parameter
    return "saturating" if n_sizes >= 6 else "power"


def fit_error_vs_params(
    finetune: pd.DataFrame, *, law: str | None = None, bootstrap: int = 0, seed: int = 0
) -> FitResult:
    """Fit task error against parameters, one point per size (its best-trained model).

    ``law`` None picks ``saturating`` with six sizes or more, else ``power``.
    """
    from analysis.fit import fit_frame

    points = best_per_size(per_source(finetune))
    law = law or _size_law(len(points))
    return fit_frame(points, law, x="params", y="test_error", bootstrap=bootstrap, seed=seed)


def best_compressed_per_size(compress: pd.DataFrame) -> pd.DataFrame:
    """The rows (every variant) of the best-trained model of each size (lowest baseline)."""
    best = compress.loc[compress.groupby("params")["baseline_loss"].idxmin(), "run"]
    return compress[compress["run"].isin(best)]


def fit_compression(
    compress: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0
) -> tuple[dict[str, FitResult], dict[str, str]]:
    """Fit ``dL = a·N^k`` for each variant; return the fits and why others were not made.

    One point per size: its model with the lowest baseline loss (the best-trained).
    """
    from analysis.fit import fit_frame

    fits, notes = {}, {}
    chosen = best_compressed_per_size(compress)
    for variant, rows in chosen[chosen["variant"] != "baseline"].groupby("variant", sort=False):
        if (rows["delta_loss"] <= 0).any():
            notes[variant] = (
                f"{int((rows['delta_loss'] <= 0).sum())} of {len(rows)} models lose no loss "
                "to it (dL <= 0): no power law"
            )
            continue
        try:
            fits[variant] = fit_frame(
                rows, "power", x="params", y="delta_loss", bootstrap=bootstrap, seed=seed
            )
        except ValueError as e:
            notes[variant] = str(e)
    return fits, notes


def compute_downstream_fits(
    finetune: pd.DataFrame | None,
    compress: pd.DataFrame | None,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    link: str = "exponential",
    pretrain: pd.DataFrame | None = None,
    level: float = 0.95,
) -> DownstreamFits:
    """Make every fit the data allows; note (do not raise) the ones it does not.

    ``link`` is the form of step 2, Err(L) (:data:`analysis.error_map.LINKS`);
    ``pretrain`` the pretraining runs (:func:`load_pretrain`), whose Chinchilla fit the
    critical D of the quantization laws needs (None: no critical D)."""
    from analysis.fit import fit_frame

    out = DownstreamFits()

    def attempt(name: str, make: Any) -> Any:
        try:
            return make()
        except ValueError as e:  # DataError included
            out.notes[name] = str(e)
            return None

    if finetune is not None and len(finetune):
        points = per_source(finetune)
        sizes = best_per_size(points)
        out.per_source = points
        for name in ("majority", "bag_of_tokens"):
            column = finetune.get(f"{name}_accuracy")
            if column is not None and column.notna().any():
                out.baselines[name] = float(column.dropna().iloc[0])
        out.error_vs_params = attempt(
            "error_vs_params",
            lambda: fit_error_vs_params(finetune, bootstrap=bootstrap, seed=seed),
        )
        out.loss_vs_params = attempt(
            "loss_vs_params",
            lambda: fit_frame(sizes, _size_law(len(sizes)), x="params", y="pretrain_loss"),
        )
        # every source model is a point of Err(L), whatever its size and token budget;
        # the error at high loss is free with two points per parameter of the link, else
        # held at the chance error
        chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
        eps = None if len(points) >= 2 * len(LINKS.get(link, ())) else chance_error
        out.error_vs_loss = attempt(
            "error_vs_loss",
            lambda: fit_error_map(
                points["pretrain_loss"],
                points["test_error"],
                link=link,
                eps=eps,
                bootstrap=bootstrap,
                seed=seed,
            ),
        )
        out.two_step_backtest = attempt(
            "two_step_backtest",
            lambda: backtest_two_step(finetune, link=link, bootstrap=bootstrap, seed=seed),
        )
    if compress is not None and len(compress):
        out.compression_table = compress
        fits, notes = fit_compression(compress, bootstrap=0, seed=seed)
        out.compression = fits
        out.notes.update({f"compression:{k}": v for k, v in notes.items()})
        quant, sparse, law_notes = fit_compression_laws(
            compress, bootstrap=bootstrap, seed=seed, level=level
        )
        out.quantization, out.sparsity = quant, sparse
        for key, text in law_notes.items():
            kind = "sparsity" if key.split("+")[0] in ("prune", "2:4") else "quantization"
            out.notes[f"{kind}:{key}"] = text
        out.bytes_table = bytes_table(compress)
        if quant and pretrain is None:
            out.notes.setdefault("pretrain_law", "no pretraining records beside the sweep")
        if quant and pretrain is not None:
            out.pretrain_law = attempt(
                "pretrain_law",
                lambda: fit_pretrain_law(pretrain, bootstrap=bootstrap, seed=seed, level=level),
            )
        if out.pretrain_law is not None:
            out.critical_tokens = critical_tokens_table(
                quant, out.pretrain_law, float(compress["params"].max())
            )
    return out


@dataclass
class TwoStepBacktest:
    """The two-step law fitted on the smaller models, predicting the largest's error.

    Attributes
    ----------
    params, pretrain_loss, measured_error
        The held-out model: its size, its pretraining loss and its test error (mean over
        seeds).
    predicted_error, interval
        ``Err(L(N))`` from the fits on the other models, and its ``level`` interval
        (bootstrap: each resample of step 1 composed with one of step 2, the models
        resampled whole, every seed of a model together).
    inside
        Whether the measured error lies in the interval.
    n_train
        Models the two steps were fitted on.
    """

    params: float
    pretrain_loss: float
    measured_error: float
    predicted_error: float
    interval: tuple[float, float] | None
    inside: bool | None
    n_train: int
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "pretrain_loss": self.pretrain_loss,
            "measured_error": self.measured_error,
            "predicted_error": self.predicted_error,
            "interval": None if self.interval is None else list(self.interval),
            "inside": self.inside,
            "n_train": self.n_train,
            "level": self.level,
        }

    def __str__(self) -> str:
        text = (
            f"N = {self.params:.4g} (L = {self.pretrain_loss:.4f}): measured error "
            f"{self.measured_error:.3f}, predicted {self.predicted_error:.3f}"
        )
        if self.interval is not None:
            lo, hi = self.interval
            text += f" [{lo:.3f}, {hi:.3f}] ({'inside' if self.inside else 'OUTSIDE'})"
        return text + f", from the {self.n_train} smaller models"


def backtest_two_step(
    finetune: pd.DataFrame,
    *,
    link: str = "exponential",
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> TwoStepBacktest:
    """Fit both steps on every model but those of the largest size, predict its error.

    Step 1, pretraining ``L(N)``, is fitted on the best-trained model of each smaller
    size and step 2, ``Err(L)``, on every smaller model, as :func:`compute_downstream_fits`
    fits them on all; the held-out model is the best-trained one of the largest size.

    Raises
    ------
    ValueError
        With fewer than three smaller sizes, or too few models for step 2.
    """
    from analysis.fit import fit_frame

    points = per_source(finetune)
    largest = points["params"].max()
    held = best_per_size(points[points["params"] == largest]).iloc[0]
    train = points[points["params"] < largest]
    sizes = best_per_size(train)
    if len(sizes) < 3:
        raise ValueError(
            f"the two-step backtest needs three sizes below the largest, got {len(sizes)}"
        )
    step1 = fit_frame(sizes, _size_law(len(sizes)), x="params", y="pretrain_loss",
                      bootstrap=bootstrap, seed=seed, level=level)  # fmt: skip
    chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
    eps = None if len(train) >= 2 * len(LINKS.get(link, ())) else chance_error
    step2 = fit_error_map(train["pretrain_loss"], train["test_error"], link=link, eps=eps,
                          bootstrap=bootstrap, seed=seed + 1, level=level)  # fmt: skip
    n = np.array([float(held["params"])])
    predicted = float(step2.predict(step1.predict(n))[0])
    interval, inside = None, None
    if bootstrap and step1.bootstrap is not None and step2.bootstrap is not None:
        losses = step1.predict_samples(n)[:, 0]
        m = min(len(losses), len(step2.bootstrap))
        # resample i of step 1 composed with resample i of step 2: the diagonal
        errors = np.diagonal(step2.predict_samples(losses[:m])[:m])
        # an error rate lies in [0, 1]: a resample's law extrapolated past it says the
        # rate is at the bound, not beyond it
        errors = np.clip(errors, 0.0, 1.0)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(errors, [tail, 100 - tail])
        interval = (float(lo), float(hi))
        inside = bool(lo <= float(held["test_error"]) <= hi)
    return TwoStepBacktest(
        params=float(held["params"]),
        pretrain_loss=float(held["pretrain_loss"]),
        measured_error=float(held["test_error"]),
        predicted_error=predicted,
        interval=interval,
        inside=inside,
        n_train=len(train),
        level=level,
    )


# --------------------------------------------------------------------------------------
# Text


def format_downstream(fits: DownstreamFits) -> str:
    """A plain-text summary: accuracy per size, the fitted laws, compression per size."""
    lines: list[str] = []
    if fits.per_source is not None:
        p = fits.per_source
        chance = float(p["chance_accuracy"].iloc[0])
        lines.append(f"fine-tuning: test accuracy per model (chance {chance:.3f})")
        if fits.baselines:
            names = {"majority": "majority class", "bag_of_tokens": "bag-of-tokens logistic"}
            lines.append(
                "  baselines on the same test split: "
                + ", ".join(f"{names[k]} {v:.3f}" for k, v in fits.baselines.items())
            )
        lines.append(
            f"  {'N':>10} {'d_model':>7} {'tokens':>10} {'pretrain L':>10} {'accuracy':>9} "
            f"{'seeds':>5}"
        )
        for row in p.itertuples(index=False):
            sd = "" if pd.isna(row.accuracy_sd) else f" ± {row.accuracy_sd:.3f}"
            lines.append(
                f"  {row.params:>10.4g} {row.d_model:>7} {row.pretrain_tokens:>10.3g} "
                f"{row.pretrain_loss:>10.4f} {row.test_accuracy:>9.3f}{sd} {row.seeds:>5}"
            )
        lines.append("")
        for name, title in (
            ("error_vs_params", "task error vs N"),
            ("loss_vs_params", "step 1, pretraining loss vs N"),
            ("error_vs_loss", "step 2, task error vs pretraining loss"),
        ):
            fit = getattr(fits, name)
            lines.append(f"{title}:")
            text = str(fit) if fit is not None else f"not fitted: {fits.notes.get(name, '')}"
            lines += ["  " + t for t in text.splitlines()]
        back = fits.two_step_backtest
        lines.append("two-step backtest, the largest size held out:")
        lines.append(
            "  " + (str(back) if back else f"not made: {fits.notes.get('two_step_backtest', '')}")
        )
        lines.append("")
    if fits.compression_table is not None:
        t = best_compressed_per_size(fits.compression_table)
        table = t.pivot(index="params", columns="variant", values="delta_loss")
        order = [v for v in t["variant"].unique() if v != "baseline"]
        base = t[t["variant"] == "baseline"].set_index("params")["val_loss"]
        lines.append(
            "compression: validation loss increase over the fp32 model "
            "(best-trained model of each size)"
        )
        lines.append(f"  {'N':>10} {'baseline':>9} " + " ".join(f"{v:>12}" for v in order))
        for n in table.index:
            cells = " ".join(f"{table.loc[n, v]:>+12.4f}" for v in order)
            lines.append(f"  {n:>10.4g} {base.loc[n]:>9.4f} {cells}")
        ratio = t.groupby("variant", sort=False)["compression"].median()
        lines.append("  size vs fp32 (median): " + ", ".join(f"{v} {ratio[v]:.2f}x" for v in order))
        lines.append("")
        lines.append("loss increase vs N, dL = a * N^k (k < 0: hurts small models more):")
        for v in order:
            fit = fits.compression.get(v)
            if fit is None:
                lines.append(f"  {v:>12}: not fitted: {fits.notes.get('compression:' + v, '')}")
                continue
            k = fit.params["k"]
            lo, hi = fit.intervals.get("k", (math.nan, math.nan))
            verdict = (
                "hurts small models more"
                if hi < 0
                else "hurts large models more"
                if lo > 0
                else "no clear trend with size"
            )
            lines.append(
                f"  {v:>12}: dL = {fit.params['a']:.3g} * N^{k:.3f}  "
                f"k in [{lo:.3f}, {hi:.3f}]  -> {verdict}"
            )
        lines += format_compression_laws(fits)
    return "\n".join(lines).rstrip()


def fits_to_dict(fits: DownstreamFits) -> dict[str, Any]:
    """JSON-ready fits, per-size points and notes."""
    out: dict[str, Any] = {"notes": dict(fits.notes), "baselines": dict(fits.baselines)}
    for name in ("error_vs_params", "loss_vs_params", "error_vs_loss"):
        fit = getattr(fits, name)
        out[name] = fit.to_dict() if fit is not None else None
    back = fits.two_step_backtest
    out["two_step_backtest"] = back.to_dict() if back is not None else None
    out["compression"] = {k: v.to_dict() for k, v in fits.compression.items()}
    if fits.per_source is not None:
        out["per_source"] = json.loads(fits.per_source.to_json(orient="records"))
    out["quantization"] = {k: v.to_dict() for k, v in fits.quantization.items()}
    out["sparsity"] = {k: v.to_dict() for k, v in fits.sparsity.items()}
    law = fits.pretrain_law
    out["pretrain_law"] = law.to_dict() if law is not None else None
    out["critical_tokens"] = [c.to_dict() for c in fits.critical_tokens]
    if fits.bytes_table is not None:
        out["bytes_table"] = json.loads(fits.bytes_table.to_json(orient="records"))
    if fits.compression_table is not None:
        table = fits.compression_table
        cols = ["source_run", "params", "pretrain_tokens", "variant", "scheme", "bits"]
        cols += ["group_size", "activation_bits", "sparsity", "recover_tokens", "val_loss"]
        cols += ["delta_loss", "size_bytes", "compressed_bytes", "memory_bytes"]
        cols += ["compressed_memory_bytes", "baseline_memory_bytes"]
        cols += [c for c in table.columns if c.startswith(("tokens_per_s_", "speedup_"))]
        out["compression_table"] = json.loads(
            table[[c for c in cols if c in table]].to_json(orient="records")
        )
    return out


# --------------------------------------------------------------------------------------
# Figures


def plot_downstream(path: str | Path, out_dir: str | Path, **options: Any) -> list[Path]:
    """Draw the downstream and compression figures of a sweep, if it has such records:
    :func:`analysis.plots.downstream.plot_downstream` (imported only when called, so
    that this module needs no matplotlib)."""
    from analysis.plots.downstream import plot_downstream as plot

    return plot(path, out_dir, **options)
