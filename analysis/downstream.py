"""Downstream and compression scaling: task error and compression cost against model size.

Reads the records written by ``scaling-train -m experiment=finetune|compress
source=<sweep>`` (docs/run-record.md), which land in ``<sweep>-finetune/`` and
``<sweep>-compress/`` beside the source sweep, and fits:

Task error against parameters
    ``Err(N) = E + A·N^(-alpha)`` (the saturating law of :mod:`analysis.laws`) when there
    are six sizes or more, else ``Err = a·N^k``; one point per size (the mean over seeds).
Task error against pretraining loss -- the two-step law
    Step 1 is the pretraining ``L(N) = E + A·N^(-alpha)`` of the source runs; step 2 maps
    loss to error with ``Err(L) = eps - k·exp(-gamma·L)`` (Gadre et al. 2024, "Language
    models scale reliably with over-training and on downstream tasks"; the same form
    OLMo's model ladder uses). As the loss grows the error rises to ``eps`` (about the
    chance error); as it falls, the error falls exponentially. Composed, they predict
    the error of a size from its loss. Fitted by least squares (scipy): for a fixed
    ``gamma`` the form is linear in ``eps`` and ``k``, so ``gamma`` is found on a grid
    with the other two solved exactly, then all three are polished together. With fewer
    than six points ``eps`` is fixed at the chance error and two parameters are fitted.
Compression cost against parameters
    For each variant (int8, pruning at each sparsity) the loss increase over the
    uncompressed model, ``dL(N) = a·N^k``, fitted in log-log. ``k < 0``: compression
    hurts small models more.

Plots (PNG and SVG, through :func:`plot_downstream`): error vs parameters, error vs
pretraining loss, loss increase vs parameters, and loss vs bytes per variant.

No torch here, as everywhere in ``analysis``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.io import PARAM_CONVENTIONS, DataError, DataWarning

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.fit import FitResult

__all__ = [
    "DownstreamFits",
    "ErrorMap",
    "compute_downstream_fits",
    "downstream_dirs",
    "fit_compression",
    "fit_error_map",
    "fit_error_vs_params",
    "format_downstream",
    "load_compress",
    "load_finetune",
    "plot_downstream",
]

FINETUNE_SUFFIX = "-finetune"
COMPRESS_SUFFIX = "-compress"


# --------------------------------------------------------------------------------------
# Loading


def downstream_dirs(path: str | Path) -> tuple[Path | None, Path | None]:
    """The fine-tuning and compression sweep directories that belong to ``path``.

    Parameters
    ----------
    path
        A pretraining sweep directory (its ``-finetune``/``-compress`` siblings are
        looked up), or one of those two directories itself.

    Returns
    -------
    (finetune_dir, compress_dir)
        Each None when it does not exist.
    """
    path = Path(path)
    base = path.name
    for suffix in (FINETUNE_SUFFIX, COMPRESS_SUFFIX):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    found = [path.parent / f"{base}{suffix}" for suffix in (FINETUNE_SUFFIX, COMPRESS_SUFFIX)]
    ft, comp = (d if d.is_dir() else None for d in found)
    return ft, comp


def _records(path: str | Path, job: str) -> list[tuple[Path, dict[str, Any]]]:
    """The completed ``job`` summaries under ``path`` (hidden directories skipped)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such directory")
    out, other = [], []
    for file in sorted(path.rglob("summary.json")):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        try:
            record = json.loads(file.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(record, dict) or record.get("job") != job:
            continue
        if record.get("status") == "completed":
            out.append((file.parent, record))
        else:
            other.append(f"{record.get('run_id')} ({record.get('status')})")
    if other:
        warnings.warn(
            f"{path}: left out {len(other)} {job} run(s) that did not complete: {', '.join(other)}",
            DataWarning,
            stacklevel=3,
        )
    if not out:
        raise DataError(f"{path}: no completed {job} records")
    return out


def _source_columns(record: dict[str, Any], params: str) -> dict[str, Any]:
    pre = record.get("pretrain") or {}
    return {
        "source_run": (record.get("source") or {}).get("run_id"),
        "family": record.get("family"),
        "d_model": record.get("d_model"),
        "n_layers": record.get("n_layers"),
        "params": record.get(f"params_{params}"),
        "params_nonembed": record.get("params_nonembed"),
        "params_matmul": record.get("params_matmul"),
        "params_total": record.get("params_total"),
        "pretrain_loss": pre.get("final_val_loss"),
        "pretrain_tokens": pre.get("tokens"),
        "pretrain_flops": pre.get("flops"),
    }


def load_finetune(path: str | Path, params: str = "nonembed") -> pd.DataFrame:
    """One row per completed fine-tuning run under ``path``.

    Parameters
    ----------
    path
        A ``<sweep>-finetune`` directory (or any directory above its records).
    params
        Parameter convention of the ``params`` column: ``nonembed``, ``matmul``, ``total``.

    Returns
    -------
    pandas.DataFrame
        ``run, source_run, family, d_model, n_layers, params, params_*, pretrain_loss,
        pretrain_tokens, pretrain_flops, task, n_classes, chance_accuracy, test_accuracy,
        test_error, test_loss, val_accuracy, step, best_step, stopped_early, seed, path``,
        sorted by size.
    """
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")
    rows = []
    for directory, r in _records(path, "finetune"):
        task = r.get("task") or {}
        rows.append(
            {
                "run": r["run_id"],
                **_source_columns(r, params),
                "task": task.get("name"),
                "setting": r.get("setting", "-"),
                "n_classes": task.get("n_classes"),
                "chance_accuracy": task.get("chance_accuracy"),
                "test_accuracy": r.get("test_accuracy"),
                "test_error": 1.0 - r["test_accuracy"],
                "test_loss": r.get("test_loss"),
                "val_accuracy": r.get("val_accuracy"),
                "step": r.get("step"),
                "best_step": r.get("best_step"),
                "stopped_early": r.get("stopped_early"),
                "seed": r.get("seed"),
                "path": str(directory),
            }
        )
    df = pd.DataFrame(rows)
    if df["task"].nunique() > 1:
        warnings.warn(
            f"{path}: records of {df['task'].nunique()} tasks ({', '.join(df['task'].unique())}): "
            "fits pool them; filter by task to fit one",
            DataWarning,
            stacklevel=2,
        )
    return df.sort_values(["params", "run"], ignore_index=True)


def load_compress(path: str | Path, params: str = "nonembed") -> pd.DataFrame:
    """One row per (source model, variant) of the completed compression runs under ``path``.

    Returns
    -------
    pandas.DataFrame
        ``run, source_run, family, d_model, n_layers, params, params_*, pretrain_*,
        variant, method, sparsity, val_loss, baseline_loss, delta_loss, size_bytes,
        baseline_bytes, compression, compressed_bytes, path``, where ``compression`` is
        ``baseline_bytes / size_bytes``.
    """
    if params not in PARAM_CONVENTIONS:
        raise DataError(f"params={params!r}: expected one of {', '.join(PARAM_CONVENTIONS)}")
    rows = []
    for directory, r in _records(path, "compress"):
        variants = r.get("variants") or []
        base = next((v for v in variants if v.get("variant") == "baseline"), None)
        if base is None:
            raise DataError(f"{directory}/summary.json: no baseline variant")
        for v in variants:
            rows.append(
                {
                    "run": r["run_id"],
                    **_source_columns(r, params),
                    "variant": v["variant"],
                    "method": v.get("method"),
                    "sparsity": v.get("sparsity", 0.0),
                    "val_loss": v["val_loss"],
                    "baseline_loss": base["val_loss"],
                    "delta_loss": v["val_loss"] - base["val_loss"],
                    "size_bytes": v["size_bytes"],
                    "baseline_bytes": base["size_bytes"],
                    "compression": base["size_bytes"] / v["size_bytes"],
                    "compressed_bytes": v.get("compressed_bytes"),
                    "path": str(directory),
                }
            )
    return pd.DataFrame(rows).sort_values(["params", "run"], kind="stable", ignore_index=True)


# --------------------------------------------------------------------------------------
# The loss -> error map


@dataclass
class ErrorMap:
    """``Err(L) = eps - k·exp(-gamma·L)`` fitted to (loss, error) points.

    Attributes
    ----------
    params
        ``{"eps", "k", "gamma"}``.
    intervals
        Percentile bootstrap intervals of the free parameters (empty without bootstrap).
    fixed
        Names of parameters held fixed (``("eps",)`` when ``eps`` was set, e.g. to the
        chance error).
    n
        Points fitted.
    residuals
        ``error - prediction``, one per point.
    rmse
        Root mean square of the residuals.
    bootstrap
        ``(n_boot, 3)`` samples of ``(eps, k, gamma)``, or None.
    level
        Confidence level of the intervals.
    """

    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fixed: tuple[str, ...]
    n: int
    residuals: np.ndarray
    rmse: float
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    level: float = 0.95

    def predict(self, loss: Any) -> np.ndarray:
        """The fitted error at pretraining loss ``loss``."""
        p = self.params
        return p["eps"] - p["k"] * np.exp(-p["gamma"] * np.asarray(loss, dtype=float))

    def predict_band(self, loss: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the prediction over the bootstrap samples."""
        if self.bootstrap is None or not len(self.bootstrap):
            raise ValueError("no bootstrap samples: refit with bootstrap=N to get a band")
        b = self.bootstrap
        x = np.asarray(loss, dtype=float)[None, :]
        preds = b[:, :1] - b[:, 1:2] * np.exp(-b[:, 2:3] * x)
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.nanpercentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def formula(self) -> str:
        p = self.params
        return f"Err = {p['eps']:.4g} - {p['k']:.4g} * exp(-{p['gamma']:.4g} * L)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": "Err(L) = eps - k*exp(-gamma*L)",
            "n": self.n,
            "params": dict(self.params),
            "fixed": list(self.fixed),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "rmse": self.rmse,
        }

    def __str__(self) -> str:
        lines = [f"{self.formula()}   (n={self.n}, rmse {self.rmse:.4f})"]
        for name, value in self.params.items():
            text = f"  {name:>6} = {value:.6g}"
            if name in self.fixed:
                text += "   (fixed)"
            elif name in self.intervals:
                lo, hi = self.intervals[name]
                text += f"   [{lo:.6g}, {hi:.6g}] (bootstrap, {self.level:.0%})"
            lines.append(text)
        return "\n".join(lines)


#: Rates tried for gamma before polishing (per nat of loss); the last is its upper bound.
_GAMMA_GRID = np.geomspace(1e-2, 50.0, 400)


def _fit_error_map_once(
    loss: np.ndarray, error: np.ndarray, eps: float | None
) -> tuple[float, float, float]:
    """Least-squares (eps, k, gamma), eps in [0, 1]; eps held at ``eps`` when given."""
    from scipy.optimize import least_squares

    # exp(-gamma L) = exp(-gamma L0) * exp(-gamma (L - L0)): centring at L0 keeps the
    # columns of the linear solve of a sane size whatever gamma is
    l0 = float(loss.mean())
    z = np.exp(-_GAMMA_GRID[:, None] * (loss - l0)[None, :])  # one row per gamma
    if eps is None:
        # regression of the error on z, every gamma at once: error = e - c z
        zc = z - z.mean(axis=1, keepdims=True)
        c = -(zc * (error - error.mean())).sum(axis=1) / (zc * zc).sum(axis=1)
        c = np.maximum(c, 0.0)  # the law's error falls with loss: k >= 0
        e = error.mean() + c * z.mean(axis=1)
        # an error rate cannot exceed 1: where the free ceiling would, hold it at 1
        over = e > 1.0
        c[over] = np.maximum(((1.0 - error) * z[over]).sum(axis=1) / (z[over] ** 2).sum(axis=1), 0)
        e[over] = 1.0
    else:
        c = np.maximum(((eps - error) * z).sum(axis=1) / (z * z).sum(axis=1), 0.0)
        e = np.full_like(c, eps)
    sse = ((e[:, None] - c[:, None] * z - error) ** 2).sum(axis=1)
    i = int(np.argmin(sse))
    e, c, gamma = float(e[i]), float(c[i]), float(_GAMMA_GRID[i])

    def residuals(theta: np.ndarray) -> np.ndarray:
        e_, c_, g_ = (eps, *theta) if eps is not None else theta
        return e_ - c_ * np.exp(-g_ * (loss - l0)) - error

    x0 = [c, gamma] if eps is not None else [e, c, gamma]
    # eps in [0, 1]: without the ceiling, data that barely curve let eps, k -> infinity
    # and gamma -> 0 (a straight line), which is no law of error rates
    lower = [0.0, 0.0] if eps is not None else [0.0, 0.0, 0.0]
    g_max = float(_GAMMA_GRID[-1])
    upper = [np.inf, g_max] if eps is not None else [1.0, np.inf, g_max]
    sol = least_squares(residuals, np.clip(x0, lower, upper), bounds=(lower, upper))
    e, c, gamma = (eps, *sol.x) if eps is not None else sol.x
    # back from the centred form: k exp(-gamma L) = c exp(-gamma (L - L0))
    return float(e), float(c * math.exp(gamma * l0)), float(gamma)


def fit_error_map(
    loss: Sequence[float] | np.ndarray,
    error: Sequence[float] | np.ndarray,
    *,
    eps: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> ErrorMap:
    """Fit ``Err(L) = eps - k·exp(-gamma·L)`` by least squares.

    Parameters
    ----------
    loss, error
        Pretraining loss and task error of each model.
    eps
        Hold ``eps`` at this value (e.g. the chance error ``1 - 1/n_classes``) and fit
        ``k`` and ``gamma`` only.
    bootstrap
        Resamples (with replacement) for percentile intervals and bands; 0: none.
    seed
        Seed of the resampling.
    level
        Confidence level of the intervals.

    Raises
    ------
    ValueError
        NaNs, fewer than twice as many points as free parameters, or a single loss value.
    """
    x, y = np.asarray(loss, dtype=float), np.asarray(error, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("loss and error must be 1-D arrays of the same length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("loss and error must be finite")
    free = 2 if eps is not None else 3
    if len(x) < 2 * free:
        raise ValueError(
            f"Err(L) with {free} free parameters needs at least {2 * free} points, got {len(x)}"
        )
    if np.ptp(x) == 0:
        raise ValueError("every model has the same loss: Err(L) is undetermined")
    e, k, g = _fit_error_map_once(x, y, eps)
    params = {"eps": e, "k": k, "gamma": g}
    resid = y - (e - k * np.exp(-g * x))
    intervals: dict[str, tuple[float, float]] = {}
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(x), len(x))
            if np.ptp(x[idx]) == 0:
                continue
            draws.append(_fit_error_map_once(x[idx], y[idx], eps))
        samples = np.array(draws)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        intervals = {
            name: (float(lo[i]), float(hi[i]))
            for i, name in enumerate(("eps", "k", "gamma"))
            if not (name == "eps" and eps is not None)
        }
    return ErrorMap(
        params=params,
        intervals=intervals,
        fixed=("eps",) if eps is not None else (),
        n=len(x),
        residuals=resid,
        rmse=float(np.sqrt((resid**2).mean())),
        bootstrap=samples,
        level=level,
    )


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
    notes
        Why a fit is missing, keyed like the attributes (``compression:<variant>``).
    """

    error_vs_params: FitResult | None = None
    loss_vs_params: FitResult | None = None
    error_vs_loss: ErrorMap | None = None
    compression: dict[str, FitResult] = field(default_factory=dict)
    per_source: pd.DataFrame | None = None
    compression_table: pd.DataFrame | None = None
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
    without looking at the test split, as tuning should be.
    """
    finetune = finetune.assign(setting=finetune.get("setting", "-"))
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
    agg = agg.loc[agg.groupby("source_run", sort=False)["val_accuracy"].idxmax()]
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
) -> DownstreamFits:
    """Make every fit the data allows; note (do not raise) the ones it does not."""
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
        out.error_vs_params = attempt(
            "error_vs_params",
            lambda: fit_error_vs_params(finetune, bootstrap=bootstrap, seed=seed),
        )
        out.loss_vs_params = attempt(
            "loss_vs_params",
            lambda: fit_frame(sizes, _size_law(len(sizes)), x="params", y="pretrain_loss"),
        )
        # every source model is a point of Err(L), whatever its size and token budget;
        # eps is free with six points or more, else held at the chance error
        chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
        eps = None if len(points) >= 6 else chance_error
        out.error_vs_loss = attempt(
            "error_vs_loss",
            lambda: fit_error_map(
                points["pretrain_loss"],
                points["test_error"],
                eps=eps,
                bootstrap=bootstrap,
                seed=seed,
            ),
        )
    if compress is not None and len(compress):
        out.compression_table = compress
        fits, notes = fit_compression(compress, bootstrap=0, seed=seed)
        out.compression = fits
        out.notes.update({f"compression:{k}": v for k, v in notes.items()})
    return out


# --------------------------------------------------------------------------------------
# Text


def format_downstream(fits: DownstreamFits) -> str:
    """A plain-text summary: accuracy per size, the fitted laws, compression per size."""
    lines: list[str] = []
    if fits.per_source is not None:
        p = fits.per_source
        chance = float(p["chance_accuracy"].iloc[0])
        lines.append(f"fine-tuning: test accuracy per model (chance {chance:.3f})")
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
    return "\n".join(lines).rstrip()


def fits_to_dict(fits: DownstreamFits) -> dict[str, Any]:
    """JSON-ready fits, per-size points and notes."""
    out: dict[str, Any] = {"notes": dict(fits.notes)}
    for name in ("error_vs_params", "loss_vs_params", "error_vs_loss"):
        fit = getattr(fits, name)
        out[name] = fit.to_dict() if fit is not None else None
    out["compression"] = {k: v.to_dict() for k, v in fits.compression.items()}
    if fits.per_source is not None:
        out["per_source"] = json.loads(fits.per_source.to_json(orient="records"))
    if fits.compression_table is not None:
        cols = ["source_run", "params", "variant", "val_loss", "delta_loss", "size_bytes"]
        out["compression_table"] = json.loads(
            fits.compression_table[cols].to_json(orient="records")
        )
    return out


# --------------------------------------------------------------------------------------
# Figures


def _style() -> Any:
    import matplotlib
    import seaborn as sns

    return matplotlib.rc_context(
        {
            **sns.axes_style("whitegrid", rc={"axes.edgecolor": ".3", "grid.color": ".9"}),
            **sns.plotting_context("notebook"),
        }
    )


def _figure() -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    return fig, fig.subplots()


def _params_label(convention: str | None) -> str:
    names = {"nonembed": "non-embedding", "matmul": "non-embedding + LM head", "total": "total"}
    return (
        f"parameters N ({names.get(convention or '', convention)})"
        if convention
        else "parameters N"
    )


def _title(text: str, prefix: str | None) -> str:
    return f"{prefix}: {text}" if prefix else text


def error_vs_params_figure(
    finetune: pd.DataFrame,
    fits: DownstreamFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Test error vs parameters: every run, the best-trained model per size, fits, chance."""
    fig, ax = _figure()
    points = fits.per_source if fits.per_source is not None else per_source(finetune)
    sizes = best_per_size(points)
    ax.scatter(finetune["params"], finetune["test_error"], s=14, color=".6", label="every run")
    ax.scatter(
        sizes["params"],
        sizes["test_error"],
        s=40,
        color="C0",
        zorder=3,
        label="best-trained model per size (mean over seeds)",
    )
    grid = np.geomspace(points["params"].min() / 1.5, points["params"].max() * 3, 200)
    if fits.error_vs_params is not None:
        f = fits.error_vs_params
        ax.plot(grid, f.predict(grid), color="C0", label=f.formula().replace("test_error", "Err"))
        if f.bootstrap is not None and len(f.bootstrap):
            lo, hi = f.predict_band(grid)
            ax.fill_between(
                grid, np.clip(lo, 0, 1), np.clip(hi, 0, 1), color="C0", alpha=0.15, lw=0
            )
    if fits.loss_vs_params is not None and fits.error_vs_loss is not None:
        ax.plot(grid, fits.two_step(grid), color="C3", ls="--", label="two-step: Err(L(N))")
    chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
    ax.axhline(chance_error, color=".4", ls=":", lw=1, label=f"chance ({chance_error:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel("test error (1 - accuracy)")
    task = finetune["task"].iloc[0]
    ax.set_title(_title(f"fine-tuned on {task}: error vs size", title))
    ax.legend(fontsize=8)
    return fig


def error_vs_loss_figure(
    finetune: pd.DataFrame, fits: DownstreamFits, *, title: str | None = None
) -> Figure:
    """Test error vs pretraining loss with the fitted ``Err(L)`` and its band."""
    fig, ax = _figure()
    points = fits.per_source if fits.per_source is not None else per_source(finetune)
    sc = ax.scatter(
        finetune["pretrain_loss"],
        finetune["test_error"],
        c=np.log10(finetune["params"].astype(float)),
        cmap="crest",
        s=30,
        zorder=3,
    )
    fig.colorbar(sc, ax=ax, pad=0.02).set_label("log10 N")
    lo_l, hi_l = points["pretrain_loss"].min(), points["pretrain_loss"].max()
    pad = 0.15 * (hi_l - lo_l or 1.0)
    grid = np.linspace(lo_l - pad, hi_l + pad, 200)
    m = fits.error_vs_loss
    if m is not None:
        ax.plot(grid, m.predict(grid), color="C3", label=m.formula())
        if m.bootstrap is not None and len(m.bootstrap):
            lo, hi = m.predict_band(grid)
            ax.fill_between(
                grid,
                np.clip(lo, 0, 1),
                np.clip(hi, 0, 1),
                color="C3",
                alpha=0.15,
                lw=0,
                label=f"{m.level:.0%} bootstrap band",
            )
    chance_error = 1.0 - float(points["chance_accuracy"].iloc[0])
    ax.axhline(chance_error, color=".4", ls=":", lw=1, label=f"chance ({chance_error:.3f})")
    # an error rate lives in [0, 1]; a wide band beyond the data is not worth the axis
    low = float(finetune["test_error"].min())
    ax.set_ylim(max(0.0, low - 0.5 * (chance_error - low) - 0.02), min(1.0, chance_error + 0.05))
    ax.set_xlabel("pretraining validation loss L (nats/token)")
    ax.set_ylabel("test error (1 - accuracy)")
    ax.set_title(_title("task error vs pretraining loss", title))
    ax.legend(fontsize=8)
    return fig


def compression_figure(
    compress: pd.DataFrame,
    fits: DownstreamFits,
    *,
    convention: str | None = "nonembed",
    title: str | None = None,
) -> Figure:
    """Loss increase from each compression vs parameters (log-log), with power fits.

    One point per size and variant: the best-trained model of each size, as fitted.
    """
    fig, ax = _figure()
    grid = np.geomspace(compress["params"].min() / 1.5, compress["params"].max() * 1.5, 100)
    hidden = 0
    best = best_compressed_per_size(compress)
    for i, (variant, rows) in enumerate(
        best[best["variant"] != "baseline"].groupby("variant", sort=False)
    ):
        pos = rows[rows["delta_loss"] > 0]
        hidden += len(rows) - len(pos)
        colour = f"C{i}"
        ax.plot(pos["params"], pos["delta_loss"], "o", color=colour, label=variant)
        fit = fits.compression.get(variant)
        if fit is not None:
            ax.plot(grid, fit.predict(grid), color=colour, lw=1, label=f"  N^{fit.params['k']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_params_label(convention))
    ax.set_ylabel("validation loss increase dL (nats/token)")
    note = f"\n({hidden} points with dL <= 0 not shown)" if hidden else ""
    ax.set_title(_title(f"cost of compression, best-trained model of each size{note}", title))
    ax.legend(fontsize=8, ncol=2)
    return fig


def compression_size_figure(compress: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Validation loss vs bytes: one line per variant across the model sizes.

    One point per size and variant, its best-trained model. Where a compressed large
    model lies below and left of a smaller fp32 one, compressing beats training smaller
    for that size budget.
    """
    fig, ax = _figure()
    best = best_compressed_per_size(compress)
    for i, (variant, rows) in enumerate(best.groupby("variant", sort=False)):
        rows = rows.sort_values("size_bytes")
        style = {"color": "black", "lw": 2} if variant == "baseline" else {"color": f"C{i}"}
        ax.plot(rows["size_bytes"], rows["val_loss"], "o-", ms=4, label=variant, **style)
    ax.set_xscale("log")
    ax.set_xlabel("serialized size (bytes)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(_title("loss vs size, per compression (best-trained model of each size)", title))
    ax.legend(fontsize=8)
    return fig


def plot_downstream(
    path: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = ("png", "svg"),
    *,
    params: str = "nonembed",
    bootstrap: int = 200,
    seed: int = 0,
    title: str | None = None,
    fits: DownstreamFits | None = None,
    progress: Any = None,
) -> list[Path]:
    """Draw the downstream and compression figures of a sweep, if it has such records.

    Parameters
    ----------
    path
        The pretraining sweep directory (or its ``-finetune``/``-compress`` sibling).
    out_dir
        Where the files go (created if needed).
    formats, params, bootstrap, seed, title
        File formats, parameter convention, fitting options, title prefix.
    fits
        Precomputed fits, to avoid fitting twice.

    Returns
    -------
    list of Path
        The files written; empty when the sweep has no fine-tuning or compression records.
    """
    from analysis.plots import save_figure

    say = progress or (lambda _text: None)
    ft_dir, comp_dir = downstream_dirs(path)
    finetune = load_finetune(ft_dir, params) if ft_dir else None
    compress = load_compress(comp_dir, params) if comp_dir else None
    if finetune is None and compress is None:
        return []
    if fits is None:
        say("downstream fits: task error vs N, Err(L), compression dL(N)")
        fits = compute_downstream_fits(finetune, compress, bootstrap=bootstrap, seed=seed)
    figures: dict[str, Figure] = {}
    with _style():
        if finetune is not None:
            figures["downstream_error_vs_params"] = error_vs_params_figure(
                finetune, fits, convention=params, title=title
            )
            figures["downstream_error_vs_loss"] = error_vs_loss_figure(finetune, fits, title=title)
        if compress is not None:
            figures["compression_loss_vs_params"] = compression_figure(
                compress, fits, convention=params, title=title
            )
            figures["compression_loss_vs_size"] = compression_size_figure(compress, title=title)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        for fmt in formats:
            written.append(save_figure(figure, out_dir / f"{name}.{fmt}"))
    return written


# --------------------------------------------------------------------------------------
# `scaling-analyze downstream`


def add_parser(sub: Any, fit_options: Any) -> None:
    """Add the ``downstream`` command to ``scaling-analyze``'s subparsers.

    Parameters
    ----------
    sub
        The subparsers object of ``analysis.cli.build_parser``.
    fit_options
        The shared parser of ``--bootstrap``, ``--seed``, ``--level``, ``--delta``.
    """
    p = sub.add_parser(
        "downstream",
        parents=[fit_options],
        help="fit and plot fine-tuned accuracy and compression cost against model size",
        description="Print the downstream laws (task error vs N, the two-step law L -> Err, "
        "compression dL vs N) of a sweep's fine-tuning and compression records, found in "
        "<sweep>-finetune/ and <sweep>-compress/ beside it, and draw their figures.",
    )
    p.add_argument("path", type=Path, help="the pretraining sweep dir (or its -finetune dir)")
    p.add_argument(
        "--params",
        choices=PARAM_CONVENTIONS,
        default="nonembed",
        help="parameter convention used as N (default: nonembed)",
    )
    p.add_argument("--out", type=Path, help="figures dir (default: <sweep>/plots)")
    p.add_argument(
        "--format", nargs="+", default=["png", "svg"], help="file formats (default png svg)"
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    p.set_defaults(handler=cmd_downstream)


def cmd_downstream(args: Any) -> int:
    """Fit, print and plot; exit status 2 (through the CLI) when there are no records."""
    ft_dir, comp_dir = downstream_dirs(args.path)
    if ft_dir is None and comp_dir is None:
        raise DataError(
            f"{args.path}: no fine-tuning or compression records beside it (expected "
            f"{args.path.name}{FINETUNE_SUFFIX}/ or {args.path.name}{COMPRESS_SUFFIX}/)"
        )
    finetune = load_finetune(ft_dir, args.params) if ft_dir else None
    compress = load_compress(comp_dir, args.params) if comp_dir else None
    fits = compute_downstream_fits(finetune, compress, bootstrap=args.bootstrap, seed=args.seed)
    out = args.out or Path(args.path) / "plots"
    written = plot_downstream(
        args.path, out, tuple(args.format), params=args.params, fits=fits, title=args.path.name
    )
    if args.json:
        print(json.dumps({**fits_to_dict(fits), "files": [str(p) for p in written]}, indent=2))
    else:
        print(format_downstream(fits))
        print()
        for path in written:
            print(path)
    return 0
