"""The fits behind the figures and the report, made once for a sweep.

:func:`compute_fits` fits the law the data can identify (:func:`analysis.choice.choose_law`:
Chinchilla's L(N, D) when N and D vary independently, else the saturating L(N)), the
frontiers of approaches 1-3 where the data allows them, the saturating L(C) drawn
extrapolated, and, on a size ladder, the compute rule C = a·N^k. A fit that cannot be
made is noted, not raised. Every bootstrap draws what shares its errors together (whole
runs of learning curves, whole trunks; :func:`analysis.resample.bootstrap_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.io import require

if TYPE_CHECKING:
    from analysis.fit import FitResult
    from analysis.optimal import Frontier


@dataclass
class SweepFits:
    """The fits and frontiers behind the figures; a failed one is ``None`` with a note.

    Attributes
    ----------
    law, law_reason
        The law of the loss fitted over the runs (``"chinchilla"`` or ``"saturating"``)
        and the line saying why (:func:`analysis.choice.choose_law`).
    frontier1
        Approach 1: lower envelope of the loss-vs-compute curves.
    loss_vs_compute
        Saturating L(C), the law drawn extrapolated: fitted to ``frontier1``'s points, or,
        without a frontier or a chinchilla fit, to the final point of each size.
    loss_vs_compute_points, loss_vs_compute_source
        The points it was fitted to, and ``"frontier"`` or ``"runs"``.
    compute_vs_params
        Power law C = a·N^k over the runs: the compute the sweep spent on each size at
        its budgets (its budget rule), not a compute-optimal frontier; fitted only on a
        size ladder (one budget per size).
    loss_vs_params
        Saturating L(N) = E + A·N^(-alpha) over the best run of each size (when ``law``
        is ``"saturating"``).
    frontier2
        Approach 2: parabolas per IsoFLOP group (only when runs share compute budgets).
    chinchilla
        L(N, D) = E + A/N^alpha + B/D^beta over the runs (when ``law`` is
        ``"chinchilla"``).
    frontier3
        Approach 3, from the chinchilla fit.
    notes
        Why a fit or a figure is missing, keyed like the attributes.
    """

    law: str = "saturating"
    law_reason: str = ""
    frontier1: Frontier | None = None
    loss_vs_compute: FitResult | None = None
    compute_vs_params: FitResult | None = None
    loss_vs_params: FitResult | None = None
    loss_vs_compute_points: pd.DataFrame | None = None
    loss_vs_compute_source: str = "frontier"
    frontier2: Frontier | None = None
    chinchilla: FitResult | None = None
    frontier3: Frontier | None = None
    notes: dict[str, str] = field(default_factory=dict)


def compute_fits(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    law: str | None = None,
    progress: Any = None,
) -> SweepFits:
    """Fit everything the figures show; a fit that cannot be made is noted, not raised.

    Parameters
    ----------
    runs
        One row per run (canonical columns).
    curves
        Long-form learning curves; without them the runs' final points stand in.
    bootstrap
        Resamples for the intervals and bands (0: none, and no band is drawn).
    seed
        Seed of the bootstrap.
    law
        ``"chinchilla"`` or ``"saturating"``: the law of the loss fitted over the runs;
        None (default): the one the data can identify (:func:`analysis.choice.choose_law`).
    progress
        Optional callable taking a line of text: told the law chosen and why, and when
        each fit starts.
    """
    from analysis.choice import LOSS_LAWS, choose_law, independent_sizes
    from analysis.fit import fit_frame
    from analysis.optimal import approach1, approach2, approach3
    from analysis.plots.isoflop import isoflop_groups

    if law is not None and law not in LOSS_LAWS:
        raise ValueError(f"law={law!r}: expected one of {', '.join(LOSS_LAWS)} (a law of the loss)")
    say = progress or (lambda _text: None)
    out = SweepFits()
    out.law, out.law_reason = choose_law(runs, law)
    say(out.law_reason)
    points = curves if curves is not None and len(curves) else runs

    def attempt(name: str, make: Any) -> Any:
        try:
            return make()
        except ValueError as err:  # DataError is a ValueError too
            out.notes[name] = str(err)
            return None

    if "run" in points.columns and points.groupby("run").size().max() > 1:
        say("approach 1: lower envelope of loss vs compute")
        out.frontier1 = attempt(
            "frontier1",
            lambda: approach1(require(points, ["flops", "params", "loss"], "approach 1")),
        )
    else:
        out.notes["frontier1"] = (
            "approach 1 needs learning curves (several evaluations per run); this data has "
            "one point per run"
        )
    if out.frontier1 is not None:
        say(f"saturating L(C) on the frontier (bootstrap {bootstrap})")
        envelope = _with_trunks(out.frontier1.points, points)
        # Envelope points read off one run's curve (or one trunk's budgets) share its
        # noise: the bootstrap draws them together, as it does the curves' own points.
        out.loss_vs_compute = attempt(
            "loss_vs_compute",
            lambda: fit_frame(
                envelope,
                "saturating",
                x="flops",
                y="loss",
                bootstrap=bootstrap,
                seed=seed,
                groups="auto",
            ),
        )
        out.loss_vs_compute_points = envelope
    if independent_sizes(runs, "params", "tokens" if "tokens" in runs.columns else "flops"):
        out.notes["compute_vs_params"] = (
            "left out: the runs are not a size ladder (several budgets per size), so compute "
            "against size is the grid of budgets, not one budget rule"
        )
    else:
        say("power law C = a N^k at the sweep's budgets")
        out.compute_vs_params = attempt(
            "compute_vs_params",
            lambda: fit_frame(
                require(runs, ["params", "flops"], "C vs N"),
                "power",
                x="params",
                y="flops",
                bootstrap=0,
                seed=seed,
            ),
        )
    if out.law == "saturating":
        say(f"saturating L(N) (bootstrap {bootstrap})")
        out.loss_vs_params = attempt(
            "loss_vs_params",
            lambda: fit_frame(
                best_run_per_size(require(runs, ["params", "loss"], "L(N)")),
                "saturating",
                x="params",
                y="loss",
                bootstrap=bootstrap,
                seed=seed,
                groups="auto",
            ),
        )
        out.notes["chinchilla"] = (
            "not fitted: --law saturating was asked"
            if law is not None
            else f"not fitted: {_because(out.law_reason)} (--law chinchilla fits it anyway)"
        )
    else:
        out.notes["loss_vs_params"] = (
            "not fitted: --law chinchilla was asked"
            if law is not None
            else "not fitted: N and D vary independently, so a one-variable L(N) would mix "
            "their effects (--law saturating fits it anyway)"
        )
        say(f"chinchilla L(N, D) (bootstrap {bootstrap})")
        out.chinchilla = attempt(
            "chinchilla",
            lambda: fit_frame(
                require(runs, ["params", "tokens", "loss"], "chinchilla"),
                "chinchilla",
                bootstrap=bootstrap,
                seed=seed,
                groups="auto",
            ),
        )
    if isoflop_groups(runs) is None:
        out.notes["frontier2"] = (
            "no IsoFLOP profiles: approach 2 needs at least two compute budgets each "
            "trained at three or more model sizes"
        )
    else:
        say("approach 2: IsoFLOP parabolas")
        out.frontier2 = attempt("frontier2", lambda: approach2(runs))
    if out.chinchilla is not None:
        out.frontier3 = attempt("frontier3", lambda: approach3(out.chinchilla))
    else:
        out.notes.setdefault("frontier3", out.notes.get("chinchilla", "no chinchilla fit"))
    if out.loss_vs_compute is None and out.chinchilla is None:
        # Neither a frontier nor L(N, D): a size ladder's own final points stand in. Each
        # size trained on a budget rule (e.g. 20 tokens per parameter) ends near the
        # compute-optimal allocation, so its best final point approximates L_opt(C).
        say(f"saturating L(C) on the final point of each size (bootstrap {bootstrap})")
        finals = best_run_per_size(require(runs, ["flops", "loss", "params"], "L(C)"))
        out.loss_vs_compute = attempt(
            "loss_vs_compute",
            lambda: fit_frame(
                finals,
                "saturating",
                x="flops",
                y="loss",
                bootstrap=bootstrap,
                seed=seed,
                groups="auto",
            ),
        )
        if out.loss_vs_compute is not None:
            out.loss_vs_compute_points = finals[["flops", "params", "loss"]]
            out.loss_vs_compute_source = "runs"
    return out


def _because(reason: str) -> str:
    """The why of a :func:`~analysis.choice.choose_law` reason: what follows "because"."""
    why = reason.split("because ", 1)[-1]
    return why.split("; --law", 1)[0]


def _with_trunks(envelope: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """The envelope's points with the trunk of the run each was read from, when known."""
    if "trunk" not in points.columns or "run" not in envelope.columns:
        return envelope
    trunk_of = points.drop_duplicates("run").set_index("run")["trunk"]
    return envelope.assign(trunk=envelope["run"].map(trunk_of))


def best_run_per_size(runs: pd.DataFrame) -> pd.DataFrame:
    """The run with the lowest loss of each model size, in order of size.

    L(N) describes how far a size can go, so when a sweep trains a size several times
    (several budgets, several seeds) its best run stands for it; a plain size ladder is
    returned as it is (sorted).
    """
    best = runs.loc[runs.groupby("params", sort=True)["loss"].idxmin()]
    return best.reset_index(drop=True)
